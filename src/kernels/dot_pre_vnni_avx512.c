/* AVX-512 VNNI versions of the prepared-activation dot kernels (dot_pre_avx2.c), on 256-bit
 * vectors: vpdpbusd (u8 × s8, four products summed into each int32 lane) replaces the
 * maddubs + madd pair of the AVX2 kernels. That pair is half of the vector work per block, and
 * on 2 cores the Q4_0 / Q8_0 matvec is compute-bound, not memory-bound, whenever the memory
 * system delivers more than ~30 GB/s. Compiled with -mavx512f -mavx512vl -mavx512bw
 * -mavx512vnni on top of the AVX2 flags; only called when pf_cpu_has_avx512vnni().
 *
 * Same `pre` data as the AVX2 kernels (pf_avx2_prep_q8_0): pre[b] = d_b, pre[nb + b] =
 * d_b * sum(q_b). Unsigned operands avoid sign juggling:
 *   Q4_0: u = nibble in [0, 15]     x = u - 8     → Σ dx·dy·Σ(u·y) − 8 · Σ dx·(dy·Σy)
 *   Q8_0: u = x ^ 0x80 = x + 128    (x in [-127, 127], u in [1, 255])
 *                                                 → Σ dx·dy·Σ(u·y) − 128 · Σ dx·(dy·Σy)
 * Results equal the AVX2 kernels up to float rounding (integer block sums are exact). */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

/* int32 lanes of Σ u·y over one 32-byte block pair of operands. */
static inline __m256i dot_u8i8(__m256i u, __m256i y) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y); }

/* The 8-block main loop shared by both kernels: UNPACK(k) yields block i+k's unsigned bytes. */
#define VNNI_LOOP(BLK, UNPACK)                                                                        \
    for (; i + 8 <= nb; i += 8) {                                                                     \
        pf_prefetch_ahead(PF_BLK(BLK, vx, i), 8 * sizeof(BLK));                                       \
        const __m256 dx = pf_halves8(PF_BLK(BLK, vx, i), sizeof(BLK));                                \
        _mm256_store_ps(sc, _mm256_mul_ps(dx, _mm256_loadu_ps(dy + i)));                              \
        corr = _mm256_fmadd_ps(dx, _mm256_loadu_ps(ys + i), corr);                                    \
        __m256i p0 = P(0), p1 = P(1), p2 = P(2), p3 = P(3);                                           \
        ACC(a0, 0); ACC(a1, 1); ACC(a2, 2); ACC(a3, 3);                                               \
        __m256i p4 = P(4), p5 = P(5), p6 = P(6), p7 = P(7);                                           \
        ACC(a0, 4); ACC(a1, 5); ACC(a2, 6); ACC(a3, 7);                                               \
    }
#define ACC(a, k) a = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + (k)), _mm256_cvtepi32_ps(p##k), a)
#define YQ(k) pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vy, i + (k)), qs))

void pf_vnni_dot_q4_0_pre(int64_t n, float *s, const void *vx, const void *vy, const float *pre) {
    const int64_t nb = n / QK4_0;
    const float *dy = pre, *ys = pre + nb;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, corr = a0;
    _Alignas(32) float sc[8];
    int64_t i = 0;
#define P(k) dot_u8i8(pf_unpack_nibbles_32(PF_FLD(block_q4_0, PF_BLK(block_q4_0, vx, i + (k)), qs)), YQ(k))
    VNNI_LOOP(block_q4_0, P)
    float ctail = 0.0f;
    for (; i < nb; i++) {
        const float dxi = pf_ldh(PF_FLD(block_q4_0, PF_BLK(block_q4_0, vx, i), d));
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(dxi * dy[i]), _mm256_cvtepi32_ps(P(0)), a0);
        ctail += dxi * ys[i];
    }
#undef P
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    *s = pf_hsum_ps(a) - 8.0f * (pf_hsum_ps(corr) + ctail);
}

void pf_vnni_dot_q8_0_pre(int64_t n, float *s, const void *vx, const void *vy, const float *pre) {
    const int64_t nb = n / QK8_0;
    const float *dy = pre, *ys = pre + nb;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, corr = a0;
    _Alignas(32) float sc[8];
    int64_t i = 0;
#define P(k) dot_u8i8(_mm256_xor_si256(pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vx, i + (k)), qs)), bias), YQ(k))
    VNNI_LOOP(block_q8_0, P)
    float ctail = 0.0f;
    for (; i < nb; i++) {
        const float dxi = pf_ldh(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vx, i), d));
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(dxi * dy[i]), _mm256_cvtepi32_ps(P(0)), a0);
        ctail += dxi * ys[i];
    }
#undef P
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    *s = pf_hsum_ps(a) - 128.0f * (pf_hsum_ps(corr) + ctail);
}
