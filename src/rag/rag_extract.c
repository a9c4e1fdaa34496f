/* Extractive answers: without a language model, the answer is the passages' own sentences that
 * match the question, each group cited.
 *
 * Sentence score = share of the question's IDF weight the sentence holds (same terms and
 * weights as the relevance gate) + 0.05 / (rank + 1) so that, between equal sentences, the one
 * from the better-ranked passage wins. Sentences are taken best first while they score at least
 * min_rel x the best one and fit max_chars; they are then printed per source (sources in rank
 * order), in document order, whitespace collapsed, each group closed by its citation. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rag/rag_internal.h"

pf_rag_extract_params pf_rag_extract_default_params(void) {
    return (pf_rag_extract_params){.max_chars = 700, .max_sentences = 8, .min_rel = 0.5};
}

/* ---- sentence splitting --------------------------------------------------------------------- */

static const char *const ABBREV[] = {"e.g", "i.e", "etc", "vs", "fig", "no", "approx", "dr", "mr", "mrs", "ms",
                                     "st", "cf", "al", "ca", "min", "max", "ref", "sec", "vol", "p", "pp"};

/* The word ending at text[dot] (exclusive) is an abbreviation or a single-letter initial. */
static bool is_abbrev(const char *text, size_t dot) {
    size_t s = dot;
    while (s > 0 && (isalpha((unsigned char)text[s - 1]) || text[s - 1] == '.')) s--;
    size_t n = dot - s;
    if (n == 1 && isupper((unsigned char)text[s])) return true; /* "J. Smith" */
    for (size_t i = 0; i < sizeof ABBREV / sizeof ABBREV[0]; i++)
        if (strlen(ABBREV[i]) == n && !strncasecmp(ABBREV[i], text + s, n)) return true;
    return false;
}

/* A line break at text[i] ('\n') that only wraps a sentence: a lower-case letter or a comma
 * before it and a lower-case letter after it. */
static bool soft_wrap(const char *text, size_t len, size_t i) {
    size_t a = i;
    while (a > 0 && (text[a - 1] == ' ' || text[a - 1] == '\t' || text[a - 1] == '\r')) a--;
    size_t b = i + 1;
    while (b < len && (text[b] == ' ' || text[b] == '\t')) b++;
    if (a == 0 || b >= len || text[b] == '\n') return false;
    char p = text[a - 1], q = text[b];
    return (islower((unsigned char)p) || p == ',') && islower((unsigned char)q);
}

int64_t pf_rag_split_sentences(const char *text, size_t len, int64_t *spans, int64_t cap) {
    int64_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        bool cut = false;
        size_t next = i; /* where the next sentence may begin */
        if (i == len) cut = true;
        else if (text[i] == '\n' && !soft_wrap(text, len, i)) cut = true, next = i + 1;
        else if (text[i] == '.' || text[i] == '!' || text[i] == '?') {
            size_t j = i + 1;
            while (j < len && (text[j] == '"' || text[j] == '\'' || text[j] == ')' || text[j] == ']')) j++;
            if (j < len && (text[j] == ' ' || text[j] == '\t')) {
                size_t k = j;
                while (k < len && (text[k] == ' ' || text[k] == '\t')) k++;
                bool lower_next = k < len && islower((unsigned char)text[k]);
                if (!lower_next && !(text[i] == '.' && is_abbrev(text, i))) cut = true, i = j, next = j;
            } else if (j == len || text[j] == '\n') {
                cut = true, i = j, next = j;
            }
        }
        if (!cut) continue;
        size_t s = start, e = i;
        while (s < e && isspace((unsigned char)text[s])) s++;
        while (e > s && isspace((unsigned char)text[e - 1])) e--;
        if (e > s) {
            if (n < cap && spans) spans[2 * n] = (int64_t)s, spans[2 * n + 1] = (int64_t)e;
            n++;
        }
        start = next;
        if (i >= len) break;
        if (next > i) i = next - 1;
    }
    return n;
}

/* ---- selection -------------------------------------------------------------------------------- */

typedef struct cand {
    int32_t hit;
    int64_t seq;        /* sentence number inside its passage */
    int64_t start, end;
    double score;       /* 0: shares no term with the question */
    bool chosen, cont;  /* cont: begins with a word that points back ("It", "This", ...) */
} cand;

/* A sentence that begins with a pronoun continues the one before it ("Cavitation sounds like
 * gravel. It is caused by a clogged strainer."): it is kept with that sentence. */
static bool continues(const char *s, int64_t len) {
    static const char *const W[] = {"It ", "It's ", "Its ", "This ", "These ", "They ", "That ", "Those ", "Such ", "Their "};
    for (size_t i = 0; i < sizeof W / sizeof W[0]; i++) {
        size_t n = strlen(W[i]);
        if ((int64_t)n <= len && !memcmp(s, W[i], n)) return true;
    }
    return false;
}

