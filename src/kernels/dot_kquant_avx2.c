/* AVX2 dot products of the K-quants (256-element super-blocks) against Q8_K activations.
 * Common scheme: unsigned quant bytes times signed Q8_K bytes with maddubs (16 int16 per 32
 * elements), times the sub-block scales with madd (int32), summed exactly per super-block;
 * offsets (the -min of Q2_K/Q4_K/Q5_K, the -4 of Q3_K, the -32 of Q6_K) are applied through
 * the Q8_K per-16 sums bsums. The super-block total is then scaled by d in float. The weight
 * row is prefetched ahead (pf_prefetch_ahead). */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

/* The 16 int16 of a 256-bit vector that repeats 8-bit scale bytes: bytes 0..7 hold sc[k],
 * bytes 8..15 hold sc[k+1] (the shuffle index idx must be {k x 8, k+1 x 8}), sign-extended. */
static inline __m256i scale_pair_i8(__m128i sc, __m128i idx) {
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, idx));
}

/* bsums[0..15] of a Q8_K block as 16 int16. */
static inline __m256i load_bsums(const uint8_t *by) { return pf_ld256(PF_FLD(block_q8_K, by, bsums)); }

/* d of a Q8_K block. */
static inline float q8k_d(const uint8_t *by) { return pf_ldf(PF_FLD(block_q8_K, by, d)); }

/* qs of a Q8_K block. */
static inline const int8_t *q8k_qs(const uint8_t *by) { return (const int8_t *)PF_FLD(block_q8_K, by, qs); }

/* Q2_K · Q8_K: value = d*(sc & 15) * q - dmin*(sc >> 4), q = 2-bit, per 16-element group. */
void pf_avx2_vec_dot_q2_k_q8_k(int64_t n, float *s, const void *vx, const void *vy) {
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = PF_BLK(block_q2_K, vx, i), *by = PF_BLK(block_q8_K, vy, i);
        pf_prefetch_ahead(bx, sizeof(block_q2_K));
        const float d = q8k_d(by) * pf_ldh(PF_FLD(block_q2_K, bx, d));
        const float dmin = q8k_d(by) * pf_ldh(PF_FLD(block_q2_K, bx, dmin));
        const __m128i raw = _mm_loadu_si128((const __m128i *)PF_FLD(block_q2_K, bx, scales));
        const __m128i sc = _mm_and_si128(raw, _mm_set1_epi8(0x0F));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
        summ += dmin * (float)pf_hsum_epi32(_mm256_madd_epi16(load_bsums(by), mn));

        __m128i idx = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m128i two = _mm_set1_epi8(2);
        __m256i sumi = _mm256_setzero_si256();
        const int8_t *q8 = q8k_qs(by);
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(PF_FLD(block_q2_K, bx, qs) + 32 * h));
            for (int j = 0; j < 4; j++) {
                __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(q, m3), _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair_i8(sc, idx)));
                idx = _mm_add_epi8(idx, two);
                q = _mm256_srli_epi16(q, 2);
                q8 += 32;
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = pf_hsum_ps(acc) - summ;
}

/* The 16 signed 6-bit scales of a Q3_K block (low 4 bits in bytes 0..7, high 2 bits in bytes
 * 8..11, minus 32) as 16 int8. */
static inline __m128i q3k_scales(const uint8_t *s) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t lo = 0x0f0f0f0fu, hi = 0x30303030u;
    __m128i v = _mm_setr_epi32((int)((a & lo) | ((c << 4) & hi)), (int)((b & lo) | ((c << 2) & hi)),
                               (int)(((a >> 4) & lo) | (c & hi)), (int)(((b >> 4) & lo) | ((c >> 2) & hi)));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* Q3_K · Q8_K: value = d*S * (u - 4) with u = 2 low bits | hmask bit << 2 in [0, 7]; the -4 is
 * folded in as -4 * S * bsum per 16-element group. */
