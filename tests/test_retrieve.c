/* Retrieval: the IR toolkit (tokenizer and Porter stemmer checked against FTS5 itself, metrics,
 * TREC files, textbook BM25), MATCH-expression safety, fusion, duplicate collapsing, and the
 * retriever over small knowledge bases (filters, citations, lexical fallback, dense and hybrid
 * with the tiny embedder, a KB built through the store). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ir/ir.h"
#include "kb/kb_schema.h"
#include "kb/retrieve.h"
#include "testing.h"

/* ---- tokenizer + stemmer against FTS5 ----------------------------------------------------- */

typedef struct toks { char v[16][PF_IR_MAX_TOKEN + 1]; int n; size_t start[16], end[16]; } toks;

static int collect_tok(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    toks *t = ctx;
    if (t->n < 16) {
        memcpy(t->v[t->n], tok, len + 1);
        t->start[t->n] = start;
        t->end[t->n] = end;
        t->n++;
    }
    return 0;
}

/* FTS5's terms of each row (fts5vocab 'instance'), in order, joined by spaces. */
static char **fts5_terms(sqlite3 *db, const char *tokenizer, const char *const *texts, int n) {
    char sql[256];
    sqlite3_exec(db, "DROP TABLE IF EXISTS tt; DROP TABLE IF EXISTS tv;", NULL, NULL, NULL);
    snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE tt USING fts5(x, tokenize='%s');"
                              "CREATE VIRTUAL TABLE tv USING fts5vocab(tt, 'instance');", tokenizer);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) return NULL;
    sqlite3_stmt *ins = NULL, *sel = NULL;
    sqlite3_prepare_v2(db, "INSERT INTO tt(rowid, x) VALUES (?1, ?2)", -1, &ins, NULL);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; i < n; i++) {
        sqlite3_bind_int(ins, 1, i);
        sqlite3_bind_text(ins, 2, texts[i], -1, SQLITE_STATIC);
        sqlite3_step(ins);
        sqlite3_reset(ins);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(ins);
    char **out = calloc((size_t)n, sizeof *out);
    sqlite3_prepare_v2(db, "SELECT doc, term FROM tv ORDER BY doc, offset", -1, &sel, NULL);
    while (sqlite3_step(sel) == SQLITE_ROW) {
        int d = sqlite3_column_int(sel, 0);
        const char *term = (const char *)sqlite3_column_text(sel, 1);
        size_t ol = out[d] ? strlen(out[d]) : 0, tl = strlen(term);
        out[d] = realloc(out[d], ol + tl + 2);
        if (ol) out[d][ol++] = ' ';
        memcpy(out[d] + ol, term, tl + 1);
    }
    sqlite3_finalize(sel);
    return out;
}

