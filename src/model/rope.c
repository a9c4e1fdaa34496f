/* Rotary position embedding, NeoX style (pairs (i, i + n_rot/2) of each head), with the
 * LongRoPE frequency factors and magnitude factor of the 128k models:
 *   a_i      = p · theta^(-2i/n_rot) / ff[i]          (ctx->inv_freq[i] = theta^(-2i/n_rot) / ff[i])
 *   y[i]     = m · (x[i] cos a_i − x[i+h] sin a_i)      h = n_rot/2
 *   y[i+h]   = m · (x[i+h] cos a_i + x[i] sin a_i)      m = rope_attn_factor (1 without LongRoPE)
 * Dimensions n_rot..head_dim-1 (none for Phi-3) pass through unchanged. */
#include <math.h>

#include "model/model_internal.h"

void pf_rope_table(const pf_context *ctx, int64_t pos0, int64_t n) {
    const int64_t half = ctx->m->hp.n_rot / 2;
    const double m = ctx->m->hp.rope_attn_factor;
    for (int64_t t = 0; t < n; t++) {
        float *cs = ctx->rope + t * 2 * half, *sn = cs + half;
        const double p = (double)(pos0 + t);
        for (int64_t i = 0; i < half; i++) {
            const double a = p * ctx->inv_freq[i];
            cs[i] = (float)(m * cos(a));
            sn[i] = (float)(m * sin(a));
        }
    }
}

/* Rotates one head x[0..n_rot) with the scaled cos/sin rows cs, sn (half values each). */
static void rope_head(float *x, const float *cs, const float *sn, int64_t half) {
    float *x1 = x + half;
    for (int64_t i = 0; i < half; i++) {
        const float a = x[i], b = x1[i];
        x[i] = a * cs[i] - b * sn[i];
        x1[i] = b * cs[i] + a * sn[i];
    }
}

typedef struct rope_job {
    pf_context *ctx;
} rope_job;

/* Rows [t0, t1): the Q heads and the K heads are adjacent at the start of each qkv row. */
static void rope_rows(void *arg, int64_t t0, int64_t t1) {
    pf_context *ctx = ((rope_job *)arg)->ctx;
    const pf_model_hparams *hp = &ctx->m->hp;
    const int64_t d = hp->head_dim, half = hp->n_rot / 2, stride = hp->n_embd + 2 * hp->n_head_kv * d;
    const int64_t n_heads = hp->n_head + hp->n_head_kv;
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = ctx->rope + t * 2 * half, *sn = cs + half;
        float *row = ctx->qkv + t * stride;
        for (int64_t h = 0; h < n_heads; h++) rope_head(row + h * d, cs, sn, half);
    }
}

void pf_rope_apply(pf_context *ctx, int64_t n) {
    rope_job job = {ctx};
    pf_model_parallel(ctx, n, 16, rope_rows, &job);
}
