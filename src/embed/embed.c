/* Embedder API and batch driver. Texts are tokenized ([CLS] ... [SEP], cut to max_tokens),
 * sorted longest first and packed into batches of at most max_rows token rows, each sequence
 * padded to the longest of its batch; one forward pass per batch:
 *   x = LayerNorm(E_tok[id] + E_type[0] (+ E_pos[t], bert))
 *   per layer:  bert:   q, k, v = W{q,k,v} x + b           nomic: [q|k|v] = Wqkv x, RoPE(q, k)
 *               x = LayerNorm(x + Wo · Attn(q, k, v) (+ bo))              (attn_output_norm)
 *               bert:   f = Wdown · GELU(Wup x + bup) + bdown
 *               nomic:  f = Wdown · ((Wup x) ⊙ silu(Wgate x))
 *               x = LayerNorm(x + f)                                     (layer_output_norm)
 *   out = L2-normalize(pool(x over the sequence's real tokens))
 * Buffers grow with the largest batch seen and are reused; nothing is allocated per token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed/embed_internal.h"

/* ---- buffers ------------------------------------------------------------------------------ */

static void work_free(pfe_work *w) {
    free(w->x), free(w->y), free(w->qkv), free(w->att), free(w->kt), free(w->vt), free(w->ff), free(w->ff2);
    free(w->mask), free(w->rope), free(w->scores);
    memset(w, 0, sizeof *w);
}

/* Work buffers for `rows` rows of sequences padded to `len`. */
static int work_reserve(pf_embedder *e, int64_t rows, int64_t len, pf_error *err) {
    pfe_work *w = &e->w;
    if (rows <= w->rows && len <= w->len) return PF_OK;
    rows = rows > w->rows ? rows : w->rows;
    len = len > w->len ? len : w->len;
    work_free(w);
    const size_t R = (size_t)rows, E = (size_t)e->hp.n_embd, F = (size_t)e->hp.n_ff, f = sizeof(float);
    w->x = malloc(R * E * f), w->y = malloc(R * E * f), w->qkv = malloc(3 * R * E * f), w->att = malloc(R * E * f);
    w->kt = malloc(R * E * f), w->vt = malloc(R * E * f);
    w->ff = malloc(R * F * f), w->ff2 = e->hp.arch == PFE_NOMIC ? malloc(R * F * f) : NULL;
    w->mask = malloc(R * f), w->rope = malloc((size_t)len * (size_t)e->hp.head_dim * f);
    w->scores = malloc((size_t)e->n_threads * (size_t)len * f);
    if (!w->x || !w->y || !w->qkv || !w->att || !w->kt || !w->vt || !w->ff || (e->hp.arch == PFE_NOMIC && !w->ff2) || !w->mask ||
        !w->rope || !w->scores) {
        work_free(w);
        return pf_error_set(err, PF_ERR_NOMEM, "embedder: out of memory for a batch of %lld rows", (long long)rows);
    }
    w->rows = rows, w->len = len;
    return PF_OK;
}

/* Bookkeeping arrays for n sequences. */
static void order_free(pf_embedder *e) {
    free(e->key), free(e->len), free(e->slen), free(e->seq), free(e->sseq), free(e->dst), free(e->sdst);
    e->key = NULL, e->len = e->slen = NULL, e->seq = e->sseq = NULL, e->dst = e->sdst = NULL, e->order_cap = 0;
}

static int order_reserve(pf_embedder *e, int64_t n, pf_error *err) {
    if (n <= e->order_cap) return PF_OK;
    const size_t cap = (size_t)(n > 2 * e->order_cap ? n : 2 * e->order_cap);
    order_free(e);
    e->key = malloc(cap * sizeof *e->key);
    e->len = malloc(cap * sizeof *e->len), e->slen = malloc(cap * sizeof *e->slen);
    e->seq = malloc(cap * sizeof *e->seq), e->sseq = malloc(cap * sizeof *e->sseq);
    e->dst = malloc(cap * sizeof *e->dst), e->sdst = malloc(cap * sizeof *e->sdst);
    if (!e->key || !e->len || !e->slen || !e->seq || !e->sseq || !e->dst || !e->sdst) {
        order_free(e);
        return pf_error_set(err, PF_ERR_NOMEM, "embedder: out of memory for %lld texts", (long long)n);
    }
    e->order_cap = (int64_t)cap;
    return PF_OK;
}

/* ---- forward ------------------------------------------------------------------------------ */