static void test_tokenizer(pf_test *t, sqlite3 *db) {
    const char *texts[] = {
        "Déjà vu — Résumé; naïve café", "Straße STRASSE", "v1.2 don't", "日本語テキスト", "e\xcc\x81" "cole",
        "İstanbul ǅemal", "Ⅲ x² ½", "foo_bar-baz", "\xf0\x9f\x98\x80" "emoji", "ΑΒΓ αβγ Ωmega", "ﬁne ligature",
        "tabs\tand\nnewlines  ", "\"quoted\" (parens) [brackets] {braces} a*b c:d ^e -f +g",
        "bad \xff\xfe utf8 \xc3 end", "",
    };
    int n = (int)(sizeof texts / sizeof texts[0]);
    char **ref = fts5_terms(db, "unicode61 remove_diacritics 2", texts, n);
    CHECK(t, ref != NULL, "fts5 table");
    for (int i = 0; ref && i < n; i++) {
        toks tk = {.n = 0};
        pf_ir_tokenize(texts[i], strlen(texts[i]), collect_tok, &tk);
        char joined[16 * (PF_IR_MAX_TOKEN + 2)] = "";
        for (int j = 0; j < tk.n; j++) {
            if (j) strcat(joined, " ");
            strcat(joined, tk.v[j]);
        }
        CHECK(t, !strcmp(joined, ref[i] ? ref[i] : ""), "tokens of '%s': '%s', FTS5 '%s'", texts[i], joined,
              ref[i] ? ref[i] : "");
        free(ref[i]);
    }
    free(ref);
    /* offsets point at the token in the original text */
    toks tk = {.n = 0};
    const char *s = "  Résumé, vu!";
    pf_ir_tokenize(s, strlen(s), collect_tok, &tk);
    CHECK(t, tk.n == 2 && tk.start[0] == 2 && tk.end[0] == 2 + strlen("Résumé") && tk.start[1] == 12 && tk.end[1] == 14,
          "offsets %zu..%zu %zu..%zu", tk.start[0], tk.end[0], tk.start[1], tk.end[1]);
    CHECK(t, pf_ir_is_stopword("the", 3) && pf_ir_is_stopword("with", 4) && pf_ir_is_stopword("a", 1) &&
                 !pf_ir_is_stopword("then1", 5) && !pf_ir_is_stopword("filter", 6) && !pf_ir_is_stopword("th", 2),
          "stopwords");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_porter(pf_test *t, sqlite3 *db) {
    /* examples of Porter (1980), step by step */
    static const char *const pairs[][2] = {
        {"caresses", "caress"}, {"ponies", "poni"}, {"ties", "ti"}, {"caress", "caress"}, {"cats", "cat"},
        {"feed", "feed"}, {"agreed", "agre"}, {"plastered", "plaster"}, {"bled", "bled"}, {"motoring", "motor"},
        {"sing", "sing"}, {"conflated", "conflat"}, {"troubled", "troubl"}, {"sized", "size"}, {"hopping", "hop"},
        {"tanned", "tan"}, {"falling", "fall"}, {"hissing", "hiss"}, {"fizzed", "fizz"}, {"failing", "fail"},
        {"filing", "file"}, {"happy", "happi"}, {"sky", "sky"}, {"relational", "relat"}, {"conditional", "condit"},
        {"rational", "ration"}, {"valenci", "valenc"}, {"hesitanci", "hesit"}, {"digitizer", "digit"},
        {"conformabli", "conform"}, {"radicalli", "radic"}, {"differentli", "differ"}, {"vileli", "vile"},
        {"analogousli", "analog"}, {"vietnamization", "vietnam"}, {"predication", "predic"}, {"operator", "oper"},
        {"feudalism", "feudal"}, {"decisiveness", "decis"}, {"hopefulness", "hope"}, {"callousness", "callous"},
        {"formaliti", "formal"}, {"sensitiviti", "sensit"}, {"sensibiliti", "sensibl"}, {"triplicate", "triplic"},
        {"formative", "form"}, {"formalize", "formal"}, {"electriciti", "electr"}, {"electrical", "electr"},
        {"hopeful", "hope"}, {"goodness", "good"}, {"revival", "reviv"}, {"allowance", "allow"},
        {"inference", "infer"}, {"airliner", "airlin"}, {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"},
        {"defensible", "defens"}, {"irritant", "irrit"}, {"replacement", "replac"}, {"adjustment", "adjust"},
        {"dependent", "depend"}, {"adoption", "adopt"}, {"homologou", "homolog"}, {"communism", "commun"},
        {"activate", "activ"}, {"angulariti", "angular"}, {"homologous", "homolog"}, {"effective", "effect"},
        {"bowdlerize", "bowdler"}, {"probate", "probat"}, {"rate", "rate"}, {"cease", "ceas"},
        {"controlling", "control"}, {"rolling", "roll"}, {"archaeology", "archaeolog"}, {"possibly", "possibl"},
        {"as", "as"}, {"is", "is"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char w[64];
        snprintf(w, sizeof w, "%s", pairs[i][0]);
        w[pf_ir_porter(w, strlen(w))] = '\0';
        if (strcmp(w, pairs[i][1])) { bad++; fprintf(stderr, "porter(%s) = %s, want %s\n", pairs[i][0], w, pairs[i][1]); }
    }
    CHECK(t, bad == 0, "%d Porter examples wrong", bad);

    /* every distinct word of the Vaswani collection (or the examples) stems as FTS5's porter does */
    pf_ir_docs docs = {0};
    pf_error err = {0};
    size_t nw = 0, cap = 1 << 14;
    char **words = malloc(cap * sizeof *words);
    if (pf_ir_read_trec_docs("../shared/ir/vaswani/doc-text.trec", &docs, &err) == PF_OK) {
        for (size_t d = 0; d < docs.n; d++)
            for (char *tok = strtok(docs.v[d].text, " \n\t"); tok; tok = strtok(NULL, " \n\t")) {
                if (nw == cap) words = realloc(words, (cap *= 2) * sizeof *words);
                words[nw++] = tok;
            }
        qsort(words, nw, sizeof *words, cmp_str);
        size_t u = 0;
        for (size_t i = 0; i < nw; i++)
            if (!u || strcmp(words[u - 1], words[i])) words[u++] = words[i];
        nw = u;
    }
    static const char *const odd[] = {"1990s", "mp3s", "x2ing", "agreed2", "caféing", "naïvely", "ŝes", "ies",
                                      "sses", "yyyies", "eeing", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaations"};
    size_t n_odd = sizeof odd / sizeof odd[0], n_pairs = sizeof pairs / sizeof pairs[0];
    words = realloc(words, (nw + n_pairs + n_odd) * sizeof *words);
    for (size_t i = 0; i < n_pairs; i++) words[nw++] = (char *)pairs[i][0];
    for (size_t i = 0; i < n_odd; i++) words[nw++] = (char *)odd[i];
    char **ref = fts5_terms(db, "porter unicode61 remove_diacritics 2", (const char *const *)words, (int)nw);
    int mism = 0;
    for (size_t i = 0; ref && i < nw; i++) {
        toks tk = {.n = 0};
        pf_ir_tokenize(words[i], strlen(words[i]), collect_tok, &tk);
        char joined[16 * (PF_IR_MAX_TOKEN + 2)] = "";
        for (int j = 0; j < tk.n; j++) {
            char *w = tk.v[j];
            w[pf_ir_porter(w, strlen(w))] = '\0';
            if (j) strcat(joined, " ");
            strcat(joined, w);
        }
        if (strcmp(joined, ref[i] ? ref[i] : "")) {
            if (mism++ < 10) fprintf(stderr, "stem of '%s': '%s', FTS5 '%s'\n", words[i], joined, ref[i] ? ref[i] : "");
        }
        free(ref[i]);
    }
    CHECK(t, ref && mism == 0, "%d of %zu words stem differently from FTS5's porter", mism, nw);
    if (!mism) printf("porter: %zu distinct words stem exactly as FTS5's porter tokenizer\n", nw);
    free(ref);
    free(words);
    pf_ir_docs_free(&docs);
}

/* ---- MATCH expressions ---------------------------------------------------------------------- */

static void test_fts_query(pf_test *t, sqlite3 *db) {
    static const char *const cases[][2] = {
        {"How do I replace the air filter?", "\"how\" OR \"do\" OR \"i\" OR \"replace\" OR \"air\" OR \"filter\""},
        {"computers computer computing", "\"computers\""},
        {"the of and", "\"the\" OR \"of\" OR \"and\""},
        {"", ""}, {"   !!! ... ", ""},
        {"\"foo\" OR bar*", "\"foo\" OR \"bar\""},
        {"NEAR(a b) AND NOT c", "\"near\" OR \"b\" OR \"c\""},
        {"Résumé naïve", "\"resume\" OR \"naive\""},
        {"col:term ^x -y +z", "\"col\" OR \"term\" OR \"x\" OR \"y\" OR \"z\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = pf_fts_query(cases[i][0], true);
        CHECK(t, q && !strcmp(q, cases[i][1]), "query '%s' -> '%s', want '%s'", cases[i][0], q ? q : "(null)",
              cases[i][1]);
        free(q);
    }
    char *q = pf_fts_query("the filter", false);
    CHECK(t, q && !strcmp(q, "\"the\" OR \"filter\""), "stopwords kept when asked: %s", q ? q : "");
    free(q);

    /* random hostile text never makes FTS5 fail */
    sqlite3_exec(db, "DROP TABLE IF EXISTS hq; CREATE VIRTUAL TABLE hq USING fts5(x, tokenize='porter unicode61 "
                     "remove_diacritics 2'); INSERT INTO hq VALUES ('near and not or the filter');",
                 NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM hq WHERE hq MATCH ?1", -1, &st, NULL);
    static const char *const atoms[] = {"\"", "'", "*", "(", ")", ":", "^", "-", "+", "NEAR", "AND", "OR", "NOT",
                                        " ", "x", "filter", "é", "\xff", "{", "}", ",", "\\", "\xe2\x80\x94", "0"};
    pf_test_rng rng = {0x1234567};
    int fails = 0;
    for (int it = 0; it < 2000; it++) {
        char buf[256] = "";
        int n = (int)(pf_test_next(&rng) % 12);
        for (int j = 0; j < n; j++) strcat(buf, atoms[pf_test_next(&rng) % (sizeof atoms / sizeof atoms[0])]);
        char *m = pf_fts_query(buf, (it & 1) != 0);
        if (!m) { fails++; continue; }
        if (*m) {
            sqlite3_bind_text(st, 1, m, -1, SQLITE_TRANSIENT);
            int rc = sqlite3_step(st);
            if (rc != SQLITE_ROW) {
                if (fails++ < 5) fprintf(stderr, "MATCH '%s' (from '%s'): %s\n", m, buf, sqlite3_errmsg(db));
            }
            sqlite3_reset(st);
        }
        free(m);
    }
    sqlite3_finalize(st);
    CHECK(t, fails == 0, "%d hostile queries broke the MATCH expression", fails);
}

/* ---- metrics, TREC files, textbook BM25 ----------------------------------------------------- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

static void test_trec_metrics_okapi(pf_test *t, const char *dir) {
    char p1[600], p2[600], p3[600];
    snprintf(p1, sizeof p1, "%s/docs.trec", dir);
    snprintf(p2, sizeof p2, "%s/topics.trec", dir);
    snprintf(p3, sizeof p3, "%s/qrels", dir);
    write_file(p1, "<DOC>\n<DOCNO>d1</DOCNO>\nthe cat sat on the mat\n</DOC>\n<DOC>\n<DOCNO> d2 </DOCNO>\ndogs and cats"
                   "\n</DOC>\n<DOC>\n<DOCNO>d3</DOCNO>\nquantum physics of cats and dogs and mats\n</DOC>\n");
    write_file(p2, "<top>\n<num>1</num><title>\nCATS on MATS\n</title>\n</top>\n<top>\n<num> Number: 2 </num>\n"
                   "<title> dog </title>\n</top>\n");
    write_file(p3, "1 0 d1 1\n1 0 d3 2\n2 0 d2 1\n2 0 d9 0\n");
    pf_ir_docs docs, topics;
    pf_ir_qrels qr;
    pf_error err = {0};
    int rc = pf_ir_read_trec_docs(p1, &docs, &err) | pf_ir_read_trec_topics(p2, &topics, &err) |
             pf_ir_read_qrels(p3, &qr, &err);
    CHECK(t, rc == PF_OK, "trec: %s", err.msg);
    if (rc) return;
    CHECK(t, docs.n == 3 && !strcmp(docs.v[1].id, "d2") && !strcmp(docs.v[1].text, "dogs and cats"), "docs");
    CHECK(t, topics.n == 2 && !strcmp(topics.v[0].text, "CATS on MATS") && !strcmp(topics.v[1].id, "2") &&
                 !strcmp(topics.v[1].text, "dog"), "topics");
    CHECK(t, qr.n == 4 && pf_ir_qrels_grade(&qr, "1", "d3") == 2 && pf_ir_qrels_grade(&qr, "1", "d2") == 0 &&
                 pf_ir_qrels_n_relevant(&qr, "2") == 1, "qrels");

    /* nDCG@k: ranking d3 d2 d1 for topic 1: DCG = 2/log2(2) + 1/log2(4) = 2.5; ideal 2 + 1/log2(3) */
    const char *rk[] = {"d3", "d2", "d1", "d3"};
    double nd = pf_ir_ndcg(&qr, "1", rk, 4, 10), want = 2.5 / (2.0 + 1.0 / log2(3.0));
    CHECK(t, fabs(nd - want) < 1e-12, "ndcg %.6f want %.6f", nd, want);
    CHECK(t, fabs(pf_ir_ndcg(&qr, "1", rk, 4, 1) - 1.0) < 1e-12, "ndcg@1");
    CHECK(t, pf_ir_recall(&qr, "1", rk, 4, 2) == 0.5 && pf_ir_recall(&qr, "1", rk, 4, 3) == 1.0, "recall@k");
    CHECK(t, pf_ir_ndcg(&qr, "7", rk, 4, 10) == 0.0 && pf_ir_recall(&qr, "7", rk, 4, 10) == 0.0, "unjudged topic");

    /* textbook BM25 by hand: "cat" in d1 (tf 1, |d| 6), d2 (|d| 3), d3 (|d| 8); avgdl 17/3, N 3, n 3 */
    pf_ir_bm25_params bp = pf_ir_bm25_defaults();
    bp.idf = PF_IR_IDF_LUCENE;
    pf_ir_bm25 *ix = NULL;
    pf_ir_bm25_new(&bp, &ix, &err);
    for (size_t i = 0; i < docs.n; i++) pf_ir_bm25_add(ix, docs.v[i].text, &err);
    uint32_t hit[3];
    double sc[3];
    size_t n = 0;
    pf_ir_bm25_search(ix, "cat", 3, hit, sc, &n, &err);
    double idf = log(1.0 + (3 - 3 + 0.5) / (3 + 0.5)), avg = 17.0 / 3.0;
    double s2 = idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 3 / avg)), s1 = idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 6 / avg));
    CHECK(t, n == 3 && hit[0] == 1 && fabs(sc[0] - s2) < 1e-12 && hit[1] == 0 && fabs(sc[1] - s1) < 1e-12 && hit[2] == 2,
          "okapi: n %zu hit %u %.6f (want %.6f) %u %.6f (want %.6f)", n, hit[0], sc[0], s2, hit[1], sc[1], s1);
    pf_ir_bm25_free(ix);
    pf_ir_docs_free(&docs);
    pf_ir_docs_free(&topics);
    pf_ir_qrels_free(&qr);

    /* malformed files name the file and line */
    write_file(p1, "<DOC>\n<DOCNO>ok</DOCNO>\ntext\n</DOC>\n\n<DOC>\nno number\n</DOC>\n");
    rc = pf_ir_read_trec_docs(p1, &docs, &err);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(err.msg, "docs.trec:6"), "bad doc: %s", err.msg);
    write_file(p3, "1 0 d1 1\n1 0 d2\n");
    rc = pf_ir_read_qrels(p3, &qr, &err);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(err.msg, "qrels:2"), "bad qrels: %s", err.msg);
    rc = pf_ir_read_qrels("/nonexistent/qrels", &qr, &err);
    CHECK(t, rc == PF_ERR_IO && strstr(err.msg, "/nonexistent/qrels"), "missing file: %s", err.msg);
}

