/* The Phi-3 forward pass over a batch of n tokens (rows), one function per op:
 *   x   = E[ids]
 *   per layer:  x += Wo · Attn(RoPE(Wqkv · RMSNorm(x)))
 *               x += Wdown · SwiGLU(Wgu · RMSNorm(x))
 *   logits = Wout · RMSNorm(x)
 * Every matrix product goes through pf_model_linear (pf_matmul: a matrix × matrix product for a
 * prompt, matrix × vector for n = 1). Buffers are the context's; nothing is allocated here. */
#include <math.h>
#include <string.h>

#include "model/model_internal.h"

/* ---- parallel helper ---------------------------------------------------------------------- */

void pf_model_parallel(pf_context *ctx, int64_t n, int64_t min_par, pf_range_fn fn, void *arg) {
    pf_compute_parallel(ctx->c, n, min_par, fn, arg);
}

/* ---- ops ---------------------------------------------------------------------------------- */

/* y[n × n_out] = x[n × n_in] · Wᵀ. The one place every linear layer goes through: each LoRA
 * adapter attached to the context that adapts this weight adds s · (x · Aᵀ) · Bᵀ here. */
int pf_model_linear(pf_context *ctx, const pf_linear *l, const float *x, int64_t n, float *y, pf_error *err) {
    int rc = pf_matmul(ctx->c, l->w, l->type, l->n_out, l->n_in, x, n, y, err);
    if (rc == PF_OK && ctx->n_lora > 0) rc = pf_lora_apply(ctx, l, x, n, y, err);
    if (rc != PF_OK && err != NULL) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        pf_error_set(err, rc, "%s: %s", l->t->name, msg);
    }
    return rc;
}

/* x[t] = E[ids[t]]: rows of token_embd, dequantized to f32. */
static void embed(pf_context *ctx, const int32_t *ids, int64_t n) {
    const pf_tensor_info *te = ctx->m->tok_embd;
    const int64_t n_embd = ctx->m->hp.n_embd;
    const size_t row = pf_row_size(te->type, n_embd);
    const pf_kernels *k = pf_compute_kernels(ctx->c);
    pf_to_float_fn conv = k->to_float[te->type] ? k->to_float[te->type] : pf_type_get(te->type)->to_float;
    for (int64_t t = 0; t < n; t++)
        conv((const uint8_t *)te->data + (size_t)ids[t] * row, ctx->x + t * n_embd, n_embd);
}

typedef struct norm_job {
    float *y;
    const float *x, *g;
    int64_t n_embd;
    float eps;
} norm_job;

/* RMSNorm of rows [t0, t1): y = x / sqrt(mean(x²) + eps) ⊙ g. */
static void rmsnorm_rows(void *arg, int64_t t0, int64_t t1) {
    const norm_job *j = arg;
    const int64_t n = j->n_embd;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * n;
        float *y = j->y + t * n;
        float acc[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += x[i + k] * x[i + k];
        double ss = 0.0;
        for (int k = 0; k < 8; k++) ss += acc[k];
        for (; i < n; i++) ss += (double)x[i] * x[i];
        const float r = (float)(1.0 / sqrt(ss / (double)n + (double)j->eps));
        for (i = 0; i < n; i++) y[i] = x[i] * r * j->g[i];
    }
}

static void rmsnorm(pf_context *ctx, float *y, const float *x, const pf_vec *g, int64_t n) {
    norm_job job = {y, x, g->v, ctx->m->hp.n_embd, ctx->m->hp.rms_eps};
    pf_model_parallel(ctx, n, 16, rmsnorm_rows, &job);
}

/* x += y over n rows of n_embd. */
static void residual_add(pf_context *ctx, float *x, const float *y, int64_t n) {
    const int64_t len = n * ctx->m->hp.n_embd;
    for (int64_t i = 0; i < len; i++) x[i] += y[i];
}

typedef struct swiglu_job {
    float *act;
    const float *gu;
    int64_t n_ff;
} swiglu_job;

/* act[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^-g), over flat indices [i0, i1) of
 * the n × n_ff output (gate = gu[t][0..n_ff), up = gu[t][n_ff..2 n_ff)). */
static void swiglu_range(void *arg, int64_t i0, int64_t i1) {
    const swiglu_job *j = arg;
    for (int64_t i = i0; i < i1;) {
        const int64_t t = i / j->n_ff, c0 = i % j->n_ff;
        const int64_t c1 = (i1 - t * j->n_ff) < j->n_ff ? i1 - t * j->n_ff : j->n_ff;
        const float *gate = j->gu + t * 2 * j->n_ff, *up = gate + j->n_ff;
        float *a = j->act + t * j->n_ff;
        for (int64_t c = c0; c < c1; c++) {
            const float g = gate[c]; /* silu(g) = -0 below -100 (e^100 overflows f32) */
            a[c] = g > -100.0f ? g / (1.0f + expf(-g)) * up[c] : 0.0f;
        }
        i = t * j->n_ff + c1;
    }
}

static void swiglu(pf_context *ctx, int64_t n) {
    swiglu_job job = {ctx->act, ctx->gu, ctx->m->hp.n_ff};
    pf_model_parallel(ctx, n * ctx->m->hp.n_ff, 4096, swiglu_range, &job);
}