static int layer_fwd(pf_embedder *e, const pfe_layer *L, const pfe_batch *b, pf_error *err) {
    pfe_work *w = &e->w;
    const int64_t R = b->n_seq * b->len, E = e->hp.n_embd;
    int rc;
    if (e->hp.arch == PFE_BERT) {
        if ((rc = pfe_linear_fwd(e, &L->q, w->x, R, w->qkv, err)) ||
            (rc = pfe_linear_fwd(e, &L->k, w->x, R, w->qkv + R * E, err)) ||
            (rc = pfe_linear_fwd(e, &L->v, w->x, R, w->qkv + 2 * R * E, err)))
            return rc;
        pfe_attention(e, b, w->qkv, w->qkv + R * E, w->qkv + 2 * R * E, E);
    } else {
        if ((rc = pfe_linear_fwd(e, &L->qkv, w->x, R, w->qkv, err))) return rc;
        pfe_rope(e, b);
        pfe_attention(e, b, w->qkv, w->qkv + E, w->qkv + 2 * E, 3 * E);
    }
    if ((rc = pfe_linear_fwd(e, &L->o, w->att, R, w->y, err))) return rc;
    pfe_layernorm(e, w->x, w->y, &L->attn_norm, R);
    if ((rc = pfe_linear_fwd(e, &L->up, w->x, R, w->ff, err))) return rc;
    if (e->hp.arch == PFE_BERT) {
        pfe_gelu(e, w->ff, R * e->hp.n_ff);
    } else {
        if ((rc = pfe_linear_fwd(e, &L->gate, w->x, R, w->ff2, err))) return rc;
        pfe_swiglu(e, w->ff, w->ff2, R * e->hp.n_ff);
    }
    if ((rc = pfe_linear_fwd(e, &L->down, w->ff, R, w->y, err))) return rc;
    pfe_layernorm(e, w->x, w->y, &L->out_norm, R);
    return PF_OK;
}