/* ---- fusion and duplicates ------------------------------------------------------------------ */

static void test_fusion_dedup(pf_test *t) {
    pf_cand_list a = {0}, b = {0}, out = {0};
    int64_t la[] = {10, 20, 30}, lb[] = {30, 40, 10};
    for (int i = 0; i < 3; i++) {
        pf_cand_push(&a, (pf_cand){.chunk_id = la[i], .score = 9 - i});
        pf_cand_push(&b, (pf_cand){.chunk_id = lb[i], .score = 0.9 - i * 0.1});
    }
    pf_search_params p = pf_search_default_params();
    pf_rrf_fuse(&a, &b, &p, &out);
    /* 10: 1/61 + 1/63; 30: 1/63 + 1/61 (tie, best rank 1 each: lower id first); 20: 1/62; 40: 1/62 */
    CHECK(t, out.n == 4 && out.v[0].chunk_id == 10 && out.v[1].chunk_id == 30 && out.v[2].chunk_id == 20 &&
                 out.v[3].chunk_id == 40, "rrf order %lld %lld %lld %lld", (long long)out.v[0].chunk_id,
          (long long)out.v[1].chunk_id, (long long)out.v[2].chunk_id, (long long)out.v[3].chunk_id);
    CHECK(t, fabs(out.v[0].score - (1.0 / 61 + 1.0 / 63)) < 1e-15 && out.v[0].bm25_rank == 1 &&
                 out.v[0].dense_rank == 3 && out.v[1].bm25_rank == 3 && out.v[1].dense_rank == 1,
          "rrf scores/ranks");
    p.w_dense = 3.0; /* dense list weighs more: 30 (1/63 + 3/61) passes 10 (1/61 + 3/63) */
    pf_rrf_fuse(&a, &b, &p, &out);
    CHECK(t, out.v[0].chunk_id == 30 && out.v[1].chunk_id == 10 && out.v[2].chunk_id == 40, "weighted rrf");
    free(a.v); free(b.v); free(out.v);

    char base[4096] = "", changed[4096], other[4096] = "";
    for (int i = 0; i < 200; i++) {
        char w[32];
        snprintf(w, sizeof w, "word%d ", i * 7 % 101);
        strcat(base, w);
        snprintf(w, sizeof w, "term%d ", i);
        strcat(other, w);
    }
    snprintf(changed, sizeof changed, "%s", base);
    memcpy(strstr(changed, "word14 "), "WORDX! ", 7); /* one word differs */
    pf_dedup_sig s1, s2, s3, s4, s5;
    pf_dedup_sig_make(base, &s1);
    pf_dedup_sig_make("WORD0,   word7\n" "word14 word21", &s4);
    pf_dedup_sig_make("word0 word7 word14 word21", &s5);
    pf_dedup_sig_make(changed, &s2);
    pf_dedup_sig_make(other, &s3);
    CHECK(t, pf_dedup_same(&s4, &s5, 0.9), "case/punctuation/spacing differences are duplicates");
    double j12 = pf_dedup_jaccard(&s1, &s2);
    CHECK(t, j12 > 0.95 && j12 < 1.0 && pf_dedup_same(&s1, &s2, 0.9), "one word changed: jaccard %.3f", j12);
    CHECK(t, !pf_dedup_same(&s1, &s3, 0.9) && pf_dedup_jaccard(&s1, &s3) == 0.0, "different texts");
    pf_dedup_sig_free(&s1); pf_dedup_sig_free(&s2); pf_dedup_sig_free(&s3);
    pf_dedup_sig_free(&s4); pf_dedup_sig_free(&s5);

    CHECK(t, !strcmp(pf_search_query_prefix("bge-small-en-v1.5"), "Represent this sentence for searching relevant passages: ") &&
                 !strcmp(pf_search_query_prefix("nomic-embed-text-v1.5"), "search_query: ") &&
                 !strcmp(pf_search_query_prefix("multilingual-e5-small"), "query: ") &&
                 !strcmp(pf_search_query_prefix("all-MiniLM-L6-v2"), "") && !strcmp(pf_search_query_prefix(NULL), "") &&
                 !strcmp(pf_search_document_prefix("nomic-embed-text-v1.5"), "search_document: ") &&
                 !strcmp(pf_search_document_prefix("bge-base-en-v1.5"), ""),
          "query prefixes");
    pf_search_mode m;
    CHECK(t, pf_search_mode_from_name("HYBRID", &m) == PF_OK && m == PF_SEARCH_HYBRID &&
                 pf_search_mode_from_name("fuzzy", &m) == PF_ERR_ARG && !strcmp(pf_search_mode_name(PF_SEARCH_DENSE), "dense"),
          "mode names");
}

