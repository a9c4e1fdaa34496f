/* 8-bit formats: Q8_0 (weights and activations), Q8_1 and Q8_K (activations only).
 * Blocks are copied through memcpy so that rows at any address are fine. */
#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

/* Q8_0: y = q·d. */
void pf_dequant_q8_0(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        block_q8_0 blk;
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int j = 0; j < QK8_0; j++) dst[b * QK8_0 + j] = (float)blk.qs[j] * d;
    }
}

/* Symmetric 8-bit: d = amax/127, q = roundf(x·(1/d)) (half away from zero), as ggml's
 * reference. The product is clamped to ±127 first so odd inputs cannot overflow (NaN -> 0).
 * Written on the float bit patterns with integer selects so that the compiler can vectorize
 * it; the results are exactly those of fmaxf / fminf / roundf:
 *  - |x| as bits (NaN -> 0) orders like the floats, so an integer max is fmaxf's amax;
 *  - for 0 <= a <= 127, (int)(a + 0.5f) is roundf(a) except at a = 0.5 - 2^-25 (0x3EFFFFFF),
 *    where the addition rounds up to 1.0 (for every other a the sum is exact or cannot cross
 *    an integer); the sign is applied afterwards. */
static float q8_block(const float *x, int8_t *q, int *sum) {
    int32_t m[4] = {0, 0, 0, 0};
    for (int j = 0; j < 32; j += 4)
        for (int k = 0; k < 4; k++) {
            int32_t a = pf_f2bits(x[j + k]) & 0x7FFFFFFF;
            a = a > 0x7F800000 ? 0 : a;
            m[k] = a > m[k] ? a : m[k];
        }
    m[0] = m[1] > m[0] ? m[1] : m[0];
    m[2] = m[3] > m[2] ? m[3] : m[2];
    const float amax = pf_bits2f(m[2] > m[0] ? m[2] : m[0]);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int32_t b127 = 0x42FE0000; /* 127.0f */
    int32_t v[32], s[4] = {0, 0, 0, 0};
    for (int j = 0; j < 32; j += 4)
        for (int k = 0; k < 4; k++) {
            const int32_t b = pf_f2bits(x[j + k] * id);
            int32_t a = b & 0x7FFFFFFF;
            a = a > 0x7F800000 ? 0 : a;
            a = a > b127 ? b127 : a;
            int32_t t = (int32_t)(pf_bits2f(a) + 0.5f);
            t = a == 0x3EFFFFFF ? 0 : t;
            const int32_t sg = -(int32_t)((uint32_t)b >> 31); /* 0 or -1 */
            t = (t ^ sg) - sg;
            v[j + k] = t;
            s[k] += t;
        }
    for (int j = 0; j < 32; j++) q[j] = (int8_t)v[j];
    *sum = (s[0] + s[1]) + (s[2] + s[3]);
    return d;
}

void pf_quant_q8_0(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        block_q8_0 blk;
        int sum;
        float d = q8_block(src + b * QK8_0, blk.qs, &sum);
        blk.d = pf_half_sat(d);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Σ_blocks dx·dy·Σ qx·qy, the inner sum in integers. */
void pf_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        block_q8_0 bx, by;
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += bx.qs[j] * by.qs[j];
        sumf += (float)sumi * (pf_fp16_to_fp32(bx.d) * pf_fp16_to_fp32(by.d));
    }
    *s = sumf;
}

/* Q8_1: y = q·d (s is only used by vec_dot). */
void pf_dequant_q8_1(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK8_1; b++) {
        block_q8_1 blk;
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int j = 0; j < QK8_1; j++) dst[b * QK8_1 + j] = (float)blk.qs[j] * d;
    }
}

/* As Q8_0, plus s = d·Σq with the unrounded d (ggml's convention). */
void pf_quant_q8_1(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK8_1; b++) {
        block_q8_1 blk;
        int sum;
        float d = q8_block(src + b * QK8_1, blk.qs, &sum);
        blk.d = pf_half_sat(d);
        blk.s = pf_half_sat((float)sum * d);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Q8_K: y = d·q with an f32 d. */
void pf_dequant_q8_k(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q8_K blk;
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        for (int j = 0; j < QK_K; j++) dst[b * QK_K + j] = blk.d * (float)blk.qs[j];
    }
}

/* iscale = -127/max (max = signed largest |x|), q = min(127, nearest(iscale·x)), d = 1/iscale;
 * bsums[k] = Σ q[16k .. 16k+15]. An all-zero block stores d = 0. */
void pf_quant_q8_k(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        block_q8_K blk;
        memset(&blk, 0, sizeof blk);
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax != 0.0f && isfinite(amax)) {
            const float iscale = -127.0f / max;
            for (int j = 0; j < QK_K; j++) blk.qs[j] = (int8_t)pf_qround(iscale * x[j], -128, 127);
            for (int k = 0; k < QK_K / 16; k++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += blk.qs[16 * k + j];
                blk.bsums[k] = (int16_t)sum;
            }
            blk.d = 1.0f / iscale;
        }
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}
