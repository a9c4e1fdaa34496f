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

/* Candidate grids of the scale searches (measured: denser grids gain < 0.5% RMSE here, at
 * up to 4x the time). Symmetric: -(nmax + SYM_STEP·t)/max, t = -SYM_T..SYM_T. Offset:
 * (nmax + AFF_RMIN + AFF_STEP·t)/(max - min), t = 0..AFF_T, then one Lloyd step. */
#define SYM_T 2
#define SYM_STEP 0.4f
#define AFF_RMIN -0.75f
#define AFF_STEP 0.5f
#define AFF_T 3

static inline float sum4(const float *a) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* Squared error of a symmetric block against the stored scale h, levels nearest to x/d in
 * [-nmax, nmax-1] (stored in lev + nmax when lev != NULL). */
static float sym_err(const float *x, float amax, int nmax, pf_half h, uint8_t *lev) {
    const float d = pf_fp16_to_fp32(h);
    float e[4] = {0, 0, 0, 0};
    if (d == 0.0f) {
        for (int j = 0; j < 32; j += 4)
            for (int k = 0; k < 4; k++) e[k] += x[j + k] * x[j + k];
        if (lev) memset(lev, nmax, 32);
        return sum4(e);
    }
    const float id = 1.0f / d;
    if (!(amax * fabsf(id) < PF_FAST_LIMIT)) { /* odd magnitudes: exact slow path */
        float s = 0.0f;
        for (int j = 0; j < 32; j++) {
            const int l = pf_qround(x[j] * id, -nmax, nmax - 1);
            if (lev) lev[j] = (uint8_t)(l + nmax);
            const float diff = (float)l * d - x[j];
            s += diff * diff;
        }
        return s;
    }
    for (int j = 0; j < 32; j += 4)
        for (int k = 0; k < 4; k++) {
            const float l = (float)pf_clampi(pf_nearest(x[j + k] * id), -nmax, nmax - 1);
            const float diff = l * d - x[j + k];
            e[k] += diff * diff;
        }
    if (lev)
        for (int j = 0; j < 32; j++) lev[j] = (uint8_t)(pf_clampi(pf_nearest(x[j] * id), -nmax, nmax - 1) + nmax);
    return sum4(e);
}

/* Symmetric block (Q4_0: nmax 8, Q5_0: nmax 16): value = (level - nmax)·d.
 * Candidates: ggml's d = max/-nmax, and the least-squares scale of the best of the inverse
 * scales of the SYM grid (scored by (Σxl)²/Σl², one vectorized pass each). Both
 * are rounded to fp16, levels are the nearest ones for the stored d, and the smaller squared
 * error wins (ties keep ggml's, so blocks ggml made are reproduced). */
static pf_half encode_sym32(const float *x, int nmax, uint8_t *lev) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float ax = fabsf(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
    }
    const pf_half h0 = pf_half_sat(max / (float)-nmax);
    if (!(amax > 0.0f) || !(amax <= 1e30f)) {
        sym_err(x, amax, nmax, h0, lev);
        return h0;
    }
    double best_a = 0.0, best_b = 0.0;
    const float imax = -1.0f / max;
    for (int k = 0; k <= 2 * SYM_T; k++) {
        const int t = k == 0 ? 0 : (k <= SYM_T ? -k : k - SYM_T);
        const float is = ((float)nmax + SYM_STEP * (float)t) * imax;
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
        for (int j = 0; j < 32; j += 4)
            for (int i = 0; i < 4; i++) {
                const float l = (float)pf_clampi(pf_nearest(is * x[j + i]), -nmax, nmax - 1);
                a[i] += l * x[j + i];
                b[i] += l * l;
            }
        const double sa = sum4(a), sb = sum4(b);
        if (sb > 0 && (best_b == 0.0 || sa * sa * best_b > best_a * best_a * sb)) {
            best_a = sa;
            best_b = sb;
        }
    }
    const pf_half h1 = best_b > 0 ? pf_half_sat((float)(best_a / best_b)) : h0;
    if (h1 == h0) {
        sym_err(x, amax, nmax, h0, lev);
        return h0;
    }
    uint8_t l1[32];
    const float e0 = sym_err(x, amax, nmax, h0, lev), e1 = sym_err(x, amax, nmax, h1, l1);
    if (e1 < e0) {
        memcpy(lev, l1, 32);
        return h1;
    }
    return h0;
}

/* Squared error of an offset block against the stored (d, m), levels nearest to (x - m)/d in
 * [0, nmax] (stored in lev when lev != NULL). */
