/* Q4_0, Q4_1, Q5_0, Q5_1: 32-element blocks, 4- or 5-bit levels with an fp16 scale d
 * (and an fp16 offset m for the _1 variants). Nibble j holds element j (low) and j+16 (high);
 * Q5 keeps the fifth bits in a little-endian u32 qh (bit j = element j). */
#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

/* Unpacks the 32 levels (0 .. 2^bits - 1) of a block from qs (and qh for 5 bits). */
static void unpack_levels(const uint8_t *qs, const uint8_t *qh, uint8_t *l) {
    uint32_t h = 0;
    if (qh) memcpy(&h, qh, 4);
    for (int j = 0; j < 16; j++) {
        l[j] = (uint8_t)((qs[j] & 0x0F) | (((h >> j) & 1u) << 4));
        l[j + 16] = (uint8_t)((qs[j] >> 4) | (((h >> (j + 16)) & 1u) << 4));
    }
}

/* Packs 32 levels into nibbles (and the fifth bits into qh when qh != NULL). */
static void pack_levels(const uint8_t *l, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((l[j] & 0x0F) | ((l[j + 16] & 0x0F) << 4));
        h |= (uint32_t)((l[j] >> 4) & 1) << j;
        h |= (uint32_t)((l[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh) memcpy(qh, &h, 4);
}

/* Symmetric block (Q4_0: nmax 8, Q5_0: nmax 16): value = (level - nmax)·d.
 * Candidates: ggml's d = max/-nmax, and the searched least-squares scales for uniform and
 * x²-weighted error. Each is rounded to fp16 first, levels are then the nearest ones for that
 * stored d, and the candidate with the smallest squared error wins (ties keep ggml's). */
static pf_half encode_sym32(const float *x, int nmax, uint8_t *lev) {
    float amax = 0.0f, max = 0.0f, ones[32], wsq[32];
    for (int j = 0; j < 32; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
        ones[j] = 1.0f;
        wsq[j] = x[j] * x[j];
    }
    int8_t tmp[32];
    float cand[3] = {max / (float)-nmax, pf_search_sym(32, nmax, x, ones, tmp, true),
                     pf_search_sym(32, nmax, x, wsq, tmp, true)};
    pf_half best_h = 0;
    double best_e = INFINITY;
    for (int c = 0; c < 3; c++) {
        pf_half h = pf_half_sat(cand[c]);
        float d = pf_fp16_to_fp32(h);
        double e = 0.0;
        for (int j = 0; j < 32; j++) {
            int l = d != 0.0f ? pf_qround(x[j] / d, -nmax, nmax - 1) : 0;
            double diff = (double)((float)l * d) - x[j];
            e += diff * diff;
        }
        if (e < best_e) { best_e = e; best_h = h; }
    }
    float d = pf_fp16_to_fp32(best_h);
    for (int j = 0; j < 32; j++) lev[j] = (uint8_t)((d != 0.0f ? pf_qround(x[j] / d, -nmax, nmax - 1) : 0) + nmax);
    return best_h;
}

/* Offset block (Q4_1: nmax 15, Q5_1: nmax 31): value = level·d + m. Candidates: ggml's
 * (d = (max-min)/nmax, m = min) and the searched least-squares (d, m); each is rounded to
 * fp16, levels re-rounded for the stored pair, smallest squared error wins. */
static void encode_affine32(const float *x, int nmax, uint8_t *lev, pf_half *dh, pf_half *mh) {
    float mn = INFINITY, mx = -INFINITY, ones[32];
    for (int j = 0; j < 32; j++) {
        if (x[j] < mn) mn = x[j];
        if (x[j] > mx) mx = x[j];
        ones[j] = 1.0f;
    }
    if (!isfinite(mn) || !isfinite(mx)) mn = mx = 0.0f;
    uint8_t tmp[32];
    float neg_min;
    float sd = pf_search_affine(32, nmax, x, ones, tmp, &neg_min, -1.0f, 0.1f, 20, false, false);
    float cd[2] = {(mx - mn) / (float)nmax, sd}, cm[2] = {mn, -neg_min};
    double best_e = INFINITY;
    for (int c = 0; c < 2; c++) {
        pf_half h = pf_half_sat(cd[c]), hm = pf_half_sat(cm[c]);
        float d = pf_fp16_to_fp32(h), m = pf_fp16_to_fp32(hm);
        double e = 0.0;
        for (int j = 0; j < 32; j++) {
            int l = d != 0.0f ? pf_qround((x[j] - m) / d, 0, nmax) : 0;
            double diff = (double)((float)l * d + m) - x[j];
            e += diff * diff;
        }
        if (e < best_e) { best_e = e; *dh = h; *mh = hm; }
    }
    float d = pf_fp16_to_fp32(*dh), m = pf_fp16_to_fp32(*mh);
    for (int j = 0; j < 32; j++) lev[j] = (uint8_t)(d != 0.0f ? pf_qround((x[j] - m) / d, 0, nmax) : 0);
}

/* ---- Q4_0: y = (q - 8)·d ---- */
void pf_dequant_q4_0(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        block_q4_0 blk;
        uint8_t l[32];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_levels(blk.qs, NULL, l);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int j = 0; j < 32; j++) dst[b * 32 + j] = (float)(l[j] - 8) * d;
    }
}

