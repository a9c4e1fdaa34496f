/* Inference context: parameters, the LongRoPE factor choice, and one allocation of every buffer
 * (KV cache, per-batch activations, per-thread attention scores) so that pf_decode does not
 * allocate. The matmul scratch inside pf_compute is grown to its final size here as well. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

#define DEFAULT_N_CTX 4096
#define DEFAULT_N_BATCH 512

pf_context_params pf_context_default_params(void) {
    return (pf_context_params){.n_ctx = 0, .n_batch = 0, .kv_type = PF_TYPE_F16, .n_threads = 0, .isa = PF_ISA_AUTO};
}

/* calloc of a * b * c elements of `size` bytes, NULL on overflow or OOM. */
static void *alloc3(size_t a, size_t b, size_t c, size_t size) {
    if (a == 0 || b == 0 || c == 0) return calloc(1, 64);
    if (b > SIZE_MAX / a || c > SIZE_MAX / (a * b) || size > SIZE_MAX / (a * b * c)) return NULL;
    return calloc(a * b * c, size);
}

/* Resolves defaults and checks the parameters against the model. */
static int check_params(const pf_model *m, pf_context_params *p, pf_error *err) {
    const pf_model_hparams *hp = &m->hp;
    if (p->n_ctx < 0 || p->n_batch < 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_create: negative n_ctx (%lld) or n_batch (%lld)",
                            (long long)p->n_ctx, (long long)p->n_batch);
    if (p->n_ctx == 0) p->n_ctx = hp->n_ctx_train < DEFAULT_N_CTX ? hp->n_ctx_train : DEFAULT_N_CTX;
    if (p->n_ctx > hp->n_ctx_train)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_create: n_ctx %lld exceeds the model's context length %lld",
                            (long long)p->n_ctx, (long long)hp->n_ctx_train);
    if (p->n_batch == 0) p->n_batch = DEFAULT_N_BATCH;
    if (p->n_batch > p->n_ctx) p->n_batch = p->n_ctx;
    if (p->kv_type != PF_TYPE_F16 && p->kv_type != PF_TYPE_F32)
        return pf_error_set(err, PF_ERR_ARG, "pf_context_create: KV cache type %s is not supported (F16 or F32)",
                            pf_type_name(p->kv_type));
    return PF_OK;
}

/* Inverse frequencies theta^(-2i/n_rot) / ff[i] with ff the long factors when the context
 * window exceeds the original one (llama.cpp's policy), else the short ones (or none). */
static void init_rope(pf_context *ctx) {
    const pf_model *m = ctx->m;
    const int64_t half = m->hp.n_rot / 2;
    ctx->long_rope = m->hp.has_rope_factors && ctx->n_ctx > m->hp.n_ctx_orig;
    const float *ff = !m->hp.has_rope_factors ? NULL : ctx->long_rope ? m->rope_long.v : m->rope_short.v;
    for (int64_t i = 0; i < half; i++) {
        double f = pow((double)m->hp.rope_theta, -2.0 * (double)i / (double)m->hp.n_rot);
        ctx->inv_freq[i] = ff ? f / (double)ff[i] : f;
    }
}

/* Runs each distinct (type, n_in) linear once with n_batch tokens and one output row, so
 * pf_matmul's internal scratch reaches its largest size now rather than during decoding. */
static int reserve_matmul(pf_context *ctx, pf_error *err) {
    const pf_model *m = ctx->m;
    const pf_linear *seen[16];
    int n_seen = 0;
    for (int64_t il = -1; il < m->hp.n_layer; il++) {
        const pf_linear *ls[4] = {&m->output, NULL, NULL, NULL};
        if (il >= 0) {
            const pf_layer *L = &m->layers[il];
            ls[0] = &L->qkv, ls[1] = &L->o, ls[2] = &L->up, ls[3] = &L->down;
        }
        for (int k = 0; k < 4 && ls[k]; k++) {
            const pf_linear *l = ls[k];
            bool dup = false;
            for (int s = 0; s < n_seen && !dup; s++) dup = seen[s]->type == l->type && seen[s]->n_in == l->n_in;
            if (dup) continue;
            if (n_seen < 16) seen[n_seen++] = l;
            const float *x = l->n_in == m->hp.n_embd ? ctx->xb : ctx->act; /* zeros, n_batch rows */
            int rc = pf_matmul(ctx->c, l->w, l->type, 1, l->n_in, x, ctx->n_batch, ctx->att, err);
            if (rc != PF_OK) return rc;
        }
    }
    return PF_OK;
}

/* Commits every page of a fresh zeroed allocation now, so that decoding does not take page
 * faults in the token loop: the transposed V cache gets one new column per token, which would
 * touch a new page in each of its head_dim rows until the whole cache has been faulted in. */
static void prefault(void *p, size_t bytes) {
    volatile unsigned char *b = p;
    for (size_t i = 0; i < bytes; i += 4096) b[i] = 0;
}