static float affine_err(const float *x, float amax, int nmax, pf_half dh, pf_half mh, uint8_t *lev) {
    const float d = pf_fp16_to_fp32(dh), m = pf_fp16_to_fp32(mh);
    float e[4] = {0, 0, 0, 0};
    if (d == 0.0f) {
        for (int j = 0; j < 32; j += 4)
            for (int k = 0; k < 4; k++) e[k] += (m - x[j + k]) * (m - x[j + k]);
        if (lev) memset(lev, 0, 32);
        return sum4(e);
    }
    const float id = 1.0f / d;
    if (!((amax + fabsf(m)) * fabsf(id) < PF_FAST_LIMIT)) {
        float s = 0.0f;
        for (int j = 0; j < 32; j++) {
            const int l = pf_qround((x[j] - m) * id, 0, nmax);
            if (lev) lev[j] = (uint8_t)l;
            const float diff = (float)l * d + m - x[j];
            s += diff * diff;
        }
        return s;
    }
    for (int j = 0; j < 32; j += 4)
        for (int k = 0; k < 4; k++) {
            const float l = (float)pf_clampi(pf_nearest((x[j + k] - m) * id), 0, nmax);
            const float diff = l * d + m - x[j + k];
            e[k] += diff * diff;
        }
    if (lev)
        for (int j = 0; j < 32; j++) lev[j] = (uint8_t)pf_clampi(pf_nearest((x[j] - m) * id), 0, nmax);
    return sum4(e);
}

/* Offset block (Q4_1: nmax 15, Q5_1: nmax 31): value = level·d + m. Candidates: ggml's
 * (d = (max-min)/nmax, m = min) and the jointly least-squares (d, m) of the best of the
 * inverse scales of the AFF grid (error in closed form, one vectorized pass each), improved by
 * one Lloyd step (levels re-rounded for that fit, refit, kept if better). Both are rounded to
 * fp16, levels re-rounded for the stored pair, smaller squared error wins (ties keep ggml's,
 * so blocks ggml made are reproduced). */
static void encode_affine32(const float *x, int nmax, uint8_t *lev, pf_half *dh, pf_half *mh) {
    float mn = INFINITY, mx = -INFINITY;
    for (int j = 0; j < 32; j++) { /* NaNs skipped */
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    if (!isfinite(mn) || !isfinite(mx)) mn = mx = 0.0f;
    const float amax = fmaxf(fabsf(mn), fabsf(mx)), range = mx - mn;
    const pf_half h0 = pf_half_sat(range / (float)nmax), m0 = pf_half_sat(mn);
    *dh = h0;
    *mh = m0;
    if (!(range > 0.0f) || !(range <= 1e30f) || !(amax <= 1e30f)) {
        affine_err(x, amax, nmax, h0, m0, lev);
        return;
    }
    float xm[32], p[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    for (int j = 0; j < 32; j += 4)
        for (int k = 0; k < 4; k++) {
            const float v = x[j + k] - mn;
            xm[j + k] = v;
            p[k] += v;
            q[k] += v * v;
        }
    const double sx = sum4(p), sxx = sum4(q);
    double best = INFINITY, bd = 0.0, bm = 0.0;
    const float irange = 1.0f / range;
    for (int t = 0; t <= AFF_T; t++) {
        const float is = ((float)nmax + AFF_RMIN + AFF_STEP * (float)t) * irange;
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
        for (int j = 0; j < 32; j += 4)
            for (int k = 0; k < 4; k++) {
                const float l = (float)pf_clampi(pf_nearest(is * xm[j + k]), 0, nmax);
                a[k] += l;
                b[k] += l * l;
                c[k] += l * xm[j + k];
            }
        const double sl = sum4(a), sll = sum4(b), sxl = sum4(c);
        const double D = 32.0 * sll - sl * sl;
        if (!(D > 0)) continue;
        const double d = (32.0 * sxl - sx * sl) / D, cm = (sll * sx - sl * sxl) / D;
        const double e = sxx - d * sxl - cm * sx;
        if (e < best) {
            best = e;
            bd = d;
            bm = cm + mn;
        }
    }
    if (!(best < INFINITY)) {
        affine_err(x, amax, nmax, h0, m0, lev);
        return;
    }
    if (bd > 0) { /* one Lloyd step: re-round with the fit, refit */
        const float id = (float)(1.0 / bd), c0 = (float)(bm - mn);
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
        for (int j = 0; j < 32; j += 4)
            for (int k = 0; k < 4; k++) {
                const float l = (float)pf_clampi(pf_nearest((xm[j + k] - c0) * id), 0, nmax);
                a[k] += l;
                b[k] += l * l;
                c[k] += l * xm[j + k];
            }
        const double sl = sum4(a), sll = sum4(b), sxl = sum4(c);
        const double D = 32.0 * sll - sl * sl;
        if (D > 0) {
            const double d = (32.0 * sxl - sx * sl) / D, cm = (sll * sx - sl * sxl) / D;
            if (sxx - d * sxl - cm * sx < best) {
                bd = d;
                bm = cm + mn;
            }
        }
    }
    const pf_half h1 = pf_half_sat((float)bd), m1 = pf_half_sat((float)bm);
    if (h1 == h0 && m1 == m0) {
        affine_err(x, amax, nmax, h0, m0, lev);
        return;
    }
    uint8_t l1[32];
    const float e0 = affine_err(x, amax, nmax, h0, m0, lev), e1 = affine_err(x, amax, nmax, h1, m1, l1);
    if (e1 < e0) {
        memcpy(lev, l1, 32);
        *dh = h1;
        *mh = m1;
    }
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
