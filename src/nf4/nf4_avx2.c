/* AVX2/FMA NF4 tile kernels (contract in nf4_internal.h; compiled with -mavx2 -mfma, called only
 * after pf_cpu_has_avx2()).
 * Dequantization: 16 packed bytes -> 32 codes (high nibble first) with two shifts/masks and a
 * byte interleave; each group of 8 codes is widened to 32-bit lanes and looked up in the 16-level
 * table as two 8-entry halves (vpermps uses the low 3 bits) blended on bit 3 of the code; then
 * multiplied by the block absmax — the same single float product as the scalar kernel, so the
 * tile is bit-identical to it.
 * Forward dots: the 4-row × 3-token FMA tile of the f32 GEMM. Backward: 32 columns × 2 tokens
 * of dx held in 8 accumulators while the tile rows stream through (4 loads, 8 FMAs per row). */
#include <immintrin.h>

#include "kernels/kernels_internal.h"
#include "nf4/nf4_internal.h"

/* 8 codes (one per 32-bit lane) -> 8 levels */
static inline __m256 lookup8(__m256i idx, __m256 lo_tab, __m256 hi_tab) {
    const __m256 lo = _mm256_permutevar8x32_ps(lo_tab, idx), hi = _mm256_permutevar8x32_ps(hi_tab, idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

/* 16 codes (one per byte of e) times absmax -> o[0..15] */
static inline void store16(__m128i e, __m256 lo_tab, __m256 hi_tab, __m256 a, float *o) {
    _mm256_storeu_ps(o, _mm256_mul_ps(lookup8(_mm256_cvtepu8_epi32(e), lo_tab, hi_tab), a));
    _mm256_storeu_ps(o + 8, _mm256_mul_ps(lookup8(_mm256_cvtepu8_epi32(_mm_srli_si128(e, 8)), lo_tab, hi_tab), a));
}

static void dequant_tile_avx2(const pf_nf4_tensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *tile) {
    const float *lv = pf_nf4_levels();
    const __m256 lo_tab = _mm256_loadu_ps(lv), hi_tab = _mm256_loadu_ps(lv + 8);
    const __m128i m4 = _mm_set1_epi8(15);
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t c = 0; c < nc; c += PF_NF4_BLOCK) {
            const int64_t j = (r0 + r) * bpr + (c0 + c) / PF_NF4_BLOCK;
            const __m256 a = _mm256_set1_ps(pf_nf4_block_absmax(t, j));
            const uint8_t *q = t->codes + j * (PF_NF4_BLOCK / 2);
            float *o = tile + r * nc + c;
            for (int h = 0; h < 2; h++) { /* 16 bytes = 32 weights per half */
                const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * h));
                const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4), lo = _mm_and_si128(b, m4);
                store16(_mm_unpacklo_epi8(hi, lo), lo_tab, hi_tab, a, o + 32 * h);
                store16(_mm_unpackhi_epi8(hi, lo), lo_tab, hi_tab, a, o + 32 * h + 16);
            }
        }
    }
}

static void dot_tile_avx2(const float *tile, int64_t nr, int64_t nc, const float *x, int64_t ldx, int64_t n, float *y,
                          int64_t ldy, int accumulate) {
    float c[PF_GEMM_TILE_TOKS * PF_GEMM_TILE_ROWS];
    for (int64_t t0 = 0; t0 < n; t0 += PF_GEMM_TILE_TOKS) {
        const int nt = (int)(n - t0 < PF_GEMM_TILE_TOKS ? n - t0 : PF_GEMM_TILE_TOKS);
        for (int64_t r0 = 0; r0 < nr; r0 += PF_GEMM_TILE_ROWS) {
            const int rr = (int)(nr - r0 < PF_GEMM_TILE_ROWS ? nr - r0 : PF_GEMM_TILE_ROWS);
            pf_avx2_gemm_f32_tile(nc, tile + r0 * nc, nc, x + t0 * ldx, ldx, c, PF_GEMM_TILE_ROWS, rr, nt);
            for (int t = 0; t < nt; t++)
                for (int r = 0; r < rr; r++) {
                    float *d = &y[(t0 + t) * ldy + r0 + r];
                    *d = accumulate ? *d + c[t * PF_GEMM_TILE_ROWS + r] : c[t * PF_GEMM_TILE_ROWS + r];
                }
        }
    }
}

