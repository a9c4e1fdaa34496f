/* AVX2/FMA/F16C dot products of the float formats and the 32-element block formats against
 * their vec_dot partner (f32, Q8_0 or Q8_1). Each computes *s = sum_i x[i] * y[i] over n
 * elements (n a multiple of the block size): integer products are summed exactly per block
 * (maddubs + madd), then scaled by d_x * d_y and accumulated in float, so results differ from
 * the scalar reference only by float summation order. */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

/* f32 · f32: four 8-wide FMA accumulators, then 8-wide steps, then a scalar tail. */
void pf_avx2_vec_dot_f32_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        pf_prefetch_ahead(x + i, 128);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = pf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += pf_ldf((const uint8_t *)vx + 4 * i) * pf_ldf((const uint8_t *)vy + 4 * i);
    *s = sum;
}

/* f16 · f32: 8 halves widened with vcvtph2ps per step. */
void pf_avx2_vec_dot_f16_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const pf_half *x = vx;
    const float *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
#define H8(off) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + (off))))
    for (; i + 32 <= n; i += 32) {
        pf_prefetch_ahead(x + i, 64);
        a0 = _mm256_fmadd_ps(H8(0), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(H8(8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(H8(16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(H8(24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(H8(0), _mm256_loadu_ps(y + i), a0);
#undef H8
    float sum = pf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += pf_ldh((const uint8_t *)vx + 2 * i) * pf_ldf((const uint8_t *)vy + 4 * i);
    *s = sum;
}

/* bf16 -> f32 for 8 values: zero-extend to 32 bits and shift into the high half. */
static inline __m256 bf16x8(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* bf16 · f32. */
void pf_avx2_vec_dot_bf16_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        pf_prefetch_ahead(x + i, 64);
        a0 = _mm256_fmadd_ps(bf16x8(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(bf16x8(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(bf16x8(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(bf16x8(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(bf16x8(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = pf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)vx + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        sum += f * pf_ldf((const uint8_t *)vy + 4 * i);
    }
    *s = sum;
}

/* The block loop shared by the 32-element formats. Blocks go in groups of 8: the 8 weight
 * scales and 8 activation scales are converted with one vcvtph2ps each (pf_halves8), their
 * products stored to `sc` and broadcast back per block from memory; four accumulators keep
 * four FMA chains in flight; the weight row is prefetched ahead (pf_prefetch_ahead). A tail
 * of < 8 blocks takes the scales one by one.
 *   P(bx, by)   -> __m256i: the 8 int32 partial sums of block bx (type TX) times by (TY)
 *   MIN8(i)     -> per group extra work (the min term of Q4_1 / Q5_1), may be empty
 *   MIN1(bx,by) -> the same for one tail block
 * Leaves the float total of the scaled integer sums in `total`. */
#define BLOCK_LOOP(TX, TY, total, P, MIN8, MIN1)                                                       \
    do {                                                                                               \
        const int64_t nb_ = n / 32;                                                                    \
        __m256 a0_ = _mm256_setzero_ps(), a1_ = a0_, a2_ = a0_, a3_ = a0_;                             \
        _Alignas(32) float sc_[8];                                                                     \
        int64_t i_ = 0;                                                                                \
        for (; i_ + 8 <= nb_; i_ += 8) {                                                               \
            const uint8_t *x0_ = PF_BLK(TX, vx, i_), *y0_ = PF_BLK(TY, vy, i_);                        \
            pf_prefetch_ahead(x0_, 8 * sizeof(TX));                                                    \
            _mm256_store_ps(sc_, _mm256_mul_ps(pf_halves8(PF_FLD(TX, x0_, d), sizeof(TX)),             \
                                               pf_halves8(PF_FLD(TY, y0_, d), sizeof(TY))));           \
            MIN8(i_);                                                                                  \
            for (int u_ = 0; u_ < 8; u_ += 4) {                                                        \
                __m256i p0_ = P(PF_BLK(TX, vx, i_ + u_), PF_BLK(TY, vy, i_ + u_));                     \
                __m256i p1_ = P(PF_BLK(TX, vx, i_ + u_ + 1), PF_BLK(TY, vy, i_ + u_ + 1));             \
                __m256i p2_ = P(PF_BLK(TX, vx, i_ + u_ + 2), PF_BLK(TY, vy, i_ + u_ + 2));             \
                __m256i p3_ = P(PF_BLK(TX, vx, i_ + u_ + 3), PF_BLK(TY, vy, i_ + u_ + 3));             \
                a0_ = _mm256_fmadd_ps(_mm256_broadcast_ss(sc_ + u_), _mm256_cvtepi32_ps(p0_), a0_);     \
                a1_ = _mm256_fmadd_ps(_mm256_broadcast_ss(sc_ + u_ + 1), _mm256_cvtepi32_ps(p1_), a1_); \
                a2_ = _mm256_fmadd_ps(_mm256_broadcast_ss(sc_ + u_ + 2), _mm256_cvtepi32_ps(p2_), a2_); \
                a3_ = _mm256_fmadd_ps(_mm256_broadcast_ss(sc_ + u_ + 3), _mm256_cvtepi32_ps(p3_), a3_); \
            }                                                                                          \
        }                                                                                              \
        for (; i_ < nb_; i_++) {                                                                       \
            const uint8_t *bx_ = PF_BLK(TX, vx, i_), *by_ = PF_BLK(TY, vy, i_);                        \
            __m256i p_ = P(bx_, by_);                                                                  \
            float d_ = pf_ldh(PF_FLD(TX, bx_, d)) * pf_ldh(PF_FLD(TY, by_, d));                        \
            a0_ = _mm256_fmadd_ps(_mm256_set1_ps(d_), _mm256_cvtepi32_ps(p_), a0_);                    \
            MIN1(bx_, by_);                                                                            \
        }                                                                                              \
        total = pf_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0_, a1_), _mm256_add_ps(a2_, a3_)));           \
    } while (0)

#define NO_MIN8(i)
#define NO_MIN1(bx, by)

/* Q4_0 · Q8_0: per block, (nibble - 8) * q8 summed in int32, scaled by d_x * d_y. */
#define Q4_0_P(bx, by)                                                                             \
    pf_dot_i8i8(_mm256_sub_epi8(pf_unpack_nibbles_32(PF_FLD(block_q4_0, bx, qs)), _mm256_set1_epi8(8)), \
                pf_ld256(PF_FLD(block_q8_0, by, qs)))
void pf_avx2_vec_dot_q4_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_LOOP(block_q4_0, block_q8_0, *s, Q4_0_P, NO_MIN8, NO_MIN1);
}

/* Q4_1 · Q8_1: sum((d_x q + m_x) * d_y y) = d_x d_y sum(q y) + m_x * s_y, s_y = d_y * sum(y). */
#define Q4_1_P(bx, by) \
    pf_dot_u8i8(pf_unpack_nibbles_32(PF_FLD(block_q4_1, bx, qs)), pf_ld256(PF_FLD(block_q8_1, by, qs)))
/* the min term: m_x * s_y, 8 blocks at a time or one by one */
#define MIN8_1(T, i)                                                                                    \
    mins = _mm256_fmadd_ps(pf_halves8(PF_FLD(T, PF_BLK(T, vx, i), m), sizeof(T)),                       \
                           pf_halves8(PF_FLD(block_q8_1, PF_BLK(block_q8_1, vy, i), s), sizeof(block_q8_1)), mins)
#define MIN1_1(T, bx, by) mtail += pf_ldh(PF_FLD(T, bx, m)) * pf_ldh(PF_FLD(block_q8_1, by, s))
void pf_avx2_vec_dot_q4_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    __m256 mins = _mm256_setzero_ps();
    float mtail = 0.0f, dots;
#define MIN8(i) MIN8_1(block_q4_1, i)
#define MIN1(bx, by) MIN1_1(block_q4_1, bx, by)
    BLOCK_LOOP(block_q4_1, block_q8_1, dots, Q4_1_P, MIN8, MIN1);
#undef MIN8
#undef MIN1
    *s = dots + pf_hsum_ps(mins) + mtail;
}

/* Q5_0 · Q8_0: q = (nibble | bit4 << 4) - 16, i.e. the nibble with 0xF0 (= -16 as int8) OR-ed
 * in where the fifth bit is clear. */
#define Q5_0_P(bx, by)                                                                                   \
    pf_dot_i8i8(_mm256_or_si256(pf_unpack_nibbles_32(PF_FLD(block_q5_0, bx, qs)),                         \
                                _mm256_andnot_si256(pf_bits_to_bytes_32(PF_FLD(block_q5_0, bx, qh)),      \
                                                    _mm256_set1_epi8((char)0xF0))),                      \
                pf_ld256(PF_FLD(block_q8_0, by, qs)))
void pf_avx2_vec_dot_q5_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_LOOP(block_q5_0, block_q8_0, *s, Q5_0_P, NO_MIN8, NO_MIN1);
}

/* Q5_1 · Q8_1: unsigned q = nibble | bit4 << 4 in [0, 31]; the min term as in Q4_1. */
#define Q5_1_P(bx, by)                                                                                   \
    pf_dot_u8i8(_mm256_or_si256(pf_unpack_nibbles_32(PF_FLD(block_q5_1, bx, qs)),                         \
                                _mm256_and_si256(pf_bits_to_bytes_32(PF_FLD(block_q5_1, bx, qh)),         \
                                                 _mm256_set1_epi8(0x10))),                               \
                pf_ld256(PF_FLD(block_q8_1, by, qs)))
void pf_avx2_vec_dot_q5_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    __m256 mins = _mm256_setzero_ps();
    float mtail = 0.0f, dots;
#define MIN8(i) MIN8_1(block_q5_1, i)
#define MIN1(bx, by) MIN1_1(block_q5_1, bx, by)
    BLOCK_LOOP(block_q5_1, block_q8_1, dots, Q5_1_P, MIN8, MIN1);
#undef MIN8
#undef MIN1
    *s = dots + pf_hsum_ps(mins) + mtail;
}

/* Q8_0 · Q8_0: signed bytes times signed bytes per block. */
#define Q8_0_P(bx, by) pf_dot_i8i8(pf_ld256(PF_FLD(block_q8_0, bx, qs)), pf_ld256(PF_FLD(block_q8_0, by, qs)))
void pf_avx2_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_LOOP(block_q8_0, block_q8_0, *s, Q8_0_P, NO_MIN8, NO_MIN1);
}

/* IQ4_NL · Q8_0: each nibble indexes the 16-entry int8 codebook through one pshufb. */
#define IQ4_P(bx, by)                                                                                 \
    pf_dot_i8i8(_mm256_shuffle_epi8(book, pf_unpack_nibbles_32(PF_FLD(block_iq4_nl, bx, qs))),         \
                pf_ld256(PF_FLD(block_q8_0, by, qs)))
void pf_avx2_vec_dot_iq4_nl_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const __m128i book128 = _mm_loadu_si128((const __m128i *)pf_iq4nl_values);
    const __m256i book = _mm256_set_m128i(book128, book128);
    BLOCK_LOOP(block_iq4_nl, block_q8_0, *s, IQ4_P, NO_MIN8, NO_MIN1);
}
