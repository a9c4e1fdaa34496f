/* IQ4_NL: 32-element blocks of 4-bit indices into the non-linear codebook pf_iq4nl_values,
 * one fp16 scale: y = d·values[q]. Nibble j holds element j (low) and j+16 (high). */
#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

void pf_dequant_iq4_nl(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        block_iq4_nl blk;
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int j = 0; j < 16; j++) {
            dst[b * 32 + j] = d * (float)pf_iq4nl_values[blk.qs[j] & 0x0F];
            dst[b * 32 + j + 16] = d * (float)pf_iq4nl_values[blk.qs[j] >> 4];
        }
    }
}

/* Squared error of a block against the stored scale h, with the nearest codebook entries. */
static double nl_block_err(const float *x, pf_half h, uint8_t *L) {
    const float d = pf_fp16_to_fp32(h);
    double e = 0.0;
    for (int j = 0; j < 32; j++) {
        L[j] = (uint8_t)(d != 0.0f ? pf_nl_index(pf_iq4nl_values, x[j] / d) : 8);
        double diff = (double)(d * (float)pf_iq4nl_values[L[j]]) - x[j];
        e += diff * diff;
    }
    return e;
}

/* Scale search (quant_search.c) with ggml's x² weights and with uniform weights, 7 shifts
 * each way; each scale is rounded to fp16, indices are re-chosen for the stored scale, and the
 * smaller squared error wins (ties keep the x²-weighted one, ggml's choice). */
void pf_quant_iq4_nl(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        const float *x = src + b * 32;
        float wsq[32], ones[32];
        for (int j = 0; j < 32; j++) { wsq[j] = x[j] * x[j]; ones[j] = 1.0f; }
        uint8_t L[32], best_L[32];
        float cand[2] = {pf_search_nl(32, pf_iq4nl_values, x, wsq, L, 7),
                         pf_search_nl(32, pf_iq4nl_values, x, ones, L, 7)};
        block_iq4_nl blk;
        double best_e = INFINITY;
        blk.d = 0;
        for (int c = 0; c < 2; c++) {
            pf_half h = pf_half_sat(cand[c]);
            double e = nl_block_err(x, h, L);
            if (e < best_e) { best_e = e; blk.d = h; memcpy(best_L, L, 32); }
        }
        if (!(best_e < INFINITY)) nl_block_err(x, blk.d, best_L);
        for (int j = 0; j < 16; j++) blk.qs[j] = (uint8_t)(best_L[j] | (best_L[j + 16] << 4));
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Σ_blocks dx·dy·Σ values[qx]·qy. */
void pf_vec_dot_iq4_nl_q8_0(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        block_iq4_nl bx;
        block_q8_0 by;
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += pf_iq4nl_values[bx.qs[j] & 0x0F] * by.qs[j];
            sumi += pf_iq4nl_values[bx.qs[j] >> 4] * by.qs[j + 16];
        }
        sumf += (pf_fp16_to_fp32(bx.d) * pf_fp16_to_fp32(by.d)) * (float)sumi;
    }
    *s = sumf;
}