static int forward(pf_embedder *e, const pfe_batch *b, float *const *dst, pf_error *err) {
    int rc = work_reserve(e, b->n_seq * b->len, b->len, err);
    if (rc) return rc;
    pfe_embed_rows(e, b);
    pfe_layernorm(e, e->w.x, NULL, &e->tok_norm, b->n_seq * b->len);
    for (int64_t il = 0; il < e->hp.n_layer && !rc; il++) rc = layer_fwd(e, &e->layers[il], b, err);
    if (!rc) pfe_pool(e, b, dst);
    return rc;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Embeds sequences e->seq[i][0..e->len[i]) into e->dst[i], i < n: sorted longest first
 * (ties in input order), in batches of at most max_rows rows (a longer sequence runs alone). */
static int embed_seqs(pf_embedder *e, int64_t n, pf_error *err) {
    for (int64_t i = 0; i < n; i++) e->key[i] = (uint64_t)(UINT32_MAX - (uint64_t)e->len[i]) << 32 | (uint64_t)i;
    qsort(e->key, (size_t)n, sizeof *e->key, cmp_u64);
    for (int64_t k = 0; k < n; k++) {
        const int64_t i = (int64_t)(e->key[k] & 0xFFFFFFFFu);
        e->slen[k] = e->len[i], e->sseq[k] = e->seq[i], e->sdst[k] = e->dst[i];
    }
    for (int64_t p = 0; p < n;) {
        const int64_t len = e->slen[p];
        int64_t nb = e->max_rows / len;
        nb = nb < 1 ? 1 : nb > n - p ? n - p : nb;
        pfe_batch b = {.n_seq = nb, .len = len, .ids = e->sseq + p, .n_tok = e->slen + p};
        int rc = forward(e, &b, e->sdst + p, err);
        if (rc) return rc;
        p += nb;
    }
    return PF_OK;
}

/* ---- public API --------------------------------------------------------------------------- */

int64_t pf_embed(pf_embedder *e, const char *const *texts, int64_t n, float *out, pf_error *err) {
    if (!e || n < 0 || (n > 0 && (!texts || !out))) return pf_error_set(err, PF_ERR_ARG, "pf_embed: invalid argument");
    for (int64_t i = 0; i < n; i++)
        if (!texts[i]) return pf_error_set(err, PF_ERR_ARG, "pf_embed: text %lld is NULL", (long long)i);
    const int64_t maxt = e->hp.n_ctx, E = e->hp.n_embd;
    const int64_t budget = 4 * e->max_rows > maxt ? 4 * e->max_rows : maxt;
    if (e->tok_cap < budget + maxt) {
        free(e->tok_ids);
        e->tok_cap = 0;
        if (!(e->tok_ids = malloc((size_t)(budget + maxt) * sizeof(int32_t))))
            return pf_error_set(err, PF_ERR_NOMEM, "pf_embed: out of memory");
        e->tok_cap = budget + maxt;
    }
    int rc = order_reserve(e, n < budget ? n : budget, err);
    int64_t n_cut = 0;
    for (int64_t i = 0; i < n && !rc;) {
        int64_t used = 0, cnt = 0;
        /* a window of texts whose tokens fit the arena, embedded together */
        while (i + cnt < n && cnt < e->order_cap && used + maxt <= e->tok_cap) {
            const char *s = texts[i + cnt];
            bool cut = false;
            int64_t m = pf_tokenize_truncate(e->tok, s, strlen(s), true, maxt, e->tok_ids + used, &cut, err);
            if (m < 0) return m;
            if (m == 0) return pf_error_set(err, PF_ERR_ARG, "pf_embed: text %lld has no tokens", (long long)(i + cnt));
            e->seq[cnt] = e->tok_ids + used, e->len[cnt] = m, e->dst[cnt] = out + (i + cnt) * E;
            used += m, n_cut += cut, cnt++;
        }
        rc = embed_seqs(e, cnt, err);
        i += cnt;
    }
    return rc ? rc : n_cut;
}

int pf_embed_tokens(pf_embedder *e, const int32_t *const *ids, const int64_t *n_ids, int64_t n, float *out,
                    pf_error *err) {
    if (!e || n < 0 || n > UINT32_MAX || (n > 0 && (!ids || !n_ids || !out)))
        return pf_error_set(err, PF_ERR_ARG, "pf_embed_tokens: invalid argument");
    for (int64_t i = 0; i < n; i++) {
        if (!ids[i] || n_ids[i] < 1 || n_ids[i] > e->hp.n_ctx)
            return pf_error_set(err, PF_ERR_ARG, "pf_embed_tokens: sequence %lld: %lld tokens (must be 1..%lld)",
                                (long long)i, (long long)n_ids[i], (long long)e->hp.n_ctx);
        for (int64_t t = 0; t < n_ids[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= e->hp.n_vocab)
                return pf_error_set(err, PF_ERR_ARG, "pf_embed_tokens: sequence %lld, token %lld: id %d outside [0, %lld)",
                                    (long long)i, (long long)t, ids[i][t], (long long)e->hp.n_vocab);
    }
    int rc = order_reserve(e, n, err);
    for (int64_t i = 0; i < n && !rc; i++)
        e->seq[i] = ids[i], e->len[i] = n_ids[i], e->dst[i] = out + i * e->hp.n_embd;
    return rc ? rc : embed_seqs(e, n, err);
}

int pf_embedder_load(const char *path, int n_threads, pf_embedder **out, pf_error *err) {
    if (!path || !out) return pf_error_set(err, PF_ERR_ARG, "pf_embedder_load: NULL argument");
    *out = NULL;
    pf_embedder *e = calloc(1, sizeof *e);
    if (!e) return pf_error_set(err, PF_ERR_NOMEM, "pf_embedder_load: out of memory");
    int rc = pf_gguf_open(path, &e->g, err);
    if (!rc && (rc = pfe_load_gguf(e, err)) && err && !strncmp(err->msg, "embedder:", 9)) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        pf_error_set(err, rc, "%s: %s", path, msg); /* "file.gguf: embedder: tensor ..." */
    }
    if (!rc) rc = pf_compute_create(n_threads, PF_ISA_AUTO, &e->c, err);
    if (rc) {
        pf_embedder_free(e);
        return rc;
    }
    e->n_threads = pf_pool_n_threads(pf_compute_pool(e->c));
    e->max_rows = e->hp.n_ctx > 512 ? e->hp.n_ctx : 512;
    const char *name = NULL, *slash = strrchr(path, '/');
    if (pf_gguf_get_str(e->g, "general.name", &name, NULL) != PF_OK || !*name) name = slash ? slash + 1 : path;
    snprintf(e->name, sizeof e->name, "%s", name);
    *out = e;
    return PF_OK;
}

void pf_embedder_free(pf_embedder *e) {
    if (!e) return;
    work_free(&e->w);
    order_free(e);
    free(e->tok_ids);
    free(e->layers);
    free(e->arena);
    free(e->inv_freq);
    pf_tokenizer_free(e->tok);
    pf_compute_free(e->c);
    pf_gguf_close(e->g);
    free(e);
}

int pf_embedder_set_batch(pf_embedder *e, int64_t max_rows, pf_error *err) {
    if (!e || max_rows < 1) return pf_error_set(err, PF_ERR_ARG, "pf_embedder_set_batch: max_rows must be >= 1");
    e->max_rows = max_rows;
    return PF_OK;
}

int64_t pf_embedder_dim(const pf_embedder *e) { return e ? e->hp.n_embd : 0; }
int64_t pf_embedder_max_tokens(const pf_embedder *e) { return e ? e->hp.n_ctx : 0; }
const pf_tokenizer *pf_embedder_tokenizer(const pf_embedder *e) { return e ? e->tok : NULL; }
const char *pf_embedder_name(const pf_embedder *e) { return e ? e->name : ""; }
const char *pf_embedder_arch(const pf_embedder *e) { return e && e->hp.arch == PFE_NOMIC ? "nomic-bert" : "bert"; }
pf_pooling pf_embedder_pooling(const pf_embedder *e) { return e ? e->hp.pooling : PF_POOLING_NONE; }