void pf_avx2_vec_dot_q3_k_q8_k(int64_t n, float *s, const void *vx, const void *vy) {
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = PF_BLK(block_q3_K, vx, i), *by = PF_BLK(block_q8_K, vy, i);
        pf_prefetch_ahead(bx, sizeof(block_q3_K));
        const float d = q8k_d(by) * pf_ldh(PF_FLD(block_q3_K, bx, d));
        const __m128i sc = q3k_scales(PF_FLD(block_q3_K, bx, scales));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)PF_FLD(block_q3_K, bx, hmask));
        /* offset part: sum_g S_g * bsum_g, times 4 */
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(load_bsums(by), _mm256_cvtepi8_epi16(sc)), 2);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);

        __m128i idx = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m128i two = _mm_set1_epi8(2);
        __m256i bit = _mm256_set1_epi8(1);
        const int8_t *q8 = q8k_qs(by);
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(PF_FLD(block_q3_K, bx, qs) + 32 * h));
            for (int j = 0; j < 4; j++) {
                __m256i hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), four);
                __m256i u = _mm256_or_si256(_mm256_and_si256(q, m3), hb);
                __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair_i8(sc, idx)));
                idx = _mm_add_epi8(idx, two);
                bit = _mm256_add_epi8(bit, bit);
                q = _mm256_srli_epi16(q, 2);
                q8 += 32;
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = pf_hsum_ps(acc);
}

/* Unpacks the 8 six-bit scales and 8 six-bit mins of Q4_K / Q5_K (12 bytes) into two u64s of
 * 8 bytes each. */
static inline void k4_scales_mins(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t m6 = 0x3f3f3f3fu, lo = 0x0f0f0f0fu, hi = 0x30303030u;
    *sc = (uint64_t)(a & m6) | ((uint64_t)((c & lo) | ((a >> 2) & hi)) << 32);
    *mn = (uint64_t)(b & m6) | ((uint64_t)(((c >> 4) & lo) | ((b >> 2) & hi)) << 32);
}

/* -(sum over sub-blocks j of mn[j] * (bsums[2j] + bsums[2j+1])) for Q4_K / Q5_K. */
static inline int32_t k4_min_sum(uint64_t mn, const uint8_t *by) {
    const uint8_t *b = PF_FLD(block_q8_K, by, bsums);
    __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)(b + 16)));
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
    return pf_hsum_epi32_128(_mm_madd_epi16(bs, m16));
}

/* Broadcast int16 lane k of each 128-bit half of v to all 16 lanes. */
#define BCAST16(v, k) _mm256_shuffle_epi8((v), _mm256_set1_epi16((short)(((2 * (k) + 1) << 8) | (2 * (k)))))

/* Q4_K · Q8_K: value = d*sc[j] * q - dmin*mn[j], q = 4 bits, 8 sub-blocks of 32. */
void pf_avx2_vec_dot_q4_k_q8_k(int64_t n, float *s, const void *vx, const void *vy) {
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = PF_BLK(block_q4_K, vx, i), *by = PF_BLK(block_q8_K, vy, i);
        pf_prefetch_ahead(bx, sizeof(block_q4_K));
        const float d = q8k_d(by) * pf_ldh(PF_FLD(block_q4_K, bx, d));
        const float dmin = q8k_d(by) * pf_ldh(PF_FLD(block_q4_K, bx, dmin));
        uint64_t sc8, mn8;
        k4_scales_mins(PF_FLD(block_q4_K, bx, scales), &sc8, &mn8);
        summ += dmin * (float)k4_min_sum(mn8, by);
        const __m128i sc128 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8));
        const __m256i sc = _mm256_set_m128i(sc128, sc128);
        const uint8_t *q4 = PF_FLD(block_q4_K, bx, qs);
        const int8_t *q8 = q8k_qs(by);
        __m256i s0, s1;
#define Q4K_CHUNK(j, out)                                                                              \
    do {                                                                                               \
        __m256i q = _mm256_loadu_si256((const __m256i *)(q4 + 32 * (j)));                              \
        __m256i plo = _mm256_maddubs_epi16(_mm256_and_si256(q, m4),                                    \
                                           _mm256_loadu_si256((const __m256i *)(q8 + 64 * (j))));     \
        __m256i phi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),              \
                                           _mm256_loadu_si256((const __m256i *)(q8 + 64 * (j) + 32))); \
        out = _mm256_add_epi32(_mm256_madd_epi16(plo, BCAST16(sc, 2 * (j))),                          \
                               _mm256_madd_epi16(phi, BCAST16(sc, 2 * (j) + 1)));                     \
    } while (0)
        __m256i t0, t1;
        Q4K_CHUNK(0, s0);
        Q4K_CHUNK(1, s1);
        Q4K_CHUNK(2, t0);
        Q4K_CHUNK(3, t1);
