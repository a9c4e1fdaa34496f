/* Q2_K and Q3_K: 256-element super-blocks of 16 groups of 16.
 * Element e = 128n + 32k + l (n = 0..1, k = 0..3, l = 0..31) keeps its low 2 bits in
 * qs[32n + l] at bit 2k; group g = e / 16.
 * Q2_K: scales[g] = sc | m << 4; value = (d·sc)·q - (dmin·m), q in 0..3.
 * Q3_K: the third bit is hmask[l] bit 4n + k; q = low2 - (bit ? 0 : 4) in -4..3; 16 signed
 *       6-bit scales S = u - 32 (u low nibbles in scales[0..7], high pairs in scales[8..11]);
 *       value = (d·S)·q. */
#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

/* Low two bits of every element (0..3). */
static void unpack_2bit(const uint8_t *qs, uint8_t *L) {
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) L[128 * n + 32 * k + l] = (uint8_t)((qs[32 * n + l] >> (2 * k)) & 3);
}

static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    memset(qs, 0, QK_K / 4);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) qs[32 * n + l] |= (uint8_t)((L[128 * n + 32 * k + l] & 3) << (2 * k));
}

/* ---- Q2_K ---- */
void pf_dequant_q2_k(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q2_K blk;
        uint8_t L[QK_K];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_2bit(blk.qs, L);
        const float d = pf_fp16_to_fp32(blk.d), dmin = pf_fp16_to_fp32(blk.dmin);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)(blk.scales[g] & 0x0F), ml = dmin * (float)(blk.scales[g] >> 4);
            for (int i = 16 * g; i < 16 * g + 16; i++) dst[b * QK_K + i] = dl * (float)L[i] - ml;
        }
    }
}

/* Per group an offset scale search (pf_fit_affine: inverse scales (3 - 0.6 + 0.3·t)/(max - min),
 * t = 0..5, one Lloyd step, uniform weights and squared error; ggml uses |x| weights and the
 * absolute error, which gives a clearly larger squared error), then 4-bit scales and mins
 * through pf_k_affine_encode. */
void pf_quant_q2_k(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        block_q2_K blk;
        uint8_t L[QK_K], ls[16], lm[16];
        float sc[16], mn[16];
        for (int g = 0; g < 16; g++) sc[g] = pf_fit_affine(16, 3, x + 16 * g, NULL, -0.6f, 0.3f, 5, &mn[g]);
        pf_k_affine_encode(x, 16, 16, 3, 15, sc, mn, ls, lm, &blk.d, &blk.dmin, L);
        for (int g = 0; g < 16; g++) blk.scales[g] = (uint8_t)(ls[g] | (lm[g] << 4));
        pack_2bit(L, blk.qs);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* dy·d·Σ_g sc_g·Σ q·q8 - dy·dmin·Σ_g m_g·bsums[g]. */
void pf_vec_dot_q2_k_q8_k(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q2_K bx;
        block_q8_K by;
        uint8_t L[QK_K];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_2bit(bx.qs, L);
        int isum = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            int sg = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sg += L[i] * by.qs[i];
            isum += (bx.scales[g] & 0x0F) * sg;
            summ += (bx.scales[g] >> 4) * by.bsums[g];
        }
        sumf += by.d * pf_fp16_to_fp32(bx.d) * (float)isum - by.d * pf_fp16_to_fp32(bx.dmin) * (float)summ;
    }
    *s = sumf;
}

/* ---- Q3_K ---- */

/* The 16 signed scales S(i) = (low4 | hi2 << 4) - 32. */
static void q3_scales(const uint8_t *s, int *S) {
    for (int i = 0; i < 16; i++) {
        int low4 = i < 8 ? s[i] & 0x0F : s[i - 8] >> 4;
        int hi2 = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        S[i] = (low4 | (hi2 << 4)) - 32;
    }
}

/* Signed levels q in -4..3 of a Q3_K super-block. */
static void q3_levels(const block_q3_K *blk, int8_t *q) {
    uint8_t L[QK_K];
    unpack_2bit(blk->qs, L);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int e = 128 * n + 32 * k + l;
                q[e] = (int8_t)(L[e] - (((blk->hmask[l] >> (4 * n + k)) & 1) ? 0 : 4));
            }
}

void pf_dequant_q3_k(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q3_K blk;
        int S[16];
        int8_t q[QK_K];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        q3_scales(blk.scales, S);
        q3_levels(&blk, q);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)S[g];
            for (int i = 16 * g; i < 16 * g + 16; i++) dst[b * QK_K + i] = dl * (float)q[i];
        }
    }
}

/* Per group a signed scale search (pf_fit_sym, levels -4..3, inverse scales -(4 + 0.3·t)/max,
 * t = -3..3, uniform weights; ggml's x²-weighted coordinate descent gives a larger squared
 * error), then 6-bit signed scales through pf_k_sym_encode. */
void pf_quant_q3_k(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        block_q3_K blk;
        int8_t ls[16], L[QK_K];
        float sc[16];
        for (int g = 0; g < 16; g++) sc[g] = pf_fit_sym(16, 4, x + 16 * g, NULL, 3, 0.3f);
        pf_k_sym_encode(x, 16, 16, 4, 32, sc, ls, &blk.d, L);
        memset(blk.scales, 0, 12);
        for (int i = 0; i < 16; i++) {
            int u = ls[i] + 32;
            if (i < 8) blk.scales[i] |= (uint8_t)(u & 0x0F);
            else blk.scales[i - 8] |= (uint8_t)((u & 0x0F) << 4);
            blk.scales[8 + i % 4] |= (uint8_t)((u >> 4) << (2 * (i / 4)));
        }
        uint8_t low[QK_K];
        memset(blk.hmask, 0, sizeof blk.hmask);
        for (int e = 0; e < QK_K; e++) {
            int u = L[e] + 4; /* 0..7: bit 2 -> hmask, bits 0-1 -> qs */
            low[e] = (uint8_t)(u & 3);
            if (u & 4) blk.hmask[e % 32] |= (uint8_t)(1u << (4 * (e / 128) + (e % 128) / 32));
        }
        pack_2bit(low, blk.qs);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* d·dy·Σ_g S_g·Σ q·q8. */
void pf_vec_dot_q3_k_q8_k(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q3_K bx;
        block_q8_K by;
        int S[16];
        int8_t q[QK_K];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        q3_scales(bx.scales, S);
        q3_levels(&bx, q);
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int sg = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sg += q[i] * by.qs[i];
            isum += S[g] * sg;
        }
        sumf += pf_fp16_to_fp32(bx.d) * by.d * (float)isum;
    }
    *s = sumf;
}