/* ---- blocks ------------------------------------------------------------------------------- */

/* x += Wo · Attn(RoPE(Wqkv · RMSNorm(x))) for n rows at positions pos0.. */
static int attention_block(pf_context *ctx, const pf_layer *L, int64_t il, int64_t pos0, int64_t n, pf_error *err) {
    rmsnorm(ctx, ctx->xb, ctx->x, &L->attn_norm, n);
    int rc = pf_model_linear(ctx, &L->qkv, ctx->xb, n, ctx->qkv, err);
    if (rc != PF_OK) return rc;
    pf_rope_apply(ctx, n);
    pf_kv_store(ctx, il, pos0, n);
    pf_attention(ctx, il, pos0, n);
    if ((rc = pf_model_linear(ctx, &L->o, ctx->att, n, ctx->xb, err)) != PF_OK) return rc;
    residual_add(ctx, ctx->x, ctx->xb, n);
    return PF_OK;
}

/* x += Wdown · (silu(gate) ⊙ up), [gate | up] = Wgu · RMSNorm(x). */
static int ffn_block(pf_context *ctx, const pf_layer *L, int64_t n, pf_error *err) {
    rmsnorm(ctx, ctx->xb, ctx->x, &L->ffn_norm, n);
    int rc = pf_model_linear(ctx, &L->up, ctx->xb, n, ctx->gu, err);
    if (rc != PF_OK) return rc;
    swiglu(ctx, n);
    if ((rc = pf_model_linear(ctx, &L->down, ctx->act, n, ctx->xb, err)) != PF_OK) return rc;
    residual_add(ctx, ctx->x, ctx->xb, n);
    return PF_OK;
}

/* logits[rows] = Wout · RMSNorm(x[rows]) for rows [r0, n) of the batch. */
static int output_head(pf_context *ctx, int64_t r0, int64_t n, float *logits, pf_error *err) {
    const int64_t n_embd = ctx->m->hp.n_embd;
    rmsnorm(ctx, ctx->xb, ctx->x + r0 * n_embd, &ctx->m->output_norm, n - r0);
    return pf_model_linear(ctx, &ctx->m->output, ctx->xb, n - r0, logits, err);
}

/* One batch of n <= n_batch tokens at positions pos0..; logits of rows [first_logit, n). */
static int forward_batch(pf_context *ctx, const int32_t *ids, int64_t n, int64_t pos0, float *logits,
                         int64_t first_logit, pf_error *err) {
    embed(ctx, ids, n);
    pf_rope_table(ctx, pos0, n);
    for (int64_t il = 0; il < ctx->m->hp.n_layer; il++) {
        const pf_layer *L = &ctx->m->layers[il];
        int rc = attention_block(ctx, L, il, pos0, n, err);
        if (rc == PF_OK) rc = ffn_block(ctx, L, n, err);
        if (rc != PF_OK) return rc;
    }
    return logits ? output_head(ctx, first_logit, n, logits, err) : PF_OK;
}

int pf_decode(pf_context *ctx, const int32_t *ids, int64_t n, int64_t pos0, float *logits, pf_logits_mode mode,
              pf_error *err) {
    if (ctx == NULL || ids == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_decode: NULL %s", ctx ? "ids" : "context");
    if (n < 1) return pf_error_set(err, PF_ERR_ARG, "pf_decode: no tokens (n = %lld)", (long long)n);
    if (mode != PF_LOGITS_LAST && mode != PF_LOGITS_ALL)
        return pf_error_set(err, PF_ERR_ARG, "pf_decode: unknown logits mode %d", (int)mode);
    if (pos0 < 0 || pos0 > ctx->n_past)
        return pf_error_set(err, PF_ERR_ARG, "pf_decode: pos0 %lld is outside [0, %lld] (the cache holds %lld positions)",
                            (long long)pos0, (long long)ctx->n_past, (long long)ctx->n_past);
    if (n > ctx->n_ctx - pos0)
        return pf_error_set(err, PF_ERR_ARG,
                            "pf_decode: context full: positions %lld..%lld do not fit in the context of %lld",
                            (long long)pos0, (long long)(pos0 + n - 1), (long long)ctx->n_ctx);
    const int64_t n_vocab = ctx->m->hp.n_vocab;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return pf_error_set(err, PF_ERR_ARG, "pf_decode: token id %d at index %lld is outside [0, %lld)", (int)ids[i],
                                (long long)i, (long long)n_vocab);
    ctx->n_past = pos0; /* rewind: positions from pos0 on are overwritten */
    for (int64_t start = 0; start < n; start += ctx->n_batch) {
        const int64_t nb = n - start < ctx->n_batch ? n - start : ctx->n_batch;
        const bool last = start + nb == n;
        float *out = NULL;
        int64_t first = 0;
        if (logits && mode == PF_LOGITS_ALL) out = logits + start * n_vocab;
        else if (logits && last) out = logits, first = nb - 1;
        int rc = forward_batch(ctx, ids + start, nb, pos0 + start, out, first, err);
        if (rc != PF_OK) return rc;
        ctx->n_past = pos0 + start + nb;
    }
    return PF_OK;
}