/* ---- the retriever over a small KB ---------------------------------------------------------- */

typedef struct tdoc { const char *key, *source, *type; const char *chunks[3]; int page[3]; const char *heading[3]; } tdoc;

static const char FILTER_TEXT[] =
    "To replace the air filter, switch the pump off, open the side cover and pull the old filter out. "
    "Insert the new filter with the arrow pointing towards the pump.";

static const tdoc TDOCS[] = {
    {"/kb/manual.pdf", "/kb/manual.pdf", "pdf",
     {"The pump delivers 40 litres per minute at 3 bar. Keep the pump away from frost.", FILTER_TEXT,
      "Warranty: the pump is covered for two years."},
     {1, 2, 3}, {"Pump › Specifications", "Pump › Maintenance › Filters", NULL}},
    {"/kb/notes/guide.md", "/kb/notes/guide.md", "md",
     {"Installing the pump: mount it on a flat surface and connect the hoses.", NULL, NULL},
     {0, 0, 0}, {"Guide › Installation", NULL, NULL}},
    {"/kb/copy/manual-copy.txt", "/kb/copy/manual-copy.txt", "txt", {FILTER_TEXT, NULL, NULL}, {0, 0, 0}, {NULL}},
    {"rec-7", "/kb/data.jsonl", "jsonl",
     {"Support ticket: customer asked how often the pump filter must be changed. Answer: every 500 hours.", NULL, NULL},
     {0, 0, 0}, {NULL}},
};

