/* After retrieval: reciprocal rank fusion of the two lists, and near-duplicate signatures.
 *
 * RRF (Cormack, Clarke & Büttcher 2009): score(c) = Σ_lists w / (rrf_k + rank), rank 1-based.
 * It needs only ranks, so BM25 scores and cosine similarities never have to be made comparable.
 *
 * Near-duplicates: the same passage often sits in several files (a copied policy, a PDF and its
 * DOCX, a page footer). Two chunks are the same passage when their normalized token sequences
 * are equal (tokens as the index sees them: case, diacritics and punctuation ignored) or when
 * the Jaccard similarity of their sets of word 3-shingles reaches the threshold (0.9 keeps
 * chunks that differ by a sentence apart; chunks of one document that merely overlap by the
 * chunker's overlap stay well below it). */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "kb/retrieve.h"

int pf_cand_push(pf_cand_list *l, pf_cand c) {
    if (l->n == l->cap) {
        int32_t nc = l->cap ? l->cap * 2 : 64;
        pf_cand *nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) return PF_ERR_NOMEM;
        l->v = nv; l->cap = nc;
    }
    l->v[l->n++] = c;
    return PF_OK;
}

static int cmp_chunk(const void *a, const void *b) {
    const pf_cand *x = a, *y = b;
    return (x->chunk_id > y->chunk_id) - (x->chunk_id < y->chunk_id);
}

static int32_t best_rank(const pf_cand *c) {
    int32_t a = c->bm25_rank ? c->bm25_rank : INT32_MAX, b = c->dense_rank ? c->dense_rank : INT32_MAX;
    return a < b ? a : b;
}

static int cmp_fused(const void *a, const void *b) {
    const pf_cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    int32_t rx = best_rank(x), ry = best_rank(y);
    if (rx != ry) return rx < ry ? -1 : 1;
    return (x->chunk_id > y->chunk_id) - (x->chunk_id < y->chunk_id);
}

int pf_rrf_fuse(const pf_cand_list *bm25, const pf_cand_list *dense, const pf_search_params *p, pf_cand_list *out) {
    out->n = 0;
    pf_cand_list all = {0};
    for (int32_t i = 0; i < bm25->n; i++) {
        pf_cand c = {.chunk_id = bm25->v[i].chunk_id, .bm25 = bm25->v[i].score, .bm25_rank = i + 1};
        if (pf_cand_push(&all, c)) { free(all.v); return PF_ERR_NOMEM; }
    }
    for (int32_t i = 0; i < dense->n; i++) {
        pf_cand c = {.chunk_id = dense->v[i].chunk_id, .dense = dense->v[i].score, .dense_rank = i + 1};
        if (pf_cand_push(&all, c)) { free(all.v); return PF_ERR_NOMEM; }
    }
    if (all.n) qsort(all.v, (size_t)all.n, sizeof *all.v, cmp_chunk);
    for (int32_t i = 0; i < all.n;) {
        pf_cand m = all.v[i];
        int32_t j = i + 1;
        for (; j < all.n && all.v[j].chunk_id == m.chunk_id; j++) {
            if (all.v[j].bm25_rank) { m.bm25_rank = all.v[j].bm25_rank; m.bm25 = all.v[j].bm25; }
            if (all.v[j].dense_rank) { m.dense_rank = all.v[j].dense_rank; m.dense = all.v[j].dense; }
        }
        m.score = 0.0;
        if (m.bm25_rank) m.score += p->w_bm25 / (p->rrf_k + m.bm25_rank);
        if (m.dense_rank) m.score += p->w_dense / (p->rrf_k + m.dense_rank);
        if (pf_cand_push(out, m)) { free(all.v); return PF_ERR_NOMEM; }
        i = j;
    }
    free(all.v);
    if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_fused);
    return PF_OK;
}

/* ---- near-duplicate signatures ------------------------------------------------------------ */

typedef struct sig_build {
    uint64_t exact, w[3]; /* rolling window of the last three token hashes */
    size_t n_tok;
    uint64_t *sh;
    size_t n, cap;
    bool oom;
} sig_build;

static uint64_t fnv(const char *s, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

static uint64_t mix(uint64_t x) { /* splitmix64 finalizer */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int on_sig_token(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)start, (void)end;
    sig_build *b = ctx;
    uint64_t h = fnv(tok, len, 1469598103934665603ull);
    b->exact = mix(b->exact ^ h) + len;
    b->w[0] = b->w[1]; b->w[1] = b->w[2]; b->w[2] = h;
    if (++b->n_tok < 3) return 0;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 128;
        uint64_t *ns = realloc(b->sh, nc * sizeof *ns);
        if (!ns) { b->oom = true; return 1; }
        b->sh = ns; b->cap = nc;
    }
    b->sh[b->n++] = mix(b->w[0] * 3 + mix(b->w[1] * 5 + mix(b->w[2])));
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int pf_dedup_sig_make(const char *text, pf_dedup_sig *out) {
    sig_build b = {.exact = 0x9e3779b97f4a7c15ull};
    pf_ir_tokenize(text, strlen(text), on_sig_token, &b);
    if (b.oom) { free(b.sh); return PF_ERR_NOMEM; }
    if (b.n) qsort(b.sh, b.n, sizeof *b.sh, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < b.n; i++)
        if (!u || b.sh[u - 1] != b.sh[i]) b.sh[u++] = b.sh[i];
    out->exact = b.exact ^ b.n_tok;
    out->shingles = b.sh;
    out->n = u;
    return PF_OK;
}

void pf_dedup_sig_free(pf_dedup_sig *s) {
    if (!s) return;
    free(s->shingles);
    memset(s, 0, sizeof *s);
}

double pf_dedup_jaccard(const pf_dedup_sig *a, const pf_dedup_sig *b) {
    if (!a->n || !b->n) return a->n == b->n && a->exact == b->exact ? 1.0 : 0.0;
    size_t i = 0, j = 0, inter = 0;
    while (i < a->n && j < b->n) {
        if (a->shingles[i] == b->shingles[j]) { inter++; i++; j++; }
        else if (a->shingles[i] < b->shingles[j]) i++;
        else j++;
    }
    return (double)inter / (double)(a->n + b->n - inter);
}

bool pf_dedup_same(const pf_dedup_sig *a, const pf_dedup_sig *b, double threshold) {
    if (a->exact == b->exact) return true;
    return pf_dedup_jaccard(a, b) >= threshold;
}
