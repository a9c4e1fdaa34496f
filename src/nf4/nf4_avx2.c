/* AVX2/FMA NF4 tile kernels (contract in nf4_internal.h; compiled with -mavx2 -mfma, called only
 * after pf_cpu_has_avx2()).
 * Dequantization: 16 packed bytes -> 32 codes (high nibble first) with two shifts/masks and a
 * byte interleave; each group of 8 codes is widened to 32-bit lanes and looked up in the 16-level
 * table as two 8-entry halves (vpermps uses the low 3 bits) blended on bit 3 of the code; then
 * multiplied by the block absmax — the same single float product as the scalar kernel, so the
 * tile is bit-identical to it.
 * Both products then run one register tile (uk1..uk6): 16 outputs × up to 6 tokens, fed by
 * broadcasts of x or g; the forward first transposes 16 tile rows into a k-major panel. The
 * one-row forward has its own fused kernel (matvec_avx2). */
#include <immintrin.h>
#include <string.h>

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

/* The register tile shared by both products: C[t·ldc + j] (=, or += when acc) Σ_k A[t·lda + k] ·
 * B[k·ldb + j] for t < NT (1..6) and the 16 lanes j — 12 accumulators; each k loads two B vectors
 * and broadcasts one A value per token: 12 FMAs per 8 loads, no horizontal sums. */
#define UK_LOAD(T)                                                                                       \
    __m256 c##T##0 = _mm256_setzero_ps(), c##T##1 = c##T##0;                                          \
    if (NTOK > T && acc) c##T##0 = _mm256_loadu_ps(C + T * ldc), c##T##1 = _mm256_loadu_ps(C + T * ldc + 8);
#define UK_FMA(T)                                                                                        \
    if (NTOK > T) {                                                                                      \
        const __m256 a = _mm256_broadcast_ss(A + T * lda + k);                                         \
        c##T##0 = _mm256_fmadd_ps(a, b0, c##T##0);                                                     \
        c##T##1 = _mm256_fmadd_ps(a, b1, c##T##1);                                                     \
    }
#define UK_STORE(T) \
    if (NTOK > T) _mm256_storeu_ps(C + T * ldc, c##T##0), _mm256_storeu_ps(C + T * ldc + 8, c##T##1);
#define UKERNEL(NT)                                                                                            \
    static void uk##NT(int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, \
                       int acc) {                                                                              \
        enum { NTOK = NT };                                                                                    \
        UK_LOAD(0) UK_LOAD(1) UK_LOAD(2) UK_LOAD(3) UK_LOAD(4) UK_LOAD(5)                                      \
        for (int64_t k = 0; k < K; k++) {                                                                      \
            const __m256 b0 = _mm256_loadu_ps(B + k * ldb), b1 = _mm256_loadu_ps(B + k * ldb + 8);             \
            UK_FMA(0) UK_FMA(1) UK_FMA(2) UK_FMA(3) UK_FMA(4) UK_FMA(5)                                        \
        }                                                                                                      \
        UK_STORE(0) UK_STORE(1) UK_STORE(2) UK_STORE(3) UK_STORE(4) UK_STORE(5)                                \
    }
UKERNEL(1)
UKERNEL(2)
UKERNEL(3)
UKERNEL(4)
UKERNEL(5)
UKERNEL(6)
#define UK_TOKS 6

typedef void (*uk_fn)(int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int acc);
static const uk_fn k_uk[UK_TOKS + 1] = {NULL, uk1, uk2, uk3, uk4, uk5, uk6};

/* Forward: each group of 16 tile rows is transposed into a k-major panel (16 lanes per column), so
 * that the outputs of 16 rows come out of one register tile; the transpose (one load and store per
 * weight) is paid once per call and group, the FMAs n times. */