static sqlite3 *small_kb(pf_test *t, const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/small.sqlite", dir);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    int rc = sqlite3_exec(db, PF_KB_SCHEMA_V1, NULL, NULL, NULL);
    sqlite3_stmt *sd = NULL, *sc = NULL;
    sqlite3_prepare_v2(db, "INSERT INTO documents(doc_key, source, title, doc_type, sha256, mtime, size, text_len, "
                           "ingested_at) VALUES (?1, ?2, 'T', ?3, '', 0, 0, 0, 0)", -1, &sd, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO chunks(doc_id, ordinal, text, start_char, end_char, page, heading, n_tokens) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)", -1, &sc, NULL);
    for (size_t d = 0; d < sizeof TDOCS / sizeof TDOCS[0]; d++) {
        sqlite3_bind_text(sd, 1, TDOCS[d].key, -1, SQLITE_STATIC);
        sqlite3_bind_text(sd, 2, TDOCS[d].source, -1, SQLITE_STATIC);
        sqlite3_bind_text(sd, 3, TDOCS[d].type, -1, SQLITE_STATIC);
        rc |= sqlite3_step(sd) != SQLITE_DONE;
        sqlite3_reset(sd);
        int64_t doc = sqlite3_last_insert_rowid(db), off = 0;
        for (int c = 0; c < 3 && TDOCS[d].chunks[c]; c++) {
            int64_t len = (int64_t)strlen(TDOCS[d].chunks[c]);
            sqlite3_bind_int64(sc, 1, doc);
            sqlite3_bind_int(sc, 2, c);
            sqlite3_bind_text(sc, 3, TDOCS[d].chunks[c], -1, SQLITE_STATIC);
            sqlite3_bind_int64(sc, 4, off);
            sqlite3_bind_int64(sc, 5, off + len);
            if (TDOCS[d].page[c]) sqlite3_bind_int(sc, 6, TDOCS[d].page[c]); else sqlite3_bind_null(sc, 6);
            if (TDOCS[d].heading[c]) sqlite3_bind_text(sc, 7, TDOCS[d].heading[c], -1, SQLITE_STATIC);
            else sqlite3_bind_null(sc, 7);
            rc |= sqlite3_step(sc) != SQLITE_DONE;
            sqlite3_reset(sc);
            off += len + 2;
        }
    }
    sqlite3_finalize(sd);
    sqlite3_finalize(sc);
    CHECK(t, rc == 0, "small KB: %s", sqlite3_errmsg(db));
    return db;
}

static int search(pf_retriever *r, const char *q, const pf_search_params *p, pf_search_results *res) {
    pf_error err = {0};
    int rc = pf_retriever_search(r, q, p, res, &err);
    if (rc) fprintf(stderr, "search '%s': %s\n", q, err.msg);
    return rc;
}

