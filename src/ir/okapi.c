/* Textbook Okapi BM25 over an in-memory inverted index: the yardstick the FTS5 ranking is tested
 * against. score(q, d) = Σ_{distinct t in q} idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·|d|/avgdl)),
 * |d| = tokens in d (after the optional stopword removal), idf RSJ or Lucene's (see ir.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct posting { uint32_t doc, tf; } posting;

typedef struct term {
    char *s;
    posting *p;
    uint32_t n, cap;
} term;

struct pf_ir_bm25 {
    pf_ir_bm25_params prm;
    term *terms;            /* term id -> postings                       */
    uint32_t n_terms, cap_terms;
    uint32_t *slots;        /* open-addressing table: term id + 1, 0 empty */
    uint32_t n_slots;
    uint32_t *doc_len;
    uint32_t n_docs, cap_docs;
    uint64_t total_len;
    double *acc;            /* per-document score accumulator (search)   */
    uint32_t acc_cap;
};

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

pf_ir_bm25_params pf_ir_bm25_defaults(void) {
    return (pf_ir_bm25_params){.k1 = 1.2, .b = 0.75, .idf = PF_IR_IDF_RSJ, .stem = true, .stopwords = false};
}

int pf_ir_bm25_new(const pf_ir_bm25_params *p, pf_ir_bm25 **out, pf_error *err) {
    *out = NULL;
    pf_ir_bm25 *ix = calloc(1, sizeof *ix);
    if (!ix) return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory");
    ix->prm = p ? *p : pf_ir_bm25_defaults();
    ix->n_slots = 1u << 12;
    ix->slots = calloc(ix->n_slots, sizeof *ix->slots);
    if (!ix->slots) { free(ix); return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory"); }
    *out = ix;
    return PF_OK;
}

void pf_ir_bm25_free(pf_ir_bm25 *ix) {
    if (!ix) return;
    for (uint32_t i = 0; i < ix->n_terms; i++) { free(ix->terms[i].s); free(ix->terms[i].p); }
    free(ix->terms); free(ix->slots); free(ix->doc_len); free(ix->acc);
    free(ix);
}

/* Slot of term s (its id + 1 in *slot, or 0 when absent). */
static uint32_t *find_slot(const pf_ir_bm25 *ix, const char *s, size_t n) {
    uint32_t mask = ix->n_slots - 1, i = (uint32_t)hash_str(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t id = ix->slots[i];
        if (!id) return &ix->slots[i];
        const char *t = ix->terms[id - 1].s;
        if (strlen(t) == n && !memcmp(t, s, n)) return &ix->slots[i];
    }
}

static int grow_slots(pf_ir_bm25 *ix) {
    uint32_t ns = ix->n_slots * 2;
    uint32_t *sl = calloc(ns, sizeof *sl);
    if (!sl) return PF_ERR_NOMEM;
    free(ix->slots);
    ix->slots = sl; ix->n_slots = ns;
    for (uint32_t id = 0; id < ix->n_terms; id++) *find_slot(ix, ix->terms[id].s, strlen(ix->terms[id].s)) = id + 1;
    return PF_OK;
}

/* Term id of s, created when absent; -1 when out of memory. */
static int64_t term_id(pf_ir_bm25 *ix, const char *s, size_t n) {
    uint32_t *slot = find_slot(ix, s, n);
    if (*slot) return *slot - 1;
    if ((ix->n_terms + 1) * 2 > ix->n_slots) {
        if (grow_slots(ix)) return -1;
        slot = find_slot(ix, s, n);
    }
    if (ix->n_terms == ix->cap_terms) {
        uint32_t nc = ix->cap_terms ? ix->cap_terms * 2 : 1024;
        term *nt = realloc(ix->terms, nc * sizeof *nt);
        if (!nt) return -1;
        ix->terms = nt; ix->cap_terms = nc;
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, s, n); c[n] = '\0';
    ix->terms[ix->n_terms] = (term){c, NULL, 0, 0};
    *slot = ++ix->n_terms;
    return ix->n_terms - 1;
}

/* Terms of one text, as ids (lookup-only when `create` is false: unknown terms are skipped). */
typedef struct collect {
    pf_ir_bm25 *ix;
    bool create;
    uint32_t *ids;
    size_t n, cap;
    uint32_t n_tokens;
    int rc;
} collect;

static int on_token(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)start, (void)end;
    collect *c = ctx;
    if (c->ix->prm.stopwords && pf_ir_is_stopword(tok, len)) return 0;
    c->n_tokens++;
    char w[PF_IR_MAX_TOKEN + 1];
    memcpy(w, tok, len + 1);
    if (c->ix->prm.stem) len = pf_ir_porter(w, len);
    int64_t id;
    if (c->create) {
        id = term_id(c->ix, w, len);
        if (id < 0) return c->rc = PF_ERR_NOMEM;
    } else {
        uint32_t *slot = find_slot(c->ix, w, len);
        if (!*slot) return 0;
        id = *slot - 1;
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        uint32_t *ni = realloc(c->ids, nc * sizeof *ni);
        if (!ni) return c->rc = PF_ERR_NOMEM;
        c->ids = ni; c->cap = nc;
    }
    c->ids[c->n++] = (uint32_t)id;
    return 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int pf_ir_bm25_add(pf_ir_bm25 *ix, const char *text, pf_error *err) {
    collect c = {.ix = ix, .create = true};
    pf_ir_tokenize(text, strlen(text), on_token, &c);
    if (c.rc) { free(c.ids); return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory"); }
    if (ix->n_docs == ix->cap_docs) {
        uint32_t nc = ix->cap_docs ? ix->cap_docs * 2 : 1024;
        uint32_t *nl = realloc(ix->doc_len, nc * sizeof *nl);
        if (!nl) { free(c.ids); return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory"); }
        ix->doc_len = nl; ix->cap_docs = nc;
    }
    uint32_t doc = ix->n_docs++;
    ix->doc_len[doc] = c.n_tokens;
    ix->total_len += c.n_tokens;
    if (c.n) qsort(c.ids, c.n, sizeof *c.ids, cmp_u32);
    for (size_t i = 0; i < c.n;) {
        size_t j = i;
        while (j < c.n && c.ids[j] == c.ids[i]) j++;
        term *t = &ix->terms[c.ids[i]];
        if (t->n == t->cap) {
            uint32_t nc = t->cap ? t->cap * 2 : 4;
            posting *np = realloc(t->p, nc * sizeof *np);
            if (!np) { free(c.ids); return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory"); }
            t->p = np; t->cap = nc;
        }
        t->p[t->n++] = (posting){doc, (uint32_t)(j - i)};
        i = j;
    }
    free(c.ids);
    return PF_OK;
}

static double idf(const pf_ir_bm25 *ix, uint32_t df) {
    double N = ix->n_docs, n = df, r = (N - n + 0.5) / (n + 0.5);
    return ix->prm.idf == PF_IR_IDF_LUCENE ? log(1.0 + r) : log(r);
}

typedef struct scored { uint32_t doc; double s; } scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

int pf_ir_bm25_search(pf_ir_bm25 *ix, const char *query, size_t n_max, uint32_t *docs, double *scores,
                      size_t *n, pf_error *err) {
    *n = 0;
    if (!ix->n_docs) return PF_OK;
    collect c = {.ix = ix, .create = false};
    pf_ir_tokenize(query, strlen(query), on_token, &c);
    if (c.rc) { free(c.ids); return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory"); }
    if (ix->acc_cap < ix->n_docs) {
        free(ix->acc);
        ix->acc = malloc(ix->n_docs * sizeof *ix->acc);
        ix->acc_cap = ix->acc ? ix->n_docs : 0;
        if (!ix->acc) { free(c.ids); return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory"); }
    }
    scored *hit = malloc(ix->n_docs * sizeof *hit);
    unsigned char *touched = calloc(ix->n_docs, 1);
    if (!hit || !touched) {
        free(hit); free(touched); free(c.ids);
        return pf_error_set(err, PF_ERR_NOMEM, "bm25: out of memory");
    }
    size_t nh = 0;
    double avgdl = (double)ix->total_len / ix->n_docs, k1 = ix->prm.k1, b = ix->prm.b;
    if (c.n) qsort(c.ids, c.n, sizeof *c.ids, cmp_u32);
    for (size_t i = 0; i < c.n; i++) {
        if (i && c.ids[i] == c.ids[i - 1]) continue; /* distinct query terms */
        const term *t = &ix->terms[c.ids[i]];
        double w = idf(ix, t->n);
        for (uint32_t j = 0; j < t->n; j++) {
            uint32_t d = t->p[j].doc;
            double tf = t->p[j].tf, norm = k1 * (1.0 - b + b * ix->doc_len[d] / avgdl);
            double s = w * tf * (k1 + 1.0) / (tf + norm);
            if (!touched[d]) { touched[d] = 1; ix->acc[d] = 0.0; hit[nh++].doc = d; }
            ix->acc[d] += s;
        }
    }
    for (size_t i = 0; i < nh; i++) hit[i].s = ix->acc[hit[i].doc];
    qsort(hit, nh, sizeof *hit, cmp_scored);
    for (size_t i = 0; i < nh && i < n_max; i++) {
        docs[i] = hit[i].doc;
        if (scores) scores[i] = hit[i].s;
        (*n)++;
    }
    free(hit); free(touched); free(c.ids);
    return PF_OK;
}
