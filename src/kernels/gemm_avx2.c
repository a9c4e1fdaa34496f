/* AVX2/FMA f32 GEMM tile (for float-weight matmuls with several tokens) and the streaming read
 * kernel of the bandwidth benchmark. */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

/* Full 4 x 3 tile: 12 accumulators; each 8-wide step loads 3 activation vectors and streams
 * 4 weight vectors through FMAs (memory operands), 12 FMAs per 7 loads. */
static void tile_4x3(int64_t n, const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc) {
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    const float *b0 = b, *b1 = b + ldb, *b2 = b + 2 * ldb;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 y0 = _mm256_loadu_ps(b0 + k), y1 = _mm256_loadu_ps(b1 + k), y2 = _mm256_loadu_ps(b2 + k);
        __m256 w = _mm256_loadu_ps(a0 + k);
        c00 = _mm256_fmadd_ps(w, y0, c00);
        c01 = _mm256_fmadd_ps(w, y1, c01);
        c02 = _mm256_fmadd_ps(w, y2, c02);
        w = _mm256_loadu_ps(a1 + k);
        c10 = _mm256_fmadd_ps(w, y0, c10);
        c11 = _mm256_fmadd_ps(w, y1, c11);
        c12 = _mm256_fmadd_ps(w, y2, c12);
        w = _mm256_loadu_ps(a2 + k);
        c20 = _mm256_fmadd_ps(w, y0, c20);
        c21 = _mm256_fmadd_ps(w, y1, c21);
        c22 = _mm256_fmadd_ps(w, y2, c22);
        w = _mm256_loadu_ps(a3 + k);
        c30 = _mm256_fmadd_ps(w, y0, c30);
        c31 = _mm256_fmadd_ps(w, y1, c31);
        c32 = _mm256_fmadd_ps(w, y2, c32);
    }
    float r[4][3] = {{pf_hsum_ps(c00), pf_hsum_ps(c01), pf_hsum_ps(c02)},
                     {pf_hsum_ps(c10), pf_hsum_ps(c11), pf_hsum_ps(c12)},
                     {pf_hsum_ps(c20), pf_hsum_ps(c21), pf_hsum_ps(c22)},
                     {pf_hsum_ps(c30), pf_hsum_ps(c31), pf_hsum_ps(c32)}};
    for (; k < n; k++)
        for (int i = 0; i < 4; i++)
            for (int t = 0; t < 3; t++)
                r[i][t] += pf_ldf((const uint8_t *)(a + i * lda + k)) * pf_ldf((const uint8_t *)(b + t * ldb + k));
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 3; t++) c[t * ldc + i] = r[i][t];
}

/* c[t * ldc + r] = dot(a row r, b row t) for r < nr, t < nt; edge tiles fall back to the
 * single-dot kernel. */
void pf_avx2_gemm_f32_tile(int64_t n, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int nr, int nt) {
    if (nr == PF_GEMM_TILE_ROWS && nt == PF_GEMM_TILE_TOKS) {
        tile_4x3(n, a, lda, b, ldb, c, ldc);
        return;
    }
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++) pf_avx2_vec_dot_f32_f32(n, &c[t * ldc + r], a + r * lda, b + t * ldb);
}

/* 8 weights at element i of a float-format row, widened to f32. */
#define W8_F32(p, i) _mm256_loadu_ps((const float *)(const void *)(p) + (i))
#define W8_F16(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint8_t *)(p) + 2 * (i))))
#define W8_BF16(p, i) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint8_t *)(p) + 2 * (i)))), 16))