static void test_lexical(pf_test *t, pf_retriever *r) {
    pf_search_params p = pf_search_default_params();
    pf_search_results res;
    int rc = search(r, "How do I replace the air filter?", &p, &res);
    CHECK(t, rc == PF_OK && res.mode == PF_SEARCH_BM25, "hybrid without an embedder runs as bm25");
    CHECK(t, res.n >= 2 && !strcmp(res.hits[0].text, FILTER_TEXT), "filter chunk first");
    if (res.n >= 2) {
        const pf_search_hit *h = &res.hits[0];
        CHECK(t, !strcmp(h->doc_key, "/kb/manual.pdf") && !strcmp(h->source, "/kb/manual.pdf") && h->page == 2 &&
                     !strcmp(h->heading, "Pump › Maintenance › Filters") && !strcmp(h->doc_type, "pdf") &&
                     h->start_char > 0 && h->end_char - h->start_char == (int64_t)strlen(FILTER_TEXT) &&
                     h->bm25_rank == 1 && h->dense_rank == 0 && h->score == h->bm25_score && h->score > 0,
              "citation fields of the first hit");
        CHECK(t, h->n_collapsed == 1, "the copy in manual-copy.txt was collapsed (%d)", h->n_collapsed);
        for (int32_t i = 0; i < res.n; i++)
            CHECK(t, strcmp(res.hits[i].doc_key, "/kb/copy/manual-copy.txt"), "copy not listed again");
        for (int32_t i = 1; i < res.n; i++) CHECK(t, res.hits[i].score <= res.hits[i - 1].score, "sorted");
    }
    CHECK(t, res.fts_query && !strcmp(res.fts_query, "\"how\" OR \"do\" OR \"i\" OR \"replace\" OR \"air\" OR \"filter\""),
          "fts query %s", res.fts_query ? res.fts_query : "");
    pf_search_results_free(&res);

    p.dedup = false;
    rc = search(r, "How do I replace the air filter?", &p, &res);
    CHECK(t, rc == PF_OK && res.n >= 2 && !strcmp(res.hits[1].text, FILTER_TEXT), "without dedup both copies come back");
    pf_search_results_free(&res);
    p = pf_search_default_params();

    /* a word in every chunk still counts (FTS5's own bm25() gives it ~1e-6) */
    rc = search(r, "pump", &p, &res);
    int with_pump = 0;
    for (int32_t i = 0; i < res.n; i++) with_pump += res.hits[i].score > 0.01;
    CHECK(t, rc == PF_OK && res.n >= 5 && with_pump == res.n, "common word: %d results, %d scored", res.n, with_pump);
    pf_search_results_free(&res);

    /* filters */
    p.source_glob = "*.md";
    rc = search(r, "pump filter", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 1 && !strcmp(res.hits[0].doc_type, "md"), "glob *.md: %d", res.n);
    pf_search_results_free(&res);
    static const char *const rel_globs[][2] = {{"notes/*.md", "1"}, {"guide.md", "1"}, {"kb/notes", "0"}, {"*/guide.*", "1"}};
    for (size_t i = 0; i < 4; i++) {
        p.source_glob = rel_globs[i][0];
        rc = search(r, "pump filter", &p, &res);
        CHECK(t, rc == PF_OK && res.n == atoi(rel_globs[i][1]), "glob %s: %d results", rel_globs[i][0], res.n);
        pf_search_results_free(&res);
    }
    p.source_glob = "/kb/*";
    p.doc_types = "jsonl, PDF";
    rc = search(r, "pump filter", &p, &res);
    int ok = rc == PF_OK && res.n == 4;
    for (int32_t i = 0; i < res.n; i++) ok &= !strcmp(res.hits[i].doc_type, "pdf") || !strcmp(res.hits[i].doc_key, "rec-7");
    CHECK(t, ok, "types pdf,jsonl: %d results", res.n);
    pf_search_results_free(&res);
    p.source_glob = "/elsewhere/*";
    p.doc_types = NULL;
    rc = search(r, "pump", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 0, "glob without match");
    pf_search_results_free(&res);
    p = pf_search_default_params();

    p.k = 1;
    rc = search(r, "pump", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 1, "k = 1");
    pf_search_results_free(&res);
    p.k = 10;

    static const char *const odd[] = {"", "   ", "!!!", "\"", "foo\" OR \"bar", "NEAR(pump filter)", "pump AND NOT filter",
                                      "text:pump", "*", "^pump", "-pump", "(((", "\xff\xfe", "the of and"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        rc = search(r, odd[i], &p, &res);
        CHECK(t, rc == PF_OK, "odd query '%s'", odd[i]);
        pf_search_results_free(&res);
    }
    rc = search(r, "", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 0, "empty query: no results");
    pf_search_results_free(&res);

    pf_error err = {0};
    p.mode = PF_SEARCH_DENSE;
    rc = pf_retriever_search(r, "pump", &p, &res, &err);
    CHECK(t, rc == PF_ERR_UNSUPPORTED && strstr(err.msg, "embedding model"), "dense without a model: %s", err.msg);
    p.mode = PF_SEARCH_BM25;
    p.k = 0;
    rc = pf_retriever_search(r, "pump", &p, &res, &err);
    CHECK(t, rc == PF_ERR_ARG, "k = 0 refused");
}

/* The cached chunk lengths give FTS5's own lengths, and follow writes from any connection. */
static void test_doclen(pf_test *t, pf_retriever *r, sqlite3 *db, const char *dir) {
    pf_search_params p = pf_search_default_params();
    pf_search_results res;
    int rc = search(r, "pump filter replace", &p, &res);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT pf_bm25(chunks_fts, 0.9, 0.4, NULL, 1.0, 1.0) FROM chunks_fts "
                           "WHERE chunks_fts MATCH ?1 AND rowid = ?2", -1, &st, NULL);
    int same = 0;
    for (int32_t i = 0; st && i < res.n; i++) {
        sqlite3_bind_text(st, 1, res.fts_query, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, res.hits[i].chunk_id);
        if (sqlite3_step(st) == SQLITE_ROW && fabs(sqlite3_column_double(st, 0) - res.hits[i].score) < 1e-12) same++;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    CHECK(t, rc == PF_OK && res.n >= 4 && same == res.n, "cached lengths: %d of %d scores as FTS5's", same, res.n);
    pf_search_results_free(&res);

    char path[600];
    snprintf(path, sizeof path, "%s/small.sqlite", dir);
    sqlite3 *other = NULL;
    sqlite3_open(path, &other);
    rc = sqlite3_exec(other, "INSERT INTO documents(doc_key, source, doc_type, sha256, mtime, size, text_len, ingested_at) "
                             "VALUES ('z', '/kb/z.txt', 'txt', '', 0, 0, 0, 0);"
                             "INSERT INTO chunks(doc_id, ordinal, text, start_char, end_char, n_tokens) "
                             "VALUES (last_insert_rowid(), 0, 'zebra zebra crossing', 0, 20, 3);", NULL, NULL, NULL);
    sqlite3_close(other);
    rc |= search(r, "zebra", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 1 && !strcmp(res.hits[0].doc_key, "z"), "a chunk written by another connection");
    pf_search_results_free(&res);
    sqlite3_exec(db, "DELETE FROM chunks WHERE text LIKE 'zebra%'; DELETE FROM documents WHERE doc_key = 'z';", NULL, NULL, NULL);
    rc = search(r, "zebra", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 0, "and deleted by this one");
    pf_search_results_free(&res);
}