void pf_quant_q4_0(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        block_q4_0 blk;
        uint8_t l[32];
        blk.d = encode_sym32(src + b * 32, 8, l);
        pack_levels(l, blk.qs, NULL);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Σ_blocks dx·dy·Σ (qx - 8)·qy. */
void pf_vec_dot_q4_0_q8_0(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        block_q4_0 bx;
        block_q8_0 by;
        uint8_t l[32];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_levels(bx.qs, NULL, l);
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += (l[j] - 8) * by.qs[j];
        sumf += (float)sumi * (pf_fp16_to_fp32(bx.d) * pf_fp16_to_fp32(by.d));
    }
    *s = sumf;
}

/* ---- Q4_1: y = q·d + m ---- */
void pf_dequant_q4_1(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK4_1; b++) {
        block_q4_1 blk;
        uint8_t l[32];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_levels(blk.qs, NULL, l);
        const float d = pf_fp16_to_fp32(blk.d), m = pf_fp16_to_fp32(blk.m);
        for (int j = 0; j < 32; j++) dst[b * 32 + j] = (float)l[j] * d + m;
    }
}

void pf_quant_q4_1(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK4_1; b++) {
        block_q4_1 blk;
        uint8_t l[32];
        encode_affine32(src + b * 32, 15, l, &blk.d, &blk.m);
        pack_levels(l, blk.qs, NULL);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Σ_blocks dx·dy·Σ qx·qy + mx·sy, where sy = dy·Σqy is stored in the Q8_1 block. */
void pf_vec_dot_q4_1_q8_1(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        block_q4_1 bx;
        block_q8_1 by;
        uint8_t l[32];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_levels(bx.qs, NULL, l);
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += l[j] * by.qs[j];
        sumf += (pf_fp16_to_fp32(bx.d) * pf_fp16_to_fp32(by.d)) * (float)sumi +
                pf_fp16_to_fp32(bx.m) * pf_fp16_to_fp32(by.s);
    }
    *s = sumf;
}

/* ---- Q5_0: y = (q - 16)·d, q 5 bits ---- */
void pf_dequant_q5_0(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK5_0; b++) {
        block_q5_0 blk;
        uint8_t l[32];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_levels(blk.qs, blk.qh, l);
        const float d = pf_fp16_to_fp32(blk.d);
        for (int j = 0; j < 32; j++) dst[b * 32 + j] = (float)(l[j] - 16) * d;
    }
}

void pf_quant_q5_0(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK5_0; b++) {
        block_q5_0 blk;
        uint8_t l[32];
        blk.d = encode_sym32(src + b * 32, 16, l);
        pack_levels(l, blk.qs, blk.qh);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Σ_blocks dx·dy·Σ (qx - 16)·qy. */
void pf_vec_dot_q5_0_q8_0(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        block_q5_0 bx;
        block_q8_0 by;
        uint8_t l[32];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_levels(bx.qs, bx.qh, l);
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += (l[j] - 16) * by.qs[j];
        sumf += (float)sumi * (pf_fp16_to_fp32(bx.d) * pf_fp16_to_fp32(by.d));
    }
    *s = sumf;
}

/* ---- Q5_1: y = q·d + m, q 5 bits ---- */
void pf_dequant_q5_1(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK5_1; b++) {
        block_q5_1 blk;
        uint8_t l[32];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_levels(blk.qs, blk.qh, l);
        const float d = pf_fp16_to_fp32(blk.d), m = pf_fp16_to_fp32(blk.m);
        for (int j = 0; j < 32; j++) dst[b * 32 + j] = (float)l[j] * d + m;
    }
}

void pf_quant_q5_1(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK5_1; b++) {
        block_q5_1 blk;
        uint8_t l[32];
        encode_affine32(src + b * 32, 31, l, &blk.d, &blk.m);
        pack_levels(l, blk.qs, blk.qh);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

/* Σ_blocks dx·dy·Σ qx·qy + mx·sy. */
void pf_vec_dot_q5_1_q8_1(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        block_q5_1 bx;
        block_q8_1 by;
        uint8_t l[32];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_levels(bx.qs, bx.qh, l);
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += l[j] * by.qs[j];
        sumf += (pf_fp16_to_fp32(bx.d) * pf_fp16_to_fp32(by.d)) * (float)sumi +
                pf_fp16_to_fp32(bx.m) * pf_fp16_to_fp32(by.s);
    }
    *s = sumf;
}
