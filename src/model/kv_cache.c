/* KV cache writes. Layout per layer and kv head (see pf_kv_offset):
 *   K: n_ctx rows of head_dim values, row = position   (K·q is one dot product per position)
 *   V: head_dim rows of n_ctx values, column = position (P·V is one dot product per dimension)
 * Elements are F16 or F32. K is stored after RoPE; attention reads only from the cache, so a
 * batch and the same tokens decoded one by one see identical K and V. */
#include <string.h>

#include "model/model_internal.h"

/* dst[0..n) = src[0..n) in the cache's element type. */
static void store_row(const pf_context *ctx, uint8_t *dst, const float *src, int64_t n) {
    if (ctx->kv_type == PF_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *h = (uint16_t *)(void *)dst;
    for (int64_t i = 0; i < n; i++) h[i] = pf_fp32_to_fp16(src[i]);
}

/* dst[i * stride] = src[i] for i < n (a column of the transposed V). */
static void store_col(const pf_context *ctx, uint8_t *dst, size_t stride, const float *src, int64_t n) {
    if (ctx->kv_type == PF_TYPE_F32) {
        float *f = (float *)(void *)dst;
        for (int64_t i = 0; i < n; i++) f[(size_t)i * stride] = src[i];
        return;
    }
    uint16_t *h = (uint16_t *)(void *)dst;
    for (int64_t i = 0; i < n; i++) h[(size_t)i * stride] = pf_fp32_to_fp16(src[i]);
}

void pf_kv_store(pf_context *ctx, int64_t il, int64_t pos0, int64_t n) {
    const pf_model_hparams *hp = &ctx->m->hp;
    const int64_t d = hp->head_dim, n_kv = hp->n_head_kv * d, stride = hp->n_embd + 2 * n_kv;
    uint8_t *kc = ctx->k_cache, *vc = ctx->v_cache;
    for (int64_t t = 0; t < n; t++) {
        const float *k = ctx->qkv + t * stride + hp->n_embd, *v = k + n_kv;
        const size_t pos = (size_t)(pos0 + t);
        for (int64_t h = 0; h < hp->n_head_kv; h++) {
            const size_t off = pf_kv_offset(ctx, il, h);
            store_row(ctx, kc + (off + pos * (size_t)d) * ctx->kv_elem, k + h * d, d);
            store_col(ctx, vc + (off + pos) * ctx->kv_elem, (size_t)ctx->n_ctx, v + h * d, d);
        }
    }
}