/* Dense and hybrid with the tiny embedder: chunks embedded as ingestion would (heading + text). */
static void test_dense(pf_test *t, sqlite3 *db) {
    char path[512];
    if (!pf_test_data_path(path, sizeof path, "embed", "bert-tiny-cls.gguf")) { printf("SKIP dense: no tiny embedder\n"); return; }
    pf_error err = {0};
    pf_embedder *e = NULL;
    pf_hnsw *h = NULL;
    int rc = pf_embedder_load(path, 1, &e, &err);
    CHECK(t, rc == PF_OK, "embedder: %s", err.msg);
    if (rc) return;
    int32_t dim = (int32_t)pf_embedder_dim(e);
    pf_hnsw_params hp = pf_hnsw_default_params(dim, PF_METRIC_COSINE);
    pf_hnsw_create(&hp, &h, &err);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT id, coalesce(heading || char(10) || char(10), '') || text FROM chunks", -1, &st, NULL);
    float *v = malloc((size_t)dim * sizeof *v);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *txt = (const char *)sqlite3_column_text(st, 1);
        if (pf_embed(e, &txt, 1, v, &err) < 0 || pf_hnsw_add(h, sqlite3_column_int64(st, 0), v, dim, &err)) rc = -1;
    }
    sqlite3_finalize(st);
    CHECK(t, rc == PF_OK, "embedding the small KB: %s", err.msg);
    pf_retriever *r = NULL;
    rc = pf_retriever_open(db, e, h, &r, &err);
    CHECK(t, rc == PF_OK, "retriever: %s", err.msg);
    if (!r) { free(v); pf_hnsw_free(h); pf_embedder_free(e); return; }

    pf_search_params p = pf_search_default_params();
    pf_search_results res;
    rc = search(r, "replace the air filter", &p, &res);
    int both = 0;
    for (int32_t i = 0; i < res.n; i++) both += res.hits[i].bm25_rank && res.hits[i].dense_rank;
    CHECK(t, rc == PF_OK && res.mode == PF_SEARCH_HYBRID && res.n >= 5 && both >= 1, "hybrid: %d hits, %d fused", res.n, both);
    for (int32_t i = 0; i < res.n; i++) {
        const pf_search_hit *x = &res.hits[i];
        double want = (x->bm25_rank ? 1.0 / (60 + x->bm25_rank) : 0) + (x->dense_rank ? 1.0 / (60 + x->dense_rank) : 0);
        CHECK(t, fabs(x->score - want) < 1e-12 && x->chunk_id < 999, "rrf score of hit %d", i);
    }
    pf_search_results_free(&res);

    p.mode = PF_SEARCH_DENSE;
    rc = search(r, "replace the air filter", &p, &res);
    CHECK(t, rc == PF_OK && res.mode == PF_SEARCH_DENSE && res.n >= 5, "dense: %d hits", res.n);
    for (int32_t i = 0; i < res.n; i++)
        CHECK(t, res.hits[i].dense_rank > 0 && res.hits[i].score <= 1.0 + 1e-6 && res.hits[i].score == res.hits[i].dense_score,
              "dense hit %d", i);
    pf_search_results_free(&res);
    p.doc_types = "md";
    rc = search(r, "replace the air filter", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 1 && !strcmp(res.hits[0].doc_type, "md"), "dense with a type filter: %d", res.n);
    pf_search_results_free(&res);
    /* vectors whose chunks are gone (index ahead of the database) are skipped, not an error;
     * 300 of them also push a filtered search past its over-fetch into the exact scan */
    for (int64_t id = 999; id < 1299; id++) {
        char filler[96];
        snprintf(filler, sizeof filler, "filler note %lld about noise, pumps and filters", (long long)id);
        const char *ft = filler;
        if (pf_embed(e, &ft, 1, v, &err) < 0 || pf_hnsw_add(h, id, v, dim, &err)) rc = -1;
    }
    CHECK(t, rc == PF_OK, "filler vectors: %s", err.msg);
    rc = search(r, "noise", &p, &res);
    for (int32_t i = 0; i < res.n; i++) CHECK(t, res.hits[i].chunk_id < 999, "stale vector %d skipped", i);
    pf_search_results_free(&res);
    p.k = 1;
    p.depth = 1;
    for (int i = 0; i < 3; i++) {
        p.source_glob = i == 0 ? "*guide.md" : i == 1 ? "/kb/copy/*" : NULL;
        p.doc_types = i == 2 ? "jsonl" : NULL;
        rc = search(r, "noise", &p, &res);
        CHECK(t, rc == PF_OK && res.n == 1 && res.hits[0].chunk_id < 999 && pf_search_filter_ok(&p, res.hits[0].source, res.hits[0].doc_type),
              "selective dense filter %d: %d hits", i, res.n);
        pf_search_results_free(&res);
    }
    p = pf_search_default_params();
    p.mode = PF_SEARCH_DENSE;
    p.doc_types = NULL;
    p.query_prefix = "";
    rc = search(r, "", &p, &res);
    CHECK(t, rc == PF_OK && res.n == 0, "dense empty query");
    pf_search_results_free(&res);

    free(v);
    pf_retriever_free(r);
    pf_hnsw_free(h);
    pf_embedder_free(e);
}

