/* Q6_K: 256-element super-blocks of 16 groups of 16, 6-bit levels q in 0..63 and int8 group
 * scales: value = (d·sc)·(q - 32). For half n (128 elements) and l = 0..31, element
 * 128n + 32k + l keeps its low nibble in ql[64n + l + 32(k&1)] (low nibble for k < 2, high for
 * k >= 2) and its top 2 bits in qh[32n + l] at bits 2k. */
#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

/* Signed levels q - 32 (-32..31) of a super-block. */
static void unpack_q6(const uint8_t *ql, const uint8_t *qh, int8_t *q) {
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                uint8_t b = ql[64 * n + l + 32 * (k & 1)];
                int low = k < 2 ? b & 0x0F : b >> 4;
                int hi = (qh[32 * n + l] >> (2 * k)) & 3;
                q[128 * n + 32 * k + l] = (int8_t)((low | (hi << 4)) - 32);
            }
}

void pf_dequant_q6_k(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q6_K blk;
        int8_t q[QK_K];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_q6(blk.ql, blk.qh, q);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)blk.scales[g];
            for (int i = 16 * g; i < 16 * g + 16; i++) dst[b * QK_K + i] = dl * (float)q[i];
        }
    }
}

/* Per group a signed scale search (pf_fit_sym, levels -32..31, inverse scales
 * -(32 + 0.3·t)/max, t = -3..3, uniform weights, where ggml sweeps t/10, t = -9..9 with x²
 * weights), then int8 scales through pf_k_sym_encode. */
void pf_quant_q6_k(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        block_q6_K blk;
        int8_t L[QK_K];
        float sc[16];
        for (int g = 0; g < 16; g++) sc[g] = pf_fit_sym(16, 32, x + 16 * g, NULL, 3, 0.3f);
        pf_k_sym_encode(x, 16, 16, 32, 128, sc, blk.scales, &blk.d, L);
        memset(blk.ql, 0, sizeof blk.ql);
        memset(blk.qh, 0, sizeof blk.qh);
        for (int e = 0; e < QK_K; e++) {
            int u = L[e] + 32, nh = e / 128, k = (e % 128) / 32, l = e % 32;
            uint8_t *byte = &blk.ql[64 * nh + l + 32 * (k & 1)];
            *byte |= (uint8_t)(k < 2 ? (u & 0x0F) : (u & 0x0F) << 4);
            blk.qh[32 * nh + l] |= (uint8_t)((u >> 4) << (2 * k));
        }
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* d·dy·Σ_g sc_g·Σ (q - 32)·q8. */
void pf_vec_dot_q6_k_q8_k(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q6_K bx;
        block_q8_K by;
        int8_t q[QK_K];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_q6(bx.ql, bx.qh, q);
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int sg = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sg += q[i] * by.qs[i];
            isum += bx.scales[g] * sg;
        }
        sumf += pf_fp16_to_fp32(bx.d) * by.d * (float)isum;
    }
    *s = sumf;
}
