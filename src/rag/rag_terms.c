/* The question's content terms and their weights.
 *
 * Terms are the FTS index's: pf_ir_tokenize (unicode61 folding), Porter stems, one term per
 * stem. Dropped: Lucene's 33 English stopwords and the words every question is made of
 * ("what", "how", "should", "I", ...), which say nothing about the topic.
 *
 * Weight of a term: Lucene's IDF over the KB's chunks, idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
 * df counted by FTS5 (the MATCH stems the word as the index did). A word the KB never uses gets
 * the largest weight, ln(1 + (N + 0.5) / 0.5): it is the strongest sign that the question is
 * about something the KB does not hold. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag/rag_internal.h"

/* Words of questions and requests that carry no topic (beyond Lucene's stopwords). */
static const char *const QUESTION_WORDS[] = {
    "what", "which", "who", "whom", "whose", "why", "how", "when", "where", "whats", "do", "does", "did",
    "doing", "done", "can", "could", "should", "would", "shall", "may", "might", "must", "i", "me", "my",
    "we", "us", "our", "you", "your", "he", "she", "him", "her", "his", "its", "them", "those", "am",
    "been", "being", "has", "have", "had", "having", "from", "about", "any", "all", "some", "please",
    "tell", "explain", "describe", "know", "often", "much", "many", "s", "t", "don", "doesn", "isn",
    "there", "here", "so", "than", "too", "very", "also", "just", "get", "give", "show", "list", "need",
    "needs", "want", "during", "before", "after", "again", "then", "once", "more", "most", "other", "only",
    "same", "both", "each", "few", "own", "whether", "way", "ways", "thing", "things", "happen", "happens",
};

static bool is_question_word(const char *tok, size_t len) {
    if (pf_ir_is_stopword(tok, len)) return true;
    for (size_t i = 0; i < sizeof QUESTION_WORDS / sizeof QUESTION_WORDS[0]; i++)
        if (strlen(QUESTION_WORDS[i]) == len && !memcmp(QUESTION_WORDS[i], tok, len)) return true;
    return false;
}

static int on_question_token(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)start, (void)end;
    rag_terms *t = ctx;
    if (t->n == RAG_MAX_TERMS) return 1;
    if (is_question_word(tok, len)) return 0;
    rag_term *x = &t->v[t->n];
    memcpy(x->word, tok, len + 1);
    memcpy(x->stem, tok, len + 1);
    x->stem[pf_ir_porter(x->stem, len)] = '\0';
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].stem, x->stem)) return 0;
    x->idf = 1.0;
    t->n++;
    return 0;
}

/* N and df from the KB (inside one read transaction, so both see the same state). */
static int weigh(pf_kb *kb, rag_terms *t, pf_error *err) {
    sqlite3 *db = pf_kb_db(kb);
    sqlite3_stmt *st = NULL;
    int rc = PF_OK;
    bool txn = sqlite3_get_autocommit(db) && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    double n_chunks = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = pf_error_set(err, PF_ERR_IO, "%s: counting chunks: %s", pf_kb_dir(kb), sqlite3_errmsg(db));
        goto done;
    }
    n_chunks = (double)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: not a knowledge base (chunks_fts): %s", pf_kb_dir(kb),
                          sqlite3_errmsg(db));
        goto done;
    }
    for (int i = 0; i < t->n; i++) {
        char q[PF_IR_MAX_TOKEN + 3];
        snprintf(q, sizeof q, "\"%s\"", t->v[i].word); /* tokens hold no quotes: letters and digits */
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, q, -1, SQLITE_TRANSIENT);
        double df = 0;
        if (sqlite3_step(st) == SQLITE_ROW) df = (double)sqlite3_column_int64(st, 0);
        else {
            rc = pf_error_set(err, PF_ERR_IO, "%s: document frequency of '%s': %s", pf_kb_dir(kb), t->v[i].word,
                              sqlite3_errmsg(db));
            goto done;
        }
        if (df > n_chunks) df = n_chunks;
        t->v[i].idf = log(1.0 + (n_chunks - df + 0.5) / (df + 0.5));
    }
done:
    sqlite3_finalize(st);
    if (txn) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

int rag_terms_build(pf_kb *kb, const char *question, rag_terms *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    if (!question) return pf_error_set(err, PF_ERR_ARG, "rag: no question");
    out->v = calloc(RAG_MAX_TERMS, sizeof *out->v);
    if (!out->v) return pf_error_set(err, PF_ERR_NOMEM, "rag: out of memory");
    pf_ir_tokenize(question, strlen(question), on_question_token, out);
    if (kb && out->n) {
        int rc = weigh(kb, out, err);
        if (rc) {
            rag_terms_free(out);
            return rc;
        }
    }
    for (int i = 0; i < out->n; i++) out->total += out->v[i].idf;
    return PF_OK;
}

void rag_terms_free(rag_terms *t) {
    if (!t) return;
    free(t->v);
    memset(t, 0, sizeof *t);
}

typedef struct match_ctx {
    const rag_terms *t;
    uint64_t mask;
} match_ctx;

static int on_text_token(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)start, (void)end;
    match_ctx *m = ctx;
    char w[PF_IR_MAX_TOKEN + 1];
    memcpy(w, tok, len + 1);
    w[pf_ir_porter(w, len)] = '\0';
    for (int i = 0; i < m->t->n; i++)
        if (!strcmp(w, m->t->v[i].stem)) m->mask |= 1ull << i;
    return 0;
}

uint64_t rag_terms_match(const rag_terms *t, const char *text, size_t len) {
    match_ctx m = {t, 0};
    if (t->n && text) pf_ir_tokenize(text, len, on_text_token, &m);
    return m.mask;
}

uint64_t rag_terms_match_hit(const rag_terms *t, const pf_search_hit *h) {
    uint64_t m = 0;
    if (h->text) m |= rag_terms_match(t, h->text, strlen(h->text));
    if (h->heading) m |= rag_terms_match(t, h->heading, strlen(h->heading));
    if (h->title) m |= rag_terms_match(t, h->title, strlen(h->title));
    return m;
}

double rag_terms_share(const rag_terms *t, uint64_t mask) {
    if (t->n == 0 || t->total <= 0) return 0.0;
    double s = 0;
    for (int i = 0; i < t->n; i++)
        if (mask >> i & 1) s += t->v[i].idf;
    return s / t->total;
}

static int on_count(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)tok, (void)len, (void)start, (void)end;
    (*(int *)ctx)++;
    return 0;
}

int rag_count_words(const char *text, size_t len) {
    int n = 0;
    pf_ir_tokenize(text, len, on_count, &n);
    return n;
}
