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

/* The block loop shared by the 32-element formats: BODY(acc, bx, by) handles the blocks at bx
 * (weight type TX) and by (activation type TY); two blocks per step go to two accumulators to
 * hide the FMA latency. Leaves the float total in `total`. */
#define BLOCK_LOOP(TX, TY, total, BODY)                                                   \
    do {                                                                                  \
        const int64_t nb_ = n / 32;                                                       \
        __m256 acc0_ = _mm256_setzero_ps(), acc1_ = _mm256_setzero_ps();                  \
        int64_t i_ = 0;                                                                   \
        for (; i_ + 2 <= nb_; i_ += 2) {                                                  \
            BODY(acc0_, PF_BLK(TX, vx, i_), PF_BLK(TY, vy, i_));                          \
            BODY(acc1_, PF_BLK(TX, vx, i_ + 1), PF_BLK(TY, vy, i_ + 1));                  \
        }                                                                                 \
        if (i_ < nb_) BODY(acc0_, PF_BLK(TX, vx, i_), PF_BLK(TY, vy, i_));                \
        total = pf_hsum_ps(_mm256_add_ps(acc0_, acc1_));                                  \
    } while (0)

/* acc += (d_x * d_y) * float(isum), isum the 8 int32 partial sums of one block pair. */
#define ACC_SCALED(acc, dx, dy, isum) \
    acc = _mm256_fmadd_ps(_mm256_set1_ps((dx) * (dy)), _mm256_cvtepi32_ps(isum), acc)

/* Q4_0 · Q8_0: per block, (nibble - 8) * q8 summed in int32, scaled by d_x * d_y. */
void pf_avx2_vec_dot_q4_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const __m256i off = _mm256_set1_epi8(8);
#define BODY(acc, bx, by)                                                                          \
    do {                                                                                           \
        __m256i q = _mm256_sub_epi8(pf_unpack_nibbles_32(PF_FLD(block_q4_0, bx, qs)), off);        \
        __m256i p = pf_dot_i8i8(q, pf_ld256(PF_FLD(block_q8_0, by, qs)));                          \
        ACC_SCALED(acc, pf_ldh(PF_FLD(block_q4_0, bx, d)), pf_ldh(PF_FLD(block_q8_0, by, d)), p);  \
    } while (0)
    BLOCK_LOOP(block_q4_0, block_q8_0, *s, BODY);
#undef BODY
}

/* Q4_1 · Q8_1: sum((d_x q + m_x) * d_y y) = d_x d_y sum(q y) + m_x * s_y, s_y = d_y * sum(y). */
void pf_avx2_vec_dot_q4_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    float summs = 0.0f, dots;
#define BODY(acc, bx, by)                                                                          \
    do {                                                                                           \
        __m256i q = pf_unpack_nibbles_32(PF_FLD(block_q4_1, bx, qs));                              \
        __m256i p = pf_dot_u8i8(q, pf_ld256(PF_FLD(block_q8_1, by, qs)));                          \
        ACC_SCALED(acc, pf_ldh(PF_FLD(block_q4_1, bx, d)), pf_ldh(PF_FLD(block_q8_1, by, d)), p);  \
        summs += pf_ldh(PF_FLD(block_q4_1, bx, m)) * pf_ldh(PF_FLD(block_q8_1, by, s));            \
    } while (0)
    BLOCK_LOOP(block_q4_1, block_q8_1, dots, BODY);
#undef BODY
    *s = dots + summs;
}

/* Q5_0 · Q8_0: q = (nibble | bit4 << 4) - 16, i.e. the nibble with 0xF0 (= -16 as int8) OR-ed
 * in where the fifth bit is clear. */
void pf_avx2_vec_dot_q5_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const __m256i f0 = _mm256_set1_epi8((char)0xF0);
#define BODY(acc, bx, by)                                                                          \
    do {                                                                                           \
        __m256i hi = _mm256_andnot_si256(pf_bits_to_bytes_32(PF_FLD(block_q5_0, bx, qh)), f0);     \
        __m256i q = _mm256_or_si256(pf_unpack_nibbles_32(PF_FLD(block_q5_0, bx, qs)), hi);         \
        __m256i p = pf_dot_i8i8(q, pf_ld256(PF_FLD(block_q8_0, by, qs)));                          \
        ACC_SCALED(acc, pf_ldh(PF_FLD(block_q5_0, bx, d)), pf_ldh(PF_FLD(block_q8_0, by, d)), p);  \
    } while (0)
    BLOCK_LOOP(block_q5_0, block_q8_0, *s, BODY);
#undef BODY
}

/* Q5_1 · Q8_1: unsigned q = nibble | bit4 << 4 in [0, 31]; the min term as in Q4_1. */
void pf_avx2_vec_dot_q5_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    const __m256i b4 = _mm256_set1_epi8(0x10);
    float summs = 0.0f, dots;
#define BODY(acc, bx, by)                                                                          \
    do {                                                                                           \
        __m256i hi = _mm256_and_si256(pf_bits_to_bytes_32(PF_FLD(block_q5_1, bx, qh)), b4);        \
        __m256i q = _mm256_or_si256(pf_unpack_nibbles_32(PF_FLD(block_q5_1, bx, qs)), hi);         \
        __m256i p = pf_dot_u8i8(q, pf_ld256(PF_FLD(block_q8_1, by, qs)));                          \
        ACC_SCALED(acc, pf_ldh(PF_FLD(block_q5_1, bx, d)), pf_ldh(PF_FLD(block_q8_1, by, d)), p);  \
        summs += pf_ldh(PF_FLD(block_q5_1, bx, m)) * pf_ldh(PF_FLD(block_q8_1, by, s));            \
    } while (0)
    BLOCK_LOOP(block_q5_1, block_q8_1, dots, BODY);
#undef BODY
    *s = dots + summs;
}

/* Q8_0 · Q8_0: signed bytes times signed bytes per block. */
void pf_avx2_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
#define BODY(acc, bx, by)                                                                           \
    do {                                                                                            \
        __m256i p = pf_dot_i8i8(pf_ld256(PF_FLD(block_q8_0, bx, qs)), pf_ld256(PF_FLD(block_q8_0, by, qs))); \
        ACC_SCALED(acc, pf_ldh(PF_FLD(block_q8_0, bx, d)), pf_ldh(PF_FLD(block_q8_0, by, d)), p);   \
    } while (0)
    BLOCK_LOOP(block_q8_0, block_q8_0, *s, BODY);
#undef BODY
}

/* IQ4_NL · Q8_0: each nibble indexes the 16-entry int8 codebook through one pshufb. */
void pf_avx2_vec_dot_iq4_nl_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const __m128i book128 = _mm_loadu_si128((const __m128i *)pf_iq4nl_values);
    const __m256i book = _mm256_set_m128i(book128, book128);
#define BODY(acc, bx, by)                                                                            \
    do {                                                                                             \
        __m256i q = _mm256_shuffle_epi8(book, pf_unpack_nibbles_32(PF_FLD(block_iq4_nl, bx, qs)));   \
        __m256i p = pf_dot_i8i8(q, pf_ld256(PF_FLD(block_q8_0, by, qs)));                            \
        ACC_SCALED(acc, pf_ldh(PF_FLD(block_iq4_nl, bx, d)), pf_ldh(PF_FLD(block_q8_0, by, d)), p);  \
    } while (0)
    BLOCK_LOOP(block_iq4_nl, block_q8_0, *s, BODY);
#undef BODY
}