/* dx[t, c..c+32) for the tokens t0 (and t0 + 1 when two) */
static inline void axpy32(const float *tile, int64_t nr, int64_t nc, const float *g0, const float *g1, float *d0,
                          float *d1, int accumulate) {
    __m256 a0, a1, a2, a3, b0, b1, b2, b3;
    if (accumulate) {
        a0 = _mm256_loadu_ps(d0), a1 = _mm256_loadu_ps(d0 + 8), a2 = _mm256_loadu_ps(d0 + 16), a3 = _mm256_loadu_ps(d0 + 24);
    } else {
        a0 = a1 = a2 = a3 = _mm256_setzero_ps();
    }
    if (g1 && accumulate) {
        b0 = _mm256_loadu_ps(d1), b1 = _mm256_loadu_ps(d1 + 8), b2 = _mm256_loadu_ps(d1 + 16), b3 = _mm256_loadu_ps(d1 + 24);
    } else {
        b0 = b1 = b2 = b3 = _mm256_setzero_ps();
    }
    if (g1) {
        for (int64_t r = 0; r < nr; r++) {
            const float *w = tile + r * nc;
            const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), w2 = _mm256_loadu_ps(w + 16),
                         w3 = _mm256_loadu_ps(w + 24);
            const __m256 s0 = _mm256_broadcast_ss(g0 + r), s1 = _mm256_broadcast_ss(g1 + r);
            a0 = _mm256_fmadd_ps(s0, w0, a0);
            a1 = _mm256_fmadd_ps(s0, w1, a1);
            a2 = _mm256_fmadd_ps(s0, w2, a2);
            a3 = _mm256_fmadd_ps(s0, w3, a3);
            b0 = _mm256_fmadd_ps(s1, w0, b0);
            b1 = _mm256_fmadd_ps(s1, w1, b1);
            b2 = _mm256_fmadd_ps(s1, w2, b2);
            b3 = _mm256_fmadd_ps(s1, w3, b3);
        }
        _mm256_storeu_ps(d1, b0), _mm256_storeu_ps(d1 + 8, b1), _mm256_storeu_ps(d1 + 16, b2), _mm256_storeu_ps(d1 + 24, b3);
    } else {
        for (int64_t r = 0; r < nr; r++) {
            const float *w = tile + r * nc;
            const __m256 s0 = _mm256_broadcast_ss(g0 + r);
            a0 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(w), a0);
            a1 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(w + 8), a1);
            a2 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(w + 16), a2);
            a3 = _mm256_fmadd_ps(s0, _mm256_loadu_ps(w + 24), a3);
        }
    }
    _mm256_storeu_ps(d0, a0), _mm256_storeu_ps(d0 + 8, a1), _mm256_storeu_ps(d0 + 16, a2), _mm256_storeu_ps(d0 + 24, a3);
}

static void axpy_tile_avx2(const float *tile, int64_t nr, int64_t nc, const float *g, int64_t ldg, int64_t n, float *dx,
                           int64_t lddx, int accumulate) {
    for (int64_t c = 0; c < nc; c += 32) { /* nc is a multiple of 64 */
        int64_t t = 0;
        for (; t + 2 <= n; t += 2)
            axpy32(tile + c, nr, nc, g + t * ldg, g + (t + 1) * ldg, dx + t * lddx + c, dx + (t + 1) * lddx + c, accumulate);
        if (t < n) axpy32(tile + c, nr, nc, g + t * ldg, NULL, dx + t * lddx + c, NULL, accumulate);
    }
}

/* Σ level·x over one block of 64 (8 lanes) */
static inline __m256 block_dot(const uint8_t *q, const float *x, __m256 lo_tab, __m256 hi_tab, __m128i m4) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int h = 0; h < 2; h++) {
        const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * h));
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4), lo = _mm_and_si128(b, m4);
        const __m128i e0 = _mm_unpacklo_epi8(hi, lo), e1 = _mm_unpackhi_epi8(hi, lo);
        const float *xh = x + 32 * h;
        acc0 = _mm256_fmadd_ps(lookup8(_mm256_cvtepu8_epi32(e0), lo_tab, hi_tab), _mm256_loadu_ps(xh), acc0);
        acc1 = _mm256_fmadd_ps(lookup8(_mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8)), lo_tab, hi_tab), _mm256_loadu_ps(xh + 8), acc1);
        acc0 = _mm256_fmadd_ps(lookup8(_mm256_cvtepu8_epi32(e1), lo_tab, hi_tab), _mm256_loadu_ps(xh + 16), acc0);
        acc1 = _mm256_fmadd_ps(lookup8(_mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8)), lo_tab, hi_tab), _mm256_loadu_ps(xh + 24), acc1);
    }
    return _mm256_add_ps(acc0, acc1);
}

static void matvec_avx2(const pf_nf4_tensor *t, int64_t r0, int64_t r1, const float *x, float *y) {
    const float *lv = pf_nf4_levels();
    const __m256 lo_tab = _mm256_loadu_ps(lv), hi_tab = _mm256_loadu_ps(lv + 8);
    const __m128i m4 = _mm_set1_epi8(15);
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    for (int64_t r = r0; r < r1; r++) {
        __m256 acc = _mm256_setzero_ps();
        const uint8_t *q = t->codes + r * bpr * (PF_NF4_BLOCK / 2);
        for (int64_t b = 0; b < bpr; b++)
            acc = _mm256_fmadd_ps(block_dot(q + b * (PF_NF4_BLOCK / 2), x + b * PF_NF4_BLOCK, lo_tab, hi_tab, m4),
                                  _mm256_set1_ps(pf_nf4_block_absmax(t, r * bpr + b)), acc);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        y[r - r0] = _mm_cvtss_f32(s);
    }
}

const pf_nf4_kernels pf_nf4_kernels_avx2 = {dequant_tile_avx2, dot_tile_avx2, axpy_tile_avx2, matvec_avx2};