static int alloc_buffers(pf_context *ctx) {
    const pf_model_hparams *hp = &ctx->m->hp;
    const size_t B = (size_t)ctx->n_batch, n_kv = (size_t)(hp->n_head_kv * hp->head_dim);
    ctx->kv_elem = ctx->kv_type == PF_TYPE_F16 ? 2 : 4;
    ctx->k_cache = alloc3((size_t)hp->n_layer, n_kv, (size_t)ctx->n_ctx, ctx->kv_elem);
    ctx->v_cache = alloc3((size_t)hp->n_layer, n_kv, (size_t)ctx->n_ctx, ctx->kv_elem);
    ctx->x = alloc3(B, (size_t)hp->n_embd, 1, sizeof(float));
    ctx->xb = alloc3(B, (size_t)hp->n_embd, 1, sizeof(float));
    ctx->qkv = alloc3(B, (size_t)hp->n_embd + 2 * n_kv, 1, sizeof(float));
    ctx->att = alloc3(B, (size_t)hp->n_embd, 1, sizeof(float));
    ctx->gu = alloc3(B, 2 * (size_t)hp->n_ff, 1, sizeof(float));
    ctx->act = alloc3(B, (size_t)hp->n_ff, 1, sizeof(float));
    ctx->rope = alloc3(B, (size_t)hp->n_rot, 1, sizeof(float));
    ctx->inv_freq = alloc3((size_t)hp->n_rot / 2 + 1, 1, 1, sizeof(double));
    ctx->scores_stride = (ctx->n_ctx + hp->head_dim + 15) & ~(int64_t)15;
    ctx->scores = alloc3((size_t)ctx->n_threads, (size_t)ctx->scores_stride, 1, sizeof(float));
    if (ctx->k_cache && ctx->v_cache) {
        size_t kv_bytes = (size_t)hp->n_layer * n_kv * (size_t)ctx->n_ctx * ctx->kv_elem;
        prefault(ctx->k_cache, kv_bytes);
        prefault(ctx->v_cache, kv_bytes);
    }
    return ctx->k_cache && ctx->v_cache && ctx->x && ctx->xb && ctx->qkv && ctx->att && ctx->gu && ctx->act &&
                   ctx->rope && ctx->inv_freq && ctx->scores
               ? PF_OK
               : PF_ERR_NOMEM;
}

int pf_context_create(const pf_model *m, const pf_context_params *params, pf_context **out, pf_error *err) {
    if (m == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_context_create: NULL argument");
    *out = NULL;
    pf_context_params p = params ? *params : pf_context_default_params();
    int rc = check_params(m, &p, err);
    if (rc != PF_OK) return rc;
    pf_context *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_context_create: out of memory");
    *ctx = (pf_context){.m = m, .n_ctx = p.n_ctx, .n_batch = p.n_batch, .kv_type = p.kv_type};
    rc = pf_compute_create(p.n_threads, p.isa, &ctx->c, err);
    if (rc == PF_OK) {
        ctx->n_threads = pf_pool_n_threads(pf_compute_pool(ctx->c));
        if (alloc_buffers(ctx) != PF_OK) {
            double kv_mib = 2.0 * (double)m->hp.n_layer * (double)(m->hp.n_head_kv * m->hp.head_dim) *
                            (double)ctx->n_ctx * (p.kv_type == PF_TYPE_F16 ? 2 : 4) / 1048576.0;
            rc = pf_error_set(err, PF_ERR_NOMEM, "pf_context_create: out of memory (n_ctx %lld: KV cache %.0f MiB)",
                              (long long)ctx->n_ctx, kv_mib);
        }
    }
    if (rc == PF_OK) {
        init_rope(ctx);
        rc = reserve_matmul(ctx, err);
    }
    if (rc != PF_OK) {
        pf_context_free(ctx);
        return rc;
    }
    *out = ctx;
    return PF_OK;
}

void pf_context_free(pf_context *ctx) {
    if (ctx == NULL) return;
    pf_compute_free(ctx->c);
    free(ctx->k_cache);
    free(ctx->v_cache);
    free(ctx->x);
    free(ctx->xb);
    free(ctx->qkv);
    free(ctx->att);
    free(ctx->gu);
    free(ctx->act);
    free(ctx->rope);
    free(ctx->inv_freq);
    free(ctx->scores);
    pf_lora_context_free(ctx);
    free(ctx);
}

const pf_model *pf_context_model(const pf_context *ctx) { return ctx ? ctx->m : NULL; }
int64_t pf_context_n_ctx(const pf_context *ctx) { return ctx ? ctx->n_ctx : 0; }
int64_t pf_context_n_past(const pf_context *ctx) { return ctx ? ctx->n_past : 0; }
bool pf_context_long_rope(const pf_context *ctx) { return ctx && ctx->long_rope; }
pf_compute *pf_context_compute(pf_context *ctx) { return ctx ? ctx->c : NULL; }
