/* Q4_K and Q5_K: 256-element super-blocks of 8 groups of 32. Each group has a 6-bit scale and
 * a 6-bit min (packed in scales[12], see pf_k_get_scale_min); value = (d·sc)·q - (dmin·m) with
 * q 4 bits (Q4_K) or 5 bits (Q5_K: fifth bit in qh). Chunk c (64 elements) uses qs[32c..32c+31]:
 * low nibbles are group 2c, high nibbles group 2c+1; qh[l] bit 2c / 2c+1 are their fifth bits. */
#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

/* Unpacks the 256 levels of a Q4_K (qh == NULL) or Q5_K super-block. */
static void unpack_k45(const uint8_t *qs, const uint8_t *qh, uint8_t *L) {
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            uint8_t b = qs[32 * c + l];
            int h0 = qh ? (qh[l] >> (2 * c)) & 1 : 0, h1 = qh ? (qh[l] >> (2 * c + 1)) & 1 : 0;
            L[64 * c + l] = (uint8_t)((b & 0x0F) | (h0 << 4));
            L[64 * c + 32 + l] = (uint8_t)((b >> 4) | (h1 << 4));
        }
    }
}

static void pack_k45(const uint8_t *L, uint8_t *qs, uint8_t *qh) {
    if (qh) memset(qh, 0, QK_K / 8);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            uint8_t a = L[64 * c + l], b = L[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((a & 0x0F) | ((b & 0x0F) << 4));
            if (qh) qh[l] |= (uint8_t)((((a >> 4) & 1) << (2 * c)) | (((b >> 4) & 1) << (2 * c + 1)));
        }
    }
}

/* Packs 8 six-bit scales and mins: groups 0-3 in the low 6 bits of bytes 0-3 / 4-7, groups 4-7
 * as nibbles in bytes 8-11 with their top 2 bits in the high bits of bytes 0-3 / 4-7. */
static void pack_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((ls[j + 4] & 0x0F) | ((lm[j + 4] & 0x0F) << 4));
    }
}

/* y = (d·sc)·q - (dmin·m), in that float order (bit-exact with ggml). */
static void dequant_k45(const uint16_t dh, const uint16_t mh, const uint8_t *scales, const uint8_t *L, float *y) {
    const float d = pf_fp16_to_fp32(dh), dmin = pf_fp16_to_fp32(mh);
    for (int g = 0; g < 8; g++) {
        uint8_t sc, m;
        pf_k_get_scale_min(g, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        for (int l = 0; l < 32; l++) y[32 * g + l] = d1 * (float)L[32 * g + l] - m1;
    }
}

/* Encodes one super-block: per group, an offset scale search (pf_fit_affine: inverse scales
 * (nmax + rmin + 0.3·t)/(max - min), t = 0..nstep, then one Lloyd step; uniform weights, which
 * give a lower squared error here than ggml's rms(group) + |x|) gives a float scale and min;
 * pf_k_affine_encode quantizes them to 6 bits, refits (d, dmin), tries the ±1 neighbours of
 * each group's scale and min, and picks the levels. */
static void encode_k45(const float *x, int nmax, float rmin, int nstep, uint16_t *d, uint16_t *dmin,
                       uint8_t *scales, uint8_t *L) {
    float sc[8], mn[8];
    uint8_t ls[8], lm[8];
    for (int g = 0; g < 8; g++) sc[g] = pf_fit_affine(32, nmax, x + 32 * g, NULL, rmin, 0.3f, nstep, &mn[g]);
    pf_k_affine_encode(x, 8, 32, nmax, 63, sc, mn, ls, lm, d, dmin, L);
    pack_scales(ls, lm, scales);
}

/* Σ x·y for one super-block pair: d·dy·Σ_g sc_g·Σ q·q8 - dmin·dy·Σ_g m_g·(bsums of group g). */
static float dot_k45(uint16_t dh, uint16_t mh, const uint8_t *scales, const uint8_t *L, const block_q8_K *by) {
    int sumi = 0, summ = 0;
    for (int g = 0; g < 8; g++) {
        uint8_t sc, m;
        pf_k_get_scale_min(g, scales, &sc, &m);
        int s = 0;
        for (int l = 0; l < 32; l++) s += L[32 * g + l] * by->qs[32 * g + l];
        sumi += sc * s;
        summ += m * (by->bsums[2 * g] + by->bsums[2 * g + 1]);
    }
    return by->d * pf_fp16_to_fp32(dh) * (float)sumi - by->d * pf_fp16_to_fp32(mh) * (float)summ;
}

/* ---- Q4_K ---- */
void pf_dequant_q4_k(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q4_K blk;
        uint8_t L[QK_K];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_k45(blk.qs, NULL, L);
        dequant_k45(blk.d, blk.dmin, blk.scales, L, dst + b * QK_K);
    }
}

void pf_quant_q4_k(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q4_K blk;
        uint8_t L[QK_K];
        encode_k45(src + b * QK_K, 15, -0.9f, 6, &blk.d, &blk.dmin, blk.scales, L);
        pack_k45(L, blk.qs, NULL);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

void pf_vec_dot_q4_k_q8_k(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q4_K bx;
        block_q8_K by;
        uint8_t L[QK_K];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_k45(bx.qs, NULL, L);
        sumf += dot_k45(bx.d, bx.dmin, bx.scales, L, &by);
    }
    *s = sumf;
}

/* ---- Q5_K ---- */
void pf_dequant_q5_k(const void *src, float *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q5_K blk;
        uint8_t L[QK_K];
        memcpy(&blk, (const uint8_t *)src + b * sizeof blk, sizeof blk);
        unpack_k45(blk.qs, blk.qh, L);
        dequant_k45(blk.d, blk.dmin, blk.scales, L, dst + b * QK_K);
    }
}

void pf_quant_q5_k(const float *src, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q5_K blk;
        uint8_t L[QK_K];
        encode_k45(src + b * QK_K, 31, -0.6f, 5, &blk.d, &blk.dmin, blk.scales, L);
        pack_k45(L, blk.qs, blk.qh);
        memcpy((uint8_t *)dst + b * sizeof blk, &blk, sizeof blk);
    }
}

void pf_vec_dot_q5_k_q8_k(int64_t n, float *s, const void *x, const void *y) {
    float sumf = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        block_q5_K bx;
        block_q8_K by;
        uint8_t L[QK_K];
        memcpy(&bx, (const uint8_t *)x + b * sizeof bx, sizeof bx);
        memcpy(&by, (const uint8_t *)y + b * sizeof by, sizeof by);
        unpack_k45(bx.qs, bx.qh, L);
        sumf += dot_k45(bx.d, bx.dmin, bx.scales, L, &by);
    }
    *s = sumf;
}