static int by_score(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    if (x->hit != y->hit) return x->hit < y->hit ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int by_place(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->hit != y->hit) return x->hit < y->hit ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* A growable output string. */
typedef struct obuf {
    char *s;
    size_t n, cap;
    bool oom;
} obuf;

static void ob_reserve(obuf *b, size_t extra) {
    if (b->oom || b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) { b->oom = true; return; }
    b->s = ns, b->cap = cap;
}

static void ob_str(obuf *b, const char *s) {
    size_t l = strlen(s);
    ob_reserve(b, l);
    if (b->oom) return;
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

/* Appends text[s..e) with runs of whitespace collapsed to one space. */
static void ob_collapsed(obuf *b, const char *text, int64_t s, int64_t e) {
    ob_reserve(b, (size_t)(e - s));
    if (b->oom) return;
    bool space = false;
    for (int64_t i = s; i < e; i++) {
        if (isspace((unsigned char)text[i])) { space = true; continue; }
        if (space) b->s[b->n++] = ' ';
        space = false;
        b->s[b->n++] = text[i];
    }
    b->s[b->n] = '\0';
}

/* The sentence is the last part of the passage's heading path (a heading that reads as a
 * sentence, such as an FAQ question): not an answer. */
static bool is_heading(const pf_search_hit *h, const char *s, int64_t len) {
    if (!h->heading) return false;
    const char *last = h->heading, *p;
    while ((p = strstr(last, "\xE2\x80\xBA")) != NULL) last = p + 3;
    while (*last == ' ') last++;
    return (int64_t)strlen(last) == len && !memcmp(last, s, (size_t)len);
}

int pf_rag_extract_answer(pf_kb *kb, const char *question, const pf_search_hit *hits, int32_t n_hits,
                          const pf_rag_extract_params *p, pf_rag_extract *out, pf_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!question || !out || n_hits < 0 || (n_hits && !hits))
        return pf_error_set(err, PF_ERR_ARG, "pf_rag_extract_answer: invalid argument");
    pf_rag_extract_params def = pf_rag_extract_default_params();
    if (!p) p = &def;
    rag_terms t;
    int rc = rag_terms_build(kb, question, &t, err);
    if (rc) return rc;
    cand *c = NULL;
    int64_t *spans = NULL;
    size_t nc = 0, capc = 0;
    char *text = NULL;
    for (int32_t h = 0; h < n_hits && t.n; h++) {
        const char *s = hits[h].text ? hits[h].text : "";
        size_t len = strlen(s);
        int64_t ns = pf_rag_split_sentences(s, len, NULL, 0);
        free(spans);
        spans = malloc(((size_t)ns + 1) * 2 * sizeof *spans);
        if (!spans) goto oom;
        pf_rag_split_sentences(s, len, spans, ns);
        for (int64_t i = 0; i < ns; i++) {
            int64_t a = spans[2 * i], b = spans[2 * i + 1];
            if (rag_count_words(s + a, (size_t)(b - a)) < 3 || is_heading(&hits[h], s + a, b - a)) continue;
            double share = rag_terms_share(&t, rag_terms_match(&t, s + a, (size_t)(b - a)));
            if (nc == capc) {
                capc = capc ? 2 * capc : 64;
                cand *ncand = realloc(c, capc * sizeof *c);
                if (!ncand) goto oom;
                c = ncand;
            }
            c[nc++] = (cand){h, i, a, b, share > 0 ? share + 0.05 / (h + 1) : 0, false, continues(s + a, b - a)};
        }
    }
    qsort(c, nc, sizeof *c, by_score);
    int32_t n_chosen = 0;
    int64_t used = 0;
    for (size_t i = 0; i < nc && n_chosen < p->max_sentences && c[i].score > 0; i++) {
        if (c[i].score < p->min_rel * c[0].score) break;
        int64_t l = c[i].end - c[i].start;
        if (used + l > p->max_chars && n_chosen > 0) continue; /* a shorter one may still fit */
        c[i].chosen = true, used += l, n_chosen++;
    }
    qsort(c, nc, sizeof *c, by_place);
    for (size_t i = 0; i + 1 < nc; i++) { /* a chosen sentence brings the one that continues it */
        cand *x = &c[i + 1];
        int64_t l = x->end - x->start;
        if (c[i].chosen && !x->chosen && x->cont && x->hit == c[i].hit && x->seq == c[i].seq + 1 &&
            used + l <= p->max_chars && n_chosen < p->max_sentences)
            x->chosen = true, used += l, n_chosen++;
    }
    if (n_chosen == 0) { /* the words are only in a heading or title: quote that passage's start */
        int32_t best = -1;
        for (int32_t h = 0; h < n_hits && best < 0 && t.n; h++)
            if (rag_terms_match_hit(&t, &hits[h])) best = h;
        for (size_t i = 0; i < nc && best >= 0 && n_chosen < 2; i++) {
            int64_t l = c[i].end - c[i].start;
            if (c[i].hit != best || (used + l > p->max_chars && n_chosen > 0)) continue;
            c[i].chosen = true, used += l, n_chosen++;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < nc; i++)
        if (c[i].chosen) c[m++] = c[i];
    out->sentences = calloc(m + 1, sizeof *out->sentences);
    if (!out->sentences) goto oom;
    obuf b = {0};
    ob_str(&b, "");
    for (size_t i = 0; i < m; i++) {
        if (i > 0) ob_str(&b, c[i].hit != c[i - 1].hit ? "\n" : " ");
        ob_collapsed(&b, hits[c[i].hit].text, c[i].start, c[i].end);
        if (i + 1 == m || c[i + 1].hit != c[i].hit) {
            char cite[24];
            snprintf(cite, sizeof cite, " [%d]", c[i].hit + 1);
            ob_str(&b, cite);
        }
        out->sentences[i] = (pf_rag_sentence){c[i].hit + 1, c[i].start, c[i].end, c[i].score};
    }
    text = b.s;
    if (b.oom) goto oom;
    out->n_sentences = (int32_t)m;
    out->text = text;
    free(c);
    free(spans);
    rag_terms_free(&t);
    return PF_OK;
oom:
    free(c);
    free(spans);
    free(text);
    rag_terms_free(&t);
    pf_rag_extract_free(out);
    return pf_error_set(err, PF_ERR_NOMEM, "extractive answer: out of memory");
}

void pf_rag_extract_free(pf_rag_extract *x) {
    if (!x) return;
    free(x->text);
    free(x->sentences);
    memset(x, 0, sizeof *x);
}
