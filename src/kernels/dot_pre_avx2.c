/* "Prepared-activation" AVX2 dot kernels used by pf_matmul for the hottest 32-block weight
 * types (Q4_0, Q8_0). One activation row is dotted with thousands of weight rows, so its
 * per-block data is converted once into `pre` (pf_avx2_prep_q8_0):
 *     pre[b]      = d_b           (the fp16 scale of Q8_0 block b, as f32)
 *     pre[nb + b] = d_b * sum(q_b) (for the offset of unsigned weight nibbles)
 * The weight scales are then converted 8 blocks at a time (one vcvtph2ps), multiplied by
 * pre[b] in one vector op and broadcast back per block from memory, which leaves ~6 vector
 * ops per block in the inner loop. The weight row is software-prefetched (see
 * pf_prefetch_ahead). Results equal the vec_dot kernels up to float rounding. */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

/* pre[] of one Q8_0 row (see above). */
void pf_avx2_prep_q8_0(int64_t n, const void *y, float *pre) {
    const int64_t nb = n / QK8_0;
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *by = PF_BLK(block_q8_0, y, b);
        __m256i s16 = _mm256_maddubs_epi16(ones8, pf_ld256(PF_FLD(block_q8_0, by, qs)));
        int32_t sum = pf_hsum_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
        float d = pf_ldh(PF_FLD(block_q8_0, by, d));
        pre[b] = d;
        pre[nb + b] = d * (float)sum;
    }
}

/* Scales of 8 consecutive blocks (the fp16 d at offset 0) and the nibble unpacker. */
#define scales8(b0, stride) pf_halves8((b0), (stride))
#define nibbles32(qs) pf_unpack_nibbles_32(qs)

/* Q4_0 · Q8_0 with pre: sum_b dx*dy * sum(u*y) - 8 * sum_b dx * (dy * sum(y)), u = nibble in
 * [0, 15] used as the unsigned maddubs operand (no sign juggling). Four accumulators keep four
 * FMA chains in flight; everything is unrolled by hand so the accumulators stay in registers. */
void pf_avx2_dot_q4_0_pre(int64_t n, float *s, const void *vx, const void *vy, const float *pre) {
    const int64_t nb = n / QK4_0;
    const float *dy = pre, *ys = pre + nb;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, corr = a0;
    _Alignas(32) float sc[8];
    int64_t i = 0;
/* block i+k: int32 partial sums of u * y */
#define Q4P(k)                                                                                                  \
    _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles32(PF_FLD(block_q4_0, PF_BLK(block_q4_0, vx, i + (k)), qs)), \
                                           pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vy, i + (k)), qs))),  \
                      ones16)
#define ACC(a, k) a = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + (k)), _mm256_cvtepi32_ps(p##k), a)
    for (; i + 8 <= nb; i += 8) {
        pf_prefetch_ahead(PF_BLK(block_q4_0, vx, i), 8 * sizeof(block_q4_0));
        const __m256 dx = scales8(PF_BLK(block_q4_0, vx, i), sizeof(block_q4_0));
        _mm256_store_ps(sc, _mm256_mul_ps(dx, _mm256_loadu_ps(dy + i)));
        corr = _mm256_fmadd_ps(dx, _mm256_loadu_ps(ys + i), corr);
        __m256i p0 = Q4P(0), p1 = Q4P(1), p2 = Q4P(2), p3 = Q4P(3);
        ACC(a0, 0); ACC(a1, 1); ACC(a2, 2); ACC(a3, 3);
        __m256i p4 = Q4P(4), p5 = Q4P(5), p6 = Q4P(6), p7 = Q4P(7);
        ACC(a0, 4); ACC(a1, 5); ACC(a2, 6); ACC(a3, 7);
    }
    float ctail = 0.0f;
    for (; i < nb; i++) {
        const float dx = pf_ldh(PF_FLD(block_q4_0, PF_BLK(block_q4_0, vx, i), d));
        __m256i p0 = Q4P(0);
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy[i]), _mm256_cvtepi32_ps(p0), a0);
        ctail += dx * ys[i];
    }
#undef Q4P
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    *s = pf_hsum_ps(a) - 8.0f * (pf_hsum_ps(corr) + ctail);
}

/* Q8_0 · Q8_0 with pre: sum_b dx*dy * sum(x*y), signed x times signed y via the sign trick;
 * only pre[b] = dy is used. */
void pf_avx2_dot_q8_0_pre(int64_t n, float *s, const void *vx, const void *vy, const float *pre) {
    const int64_t nb = n / QK8_0;
    const float *dy = pre;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    _Alignas(32) float sc[8];
    int64_t i = 0;
#define Q8P(k)                                                                   \
    pf_dot_i8i8(pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vx, i + (k)), qs)), \
                pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vy, i + (k)), qs)))
    for (; i + 8 <= nb; i += 8) {
        pf_prefetch_ahead(PF_BLK(block_q8_0, vx, i), 8 * sizeof(block_q8_0));
        _mm256_store_ps(sc, _mm256_mul_ps(scales8(PF_BLK(block_q8_0, vx, i), sizeof(block_q8_0)), _mm256_loadu_ps(dy + i)));
        __m256i p0 = Q8P(0), p1 = Q8P(1), p2 = Q8P(2), p3 = Q8P(3);
        ACC(a0, 0); ACC(a1, 1); ACC(a2, 2); ACC(a3, 3);
        __m256i p4 = Q8P(4), p5 = Q8P(5), p6 = Q8P(6), p7 = Q8P(7);
        ACC(a0, 4); ACC(a1, 5); ACC(a2, 6); ACC(a3, 7);
    }
    for (; i < nb; i++) {
        __m256i p0 = Q8P(0);
        const float dx = pf_ldh(PF_FLD(block_q8_0, PF_BLK(block_q8_0, vx, i), d));
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy[i]), _mm256_cvtepi32_ps(p0), a0);
    }
#undef Q8P
#undef ACC
    *s = pf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}