/* Scalar weight i of a float-format row. */
static inline float w1_f32(const uint8_t *p, int64_t i) { return pf_ldf(p + 4 * i); }
static inline float w1_f16(const uint8_t *p, int64_t i) { return pf_ldh(p + 2 * i); }
static inline float w1_bf16(const uint8_t *p, int64_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* out[r] = dot(row r, y) for the 4 rows at w, w + wrow, w + 2 wrow, w + 3 wrow: each y vector
 * is loaded once for four rows (a single-row matvec would re-read y, which does not stay in
 * L1 next to the streamed weights, once per row); each row is prefetched ahead. */
#define MATVEC4(NAME, W8, W1, ESZ)                                                                      \
    void NAME(int64_t n, const void *w, size_t wrow, const float *y, float *out) {                        \
        const uint8_t *r0 = w, *r1 = r0 + wrow, *r2 = r1 + wrow, *r3 = r2 + wrow;                        \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;  \
        int64_t i = 0;                                                                                    \
        for (; i + 16 <= n; i += 16) {                                                                    \
            if ((i & (64 / (ESZ) - 1)) == 0) {                                                            \
                pf_prefetch_ahead(r0 + (ESZ) * i, 64);                                                    \
                pf_prefetch_ahead(r1 + (ESZ) * i, 64);                                                    \
                pf_prefetch_ahead(r2 + (ESZ) * i, 64);                                                    \
                pf_prefetch_ahead(r3 + (ESZ) * i, 64);                                                    \
            }                                                                                             \
            const __m256 y0 = _mm256_loadu_ps(y + i), y1 = _mm256_loadu_ps(y + i + 8);                    \
            a0 = _mm256_fmadd_ps(W8(r0, i), y0, a0);                                                      \
            a1 = _mm256_fmadd_ps(W8(r1, i), y0, a1);                                                      \
            a2 = _mm256_fmadd_ps(W8(r2, i), y0, a2);                                                      \
            a3 = _mm256_fmadd_ps(W8(r3, i), y0, a3);                                                      \
            b0 = _mm256_fmadd_ps(W8(r0, i + 8), y1, b0);                                                  \
            b1 = _mm256_fmadd_ps(W8(r1, i + 8), y1, b1);                                                  \
            b2 = _mm256_fmadd_ps(W8(r2, i + 8), y1, b2);                                                  \
            b3 = _mm256_fmadd_ps(W8(r3, i + 8), y1, b3);                                                  \
        }                                                                                                 \
        for (; i + 8 <= n; i += 8) {                                                                      \
            const __m256 y0 = _mm256_loadu_ps(y + i);                                                     \
            a0 = _mm256_fmadd_ps(W8(r0, i), y0, a0);                                                      \
            a1 = _mm256_fmadd_ps(W8(r1, i), y0, a1);                                                      \
            a2 = _mm256_fmadd_ps(W8(r2, i), y0, a2);                                                      \
            a3 = _mm256_fmadd_ps(W8(r3, i), y0, a3);                                                      \
        }                                                                                                 \
        float s0 = pf_hsum_ps(_mm256_add_ps(a0, b0)), s1 = pf_hsum_ps(_mm256_add_ps(a1, b1));             \
        float s2 = pf_hsum_ps(_mm256_add_ps(a2, b2)), s3 = pf_hsum_ps(_mm256_add_ps(a3, b3));             \
        for (; i < n; i++) {                                                                              \
            s0 += W1(r0, i) * y[i];                                                                       \
            s1 += W1(r1, i) * y[i];                                                                       \
            s2 += W1(r2, i) * y[i];                                                                       \
            s3 += W1(r3, i) * y[i];                                                                       \
        }                                                                                                 \
        out[0] = s0;                                                                                      \
        out[1] = s1;                                                                                      \
        out[2] = s2;                                                                                      \
        out[3] = s3;                                                                                      \
    }

MATVEC4(pf_avx2_matvec4_f32, W8_F32, w1_f32, 4)
MATVEC4(pf_avx2_matvec4_f16, W8_F16, w1_f16, 2)
MATVEC4(pf_avx2_matvec4_bf16, W8_BF16, w1_bf16, 2)

/* Sum of n floats (n % 32 == 0, p 32-byte aligned) with four independent add chains, so the
 * loop is bound by memory reads only. */
float pf_avx2_stream_sum(const float *p, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
    }
    return pf_hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}