static void dot_tile_avx2(const float *tile, int64_t nr, int64_t nc, const float *x, int64_t ldx, int64_t n, float *y,
                          int64_t ldy, int accumulate) {
    _Alignas(32) float panel[16 * 256];
    _Alignas(32) float tmp[UK_TOKS * 16];
    for (int64_t c0 = 0; c0 < nc; c0 += 256) { /* the driver's tiles are at most 256 wide */
        const int64_t kc = nc - c0 < 256 ? nc - c0 : 256;
        for (int64_t r0 = 0; r0 < nr; r0 += 16) {
            const int64_t rr = nr - r0 < 16 ? nr - r0 : 16;
            for (int64_t j = 0; j < 16; j++)
                for (int64_t k = 0; k < kc; k++) panel[k * 16 + j] = j < rr ? tile[(r0 + j) * nc + c0 + k] : 0.0f;
            for (int64_t t0 = 0; t0 < n; t0 += UK_TOKS) {
                const int nt = (int)(n - t0 < UK_TOKS ? n - t0 : UK_TOKS);
                const int acc = accumulate || c0 > 0;
                if (rr == 16) {
                    k_uk[nt](kc, x + t0 * ldx + c0, ldx, panel, 16, y + t0 * ldy + r0, ldy, acc);
                } else { /* fewer than 16 rows left: through a scratch tile */
                    for (int t = 0; t < nt; t++)
                        for (int64_t j = 0; j < 16; j++) tmp[t * 16 + j] = acc && j < rr ? y[(t0 + t) * ldy + r0 + j] : 0.0f;
                    k_uk[nt](kc, x + t0 * ldx + c0, ldx, panel, 16, tmp, 16, 1);
                    for (int t = 0; t < nt; t++)
                        for (int64_t j = 0; j < rr; j++) y[(t0 + t) * ldy + r0 + j] = tmp[t * 16 + j];
                }
            }
        }
    }
}

/* Backward: the tile is already row-major over the columns of dx; each 16-column strip is first
 * packed contiguously (k-major, 64 bytes per k, instead of one 64-byte piece per tile row) so the
 * register tile streams it from L1 for every block of 6 tokens. */
static void axpy_tile_uk(const float *tile, int64_t nr, int64_t nc, const float *g, int64_t ldg, int64_t n, float *dx,
                         int64_t lddx, int accumulate) {
    _Alignas(32) float strip[16 * 512];
    for (int64_t k0 = 0; k0 < nr; k0 += 512) {
        const int64_t kk = nr - k0 < 512 ? nr - k0 : 512;
        for (int64_t c = 0; c < nc; c += 16) { /* nc is a multiple of 64 */
            for (int64_t k = 0; k < kk; k++) {
                _mm256_store_ps(strip + 16 * k, _mm256_loadu_ps(tile + (k0 + k) * nc + c));
                _mm256_store_ps(strip + 16 * k + 8, _mm256_loadu_ps(tile + (k0 + k) * nc + c + 8));
            }
            for (int64_t t0 = 0; t0 < n; t0 += UK_TOKS) {
                const int nt = (int)(n - t0 < UK_TOKS ? n - t0 : UK_TOKS);
                k_uk[nt](kk, g + t0 * ldg + k0, ldg, strip, 16, dx + t0 * lddx + c, lddx, accumulate || k0 > 0);
            }
        }
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

static void matvec_t_avx2(const pf_nf4_tensor *t, int64_t b0, int64_t b1, const float *g, float *dx) {
    const float *lv = pf_nf4_levels();
    const __m256 lo_tab = _mm256_loadu_ps(lv), hi_tab = _mm256_loadu_ps(lv + 8);
    const __m128i m4 = _mm_set1_epi8(15);
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    memset(dx + b0 * PF_NF4_BLOCK, 0, (size_t)((b1 - b0) * PF_NF4_BLOCK) * sizeof(float));
    for (int64_t r = 0; r < t->n_out; r++) {
        if (g[r] == 0.0f) continue; /* adds nothing (no NaN/Inf weights exist to propagate) */
        for (int64_t b = b0; b < b1; b++) {
            const __m256 a = _mm256_set1_ps(g[r] * pf_nf4_block_absmax(t, r * bpr + b));
            const uint8_t *q = t->codes + (r * bpr + b) * (PF_NF4_BLOCK / 2);
            float *d = dx + b * PF_NF4_BLOCK;
            for (int h = 0; h < 2; h++) {
                const __m128i by = _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * h));
                const __m128i hi = _mm_and_si128(_mm_srli_epi16(by, 4), m4), lo = _mm_and_si128(by, m4);
                const __m128i e[2] = {_mm_unpacklo_epi8(hi, lo), _mm_unpackhi_epi8(hi, lo)};
                for (int u = 0; u < 2; u++) {
                    float *o = d + 32 * h + 16 * u;
                    const __m256 w0 = lookup8(_mm256_cvtepu8_epi32(e[u]), lo_tab, hi_tab);
                    const __m256 w1 = lookup8(_mm256_cvtepu8_epi32(_mm_srli_si128(e[u], 8)), lo_tab, hi_tab);
                    _mm256_storeu_ps(o, _mm256_fmadd_ps(a, w0, _mm256_loadu_ps(o)));
                    _mm256_storeu_ps(o + 8, _mm256_fmadd_ps(a, w1, _mm256_loadu_ps(o + 8)));
                }
            }
        }
    }
}

const pf_nf4_kernels pf_nf4_kernels_avx2 = {dequant_tile_avx2, dot_tile_avx2, axpy_tile_uk, matvec_avx2, matvec_t_avx2};