/* phiforge search: the exact --queries line form, errors naming the line, text output. */
static void test_cli(pf_test *t, const char *dir, const char *kbdir) {
    const char *exe = getenv("PF_PHIFORGE") ? getenv("PF_PHIFORGE") : "build/phiforge";
    if (access(exe, X_OK) != 0) { printf("SKIP cli: %s not built\n", exe); return; }
    char qf[600], cmd[2048];
    static char out[1 << 16];
    snprintf(qf, sizeof qf, "%s/q.jsonl", dir);
    write_file(qf, "{\"id\":\"q1\",\"text\":\"air filter \\\"OR\"}\n\n{\"id\":7,\"text\":\"zzzunknown\"}\n");
    snprintf(cmd, sizeof cmd, "%s search --kb '%s' -k 1 --queries '%s' 2>&1", exe, kbdir, qf);
    int rc = pf_test_run(cmd, out, sizeof out);
    const char *want_prefix = "{\"id\":\"q1\",\"results\":[{\"doc\":\"";
    char *second = strchr(out, '\n');
    CHECK(t, rc == 0 && !strncmp(out, want_prefix, strlen(want_prefix)) && strstr(out, "pump.md\",\"chunk\":") &&
                 strstr(out, ",\"score\":") && strstr(out, ",\"page\":null,\"text\":\"") && second &&
                 !strcmp(second + 1, "{\"id\":7,\"results\":[]}\n"),
          "search --queries (rc %d): %s", rc, out);
    write_file(qf, "{\"id\":1,\"text\":\"filter\"}\n{\"id\":2,\"text\":3}\n");
    rc = pf_test_run(cmd, out, sizeof out);
    CHECK(t, rc == 1 && strstr(out, "q.jsonl:2:") && !strstr(out, "results"), "bad line: rc %d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "%s search --kb '%s' how often is the air filter replaced 2>&1", exe, kbdir);
    rc = pf_test_run(cmd, out, sizeof out);
    CHECK(t, rc == 0 && !strncmp(out, " 1. ", 4) && strstr(out, "pump.md › Pump › Maintenance") && strstr(out, "\n    "),
          "text output: %s", out);
}

/* The same questions against a KB written by the store (pf_kb_ingest of a Markdown file). */
static void test_store_kb(pf_test *t, const char *dir) {
    char kbdir[600], md[600];
    snprintf(kbdir, sizeof kbdir, "%s/kb", dir);
    snprintf(md, sizeof md, "%s/pump.md", dir);
    write_file(md, "# Pump\n\n## Specifications\n\nThe pump delivers 40 litres per minute.\n\n"
                   "## Maintenance\n\nReplace the air filter every 500 hours. Switch the pump off first.\n");
    pf_error err = {0};
    pf_kb *kb = NULL;
    int rc = pf_kb_open(kbdir, true, &kb, &err);
    CHECK(t, rc == PF_OK, "kb open: %s", err.msg);
    if (rc) return;
    pf_ingest_params ip = pf_ingest_default_params();
    pf_ingest_stats st;
    const char *paths[] = {md};
    rc = pf_kb_ingest(kb, paths, 1, &ip, &st, &err);
    CHECK(t, rc == PF_OK && st.failed == 0 && st.chunks >= 1, "ingest: %s", err.msg);
    pf_retriever *r = NULL;
    rc = pf_kb_retriever(kb, true, 1, &r, &err);
    CHECK(t, rc == PF_OK, "pf_kb_retriever: %s", err.msg);
    if (r) {
        pf_search_params p = pf_search_default_params();
        pf_search_results res;
        rc = search(r, "how often should the air filter be replaced", &p, &res);
        CHECK(t, rc == PF_OK && res.n >= 1 && res.mode == PF_SEARCH_BM25 && strstr(res.hits[0].text, "air filter") &&
                     res.hits[0].heading && strstr(res.hits[0].heading, "Maintenance") &&
                     strstr(res.hits[0].source, "pump.md"),
              "store KB: first hit %s", res.n ? res.hits[0].text : "(none)");
        pf_search_results_free(&res);
    }
    pf_retriever_free(r);
    pf_kb_close(kb);
    test_cli(t, dir, kbdir);
}

static void test_retrieve_kb(pf_test *t, const char *dir) {
    sqlite3 *db = small_kb(t, dir);
    pf_retriever *r = NULL;
    pf_error err = {0};
    int rc = pf_retriever_open(db, NULL, NULL, &r, &err);
    CHECK(t, rc == PF_OK, "retriever: %s", err.msg);
    if (r) test_lexical(t, r);
    if (r) test_doclen(t, r, db, dir);
    pf_retriever_free(r);
    test_dense(t, db);
    sqlite3_close(db);

    sqlite3_open(":memory:", &db);
    rc = pf_retriever_open(db, NULL, NULL, &r, &err);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(err.msg, "not a knowledge base"), "empty database refused: %s", err.msg);
    sqlite3_close(db);
    test_store_kb(t, dir);
}

int main(void) {
    pf_test t = {0};
    char dir[] = "/tmp/pf_retrieve_XXXXXX";
    CHECK(&t, mkdtemp(dir) != NULL, "mkdtemp");
    sqlite3 *db = NULL;
    sqlite3_open(":memory:", &db);
    test_tokenizer(&t, db);
    test_porter(&t, db);
    test_fts_query(&t, db);
    sqlite3_close(db);
    test_trec_metrics_okapi(&t, dir);
    test_fusion_dedup(&t);
    test_retrieve_kb(&t, dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(&t, system(cmd) == 0, "cleanup");
    return TEST_REPORT(&t);
}