#undef Q4K_CHUNK
        __m256i sumi = _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(t0, t1));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = pf_hsum_ps(acc) - summ;
}

/* Q5_K · Q8_K: as Q4_K with a fifth bit from qh (bit 2j for the low nibbles of chunk j, bit
 * 2j+1 for the high nibbles), q in [0, 31]. */
void pf_avx2_vec_dot_q5_k_q8_k(int64_t n, float *s, const void *vx, const void *vy) {
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = PF_BLK(block_q5_K, vx, i), *by = PF_BLK(block_q8_K, vy, i);
        pf_prefetch_ahead(bx, sizeof(block_q5_K));
        const float d = q8k_d(by) * pf_ldh(PF_FLD(block_q5_K, bx, d));
        const float dmin = q8k_d(by) * pf_ldh(PF_FLD(block_q5_K, bx, dmin));
        uint64_t sc8, mn8;
        k4_scales_mins(PF_FLD(block_q5_K, bx, scales), &sc8, &mn8);
        summ += dmin * (float)k4_min_sum(mn8, by);
        const __m128i sc128 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8));
        const __m256i sc = _mm256_set_m128i(sc128, sc128);
        __m256i hb = _mm256_loadu_si256((const __m256i *)PF_FLD(block_q5_K, bx, qh));
        const uint8_t *q5 = PF_FLD(block_q5_K, bx, qs);
        const int8_t *q8 = q8k_qs(by);
        __m256i sumi = _mm256_setzero_si256();
#define Q5K_CHUNK(j)                                                                                   \
    do {                                                                                               \
        __m256i q = _mm256_loadu_si256((const __m256i *)(q5 + 32 * (j)));                              \
        __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4)); \
        __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),                    \
                                     _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4));                  \
        hb = _mm256_srli_epi16(hb, 2);                                                                 \
        __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * (j))));  \
        __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * (j) + 32))); \
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(plo, BCAST16(sc, 2 * (j))),   \
                                                       _mm256_madd_epi16(phi, BCAST16(sc, 2 * (j) + 1)))); \
    } while (0)
        Q5K_CHUNK(0);
        Q5K_CHUNK(1);
        Q5K_CHUNK(2);
        Q5K_CHUNK(3);
#undef Q5K_CHUNK
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = pf_hsum_ps(acc) - summ;
}

/* Q6_K · Q8_K: value = d*scale[g] * (q - 32), q = 4 low bits from ql | 2 high bits from qh in
 * [0, 63]; the -32 is folded in as -32 * scale[g] * bsum[g]. */
void pf_avx2_vec_dot_q6_k_q8_k(int64_t n, float *s, const void *vx, const void *vy) {
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *bx = PF_BLK(block_q6_K, vx, i), *by = PF_BLK(block_q8_K, vy, i);
        pf_prefetch_ahead(bx, sizeof(block_q6_K));
        const float d = q8k_d(by) * pf_ldh(PF_FLD(block_q6_K, bx, d));
        const __m128i sc = _mm_loadu_si128((const __m128i *)PF_FLD(block_q6_K, bx, scales));
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(load_bsums(by), _mm256_cvtepi8_epi16(sc)), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        __m128i idx = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m128i two = _mm_set1_epi8(2);
        const int8_t *q8 = q8k_qs(by);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = PF_FLD(block_q6_K, bx, ql) + 64 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hq = _mm256_loadu_si256((const __m256i *)(PF_FLD(block_q6_K, bx, qh) + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hq, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hq, 2), m30));
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair_i8(sc, idx)));
                idx = _mm_add_epi8(idx, two);
                q8 += 32;
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = pf_hsum_ps(acc);
}
