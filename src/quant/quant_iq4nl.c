/* IQ4_NL: 32-element blocks of 4-bit indices into the non-linear codebook pf_iq4nl_values,
 * one fp16 scale: y = d·values[q]. Nibble j holds element j (low) and j+16 (high). */
#include <math.h>
#include <stdbool.h>
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

/* Nearest codebook entry by table: for an integer u = floor(2v), entry u + NL_OFF holds the
 * number of midpoints values[k] + values[k+1] (integers) that are <= u, i.e. the index of the
 * entry nearest to v, ties going up (ggml's best_index_int8). Valid for |v| < NL_OFF/2 - 1. */
#define NL_OFF 300
#define NL_LUT (2 * NL_OFF)

typedef struct { uint8_t idx[NL_LUT]; int8_t val[NL_LUT]; } nl_table;

static void nl_table_init(nl_table *t) {
    int k = 0; /* grows with u: one pass */
    for (int u = -NL_OFF; u < NL_OFF; u++) {
        while (k < 15 && u >= pf_iq4nl_values[k] + pf_iq4nl_values[k + 1]) k++;
        t->idx[u + NL_OFF] = (uint8_t)k;
        t->val[u + NL_OFF] = pf_iq4nl_values[k];
    }
}

/* floor(v) for |v| < 2^31 (vectorizable: truncate, then step down where that went up). */
static inline int nl_floor(float v) {
    int t = (int)v;
    return t - ((float)t > v);
}

/* Index of the entry nearest to v (binary search; any v, NaN gives 0). */
static int nl_index_slow(float v) {
    if (!(v > pf_iq4nl_values[0])) return 0;
    if (v >= pf_iq4nl_values[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < pf_iq4nl_values[mid]) hi = mid; else lo = mid;
    }
    return (v - pf_iq4nl_values[lo] < pf_iq4nl_values[hi] - v) ? lo : hi;
}

/* Squared error of a block against the stored scale h with the nearest entries (stored in L).
 * amax is the block's largest |x|, or INFINITY when the block holds an infinity (the table
 * path converts to int, which needs finite, bounded arguments; NaNs were replaced by 0). */
static float nl_block_err(const nl_table *t, const float *x, float amax, pf_half h, uint8_t *L) {
    const float d = pf_fp16_to_fp32(h);
    float e = 0.0f;
    if (d == 0.0f) {
        for (int j = 0; j < 32; j++) {
            L[j] = 8;
            e += x[j] * x[j];
        }
        return e;
    }
    const float id = 1.0f / d;
    if (amax * fabsf(id) < (float)(NL_OFF / 2 - 2)) {
        for (int j = 0; j < 32; j++) L[j] = t->idx[nl_floor(2.0f * (x[j] * id)) + NL_OFF];
    } else {
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)nl_index_slow(x[j] * id);
    }
    for (int j = 0; j < 32; j++) {
        const float diff = d * (float)pf_iq4nl_values[L[j]] - x[j];
        e += diff * diff;
    }
    return e;
}

/* A coarse version of ggml's scale search (ggml maps the largest |x| to +127 and to -127 + t
 * for every t in -7..7): here the largest |x| is mapped exactly onto the end entries +113 and
 * -127 (so a block that ggml made is found again exactly) and to -127 ± 5. Each candidate gets
 * its least-squares scale for ggml's x² weights and for uniform weights from the same pass (the
 * table lookup is the costly part). The uniform-weight winner is then refined by up to two
 * Lloyd steps (re-index with its scale, refit). Both winners are rounded to fp16, the entries
 * are re-chosen for the stored scale, and the smaller squared error wins (ties keep the
 * x²-weighted one). |2·is·x| <= 2·132 stays inside the table. */
void pf_quant_iq4_nl(const float *src, void *dst, int64_t n) {
    nl_table t;
    nl_table_init(&t);
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        block_iq4_nl blk;
        uint8_t L[32], L1[32];
        float amax = 0.0f, max = 0.0f, x[32], x2[32], w[32];
        bool finite = true;
        for (int j = 0; j < 32; j++) {
            const float v = src[b * 32 + j];
            x[j] = v == v ? v : 0.0f; /* NaN -> 0 (the table path needs ordered values) */
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
            finite = finite && ax <= 1e30f;
            x2[j] = 2.0f * x[j];
            w[j] = x[j] * x[j];
        }
        if (!finite) amax = INFINITY;
        blk.d = 0;
        if (amax >= 1e-15f && amax <= 1e30f) {
            double ba[2] = {0, 0}, bb[2] = {0, 0};
            const float imax = 1.0f / max;
            static const float ends[4] = {113.0f, -127.0f, -132.0f, -122.0f};
            for (int k = 0; k < 4; k++) {
                const float is = ends[k] * imax;
                float a[2][4] = {{0}}, c[2][4] = {{0}};
                for (int j = 0; j < 32; j += 4)
                    for (int i = 0; i < 4; i++) {
                        const float q = (float)t.val[nl_floor(is * x2[j + i]) + NL_OFF];
                        const float qx = q * x[j + i], qq = q * q;
                        a[0][i] += w[j + i] * qx;
                        c[0][i] += w[j + i] * qq;
                        a[1][i] += qx;
                        c[1][i] += qq;
                    }
                for (int v = 0; v < 2; v++) {
                    const double sa = (a[v][0] + a[v][1]) + (a[v][2] + a[v][3]);
                    const double sc = (c[v][0] + c[v][1]) + (c[v][2] + c[v][3]);
                    if (sc > 0 && (bb[v] == 0.0 || sa * sa * bb[v] > ba[v] * ba[v] * sc)) {
                        ba[v] = sa;
                        bb[v] = sc;
                    }
                }
            }
            for (int it = 0; it < 2 && bb[1] > 0; it++) { /* uniform weights: re-index, refit */
                const float is = (float)(bb[1] / ba[1]);
                if (!(fabsf(is) * amax < (float)(NL_OFF / 2 - 2))) break;
                float a[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
                for (int j = 0; j < 32; j += 4)
                    for (int i = 0; i < 4; i++) {
                        const float q = (float)t.val[nl_floor(is * x2[j + i]) + NL_OFF];
                        a[i] += q * x[j + i];
                        c[i] += q * q;
                    }
                const double sa = (a[0] + a[1]) + (a[2] + a[3]), sc = (c[0] + c[1]) + (c[2] + c[3]);
                if (!(sc > 0 && sa * sa * bb[1] > ba[1] * ba[1] * sc)) break;
                ba[1] = sa;
                bb[1] = sc;
            }
            const pf_half h0 = bb[0] > 0 ? pf_half_sat((float)(ba[0] / bb[0])) : 0;
            const pf_half h1 = bb[1] > 0 ? pf_half_sat((float)(ba[1] / bb[1])) : h0;
            const float e0 = nl_block_err(&t, x, amax, h0, L);
            blk.d = h0;
            if (h1 != h0 && nl_block_err(&t, x, amax, h1, L1) < e0) {
                blk.d = h1;
                memcpy(L, L1, 32);
            }
        } else {
            nl_block_err(&t, x, amax, 0, L);
        }
        for (int j = 0; j < 16; j++) blk.qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
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
