/* AVX2 activation quantizers (Q8_0, Q8_1, Q8_K) and dequantizers. Each performs exactly the
 * float operations of the scalar reference in the same order (no FMA contraction: this file is
 * compiled in ISO C mode, where GCC does not fuse), so the output is byte-identical. */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

/* roundf(): round half away from zero. trunc(v) is exact, so is v - trunc(v); add sign(v)
 * where that fraction is >= 0.5 in magnitude. */
static inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
}

/* 32 int32 (four vectors, in element order) -> 32 int8 with signed saturation, in order. */
static inline __m256i pack_i32x32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i p = _mm256_packs_epi16(ab, cd); /* lanes interleaved: a0 b0 c0 d0 | a1 b1 c1 d1 */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* |x| with NaN replaced by 0 (the reference's fmaxf / '>' scans skip NaNs). */
static inline __m256 abs_nonan(__m256 x) {
    return _mm256_and_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_cmp_ps(x, x, _CMP_ORD_Q));
}

/* Largest |x| of 32 floats, NaNs ignored. */
static inline float amax32(const float *x) {
    __m256 m = _mm256_max_ps(abs_nonan(_mm256_loadu_ps(x)), abs_nonan(_mm256_loadu_ps(x + 8)));
    m = _mm256_max_ps(m, abs_nonan(_mm256_loadu_ps(x + 16)));
    m = _mm256_max_ps(m, abs_nonan(_mm256_loadu_ps(x + 24)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* v with NaN lanes set to 0, clamped to [lo, hi]. */
static inline __m256 clamp_nonan(__m256 v, float lo, float hi) {
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
}

/* float -> fp16 bits, saturated to +-65504 first, then rounded to nearest even (F16C). */
static inline pf_half half_sat(float v) {
    v = v > 65504.0f ? 65504.0f : v < -65504.0f ? -65504.0f : v;
    return (pf_half)_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT);
}

/* One 32-element block the Q8_0 way: d = amax / 127, q = roundf(clamp(x * (1 / d), +-127))
 * (NaN -> 0). Writes the 32 bytes at qs, returns d and (through sum) the sum of the quants. */
static inline float q8_block(const float *x, int8_t *qs, int32_t *sum) {
    const float amax = amax32(x);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
        __m256 v = clamp_nonan(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid), -127.0f, 127.0f);
        q[k] = _mm256_cvttps_epi32(round_half_away(v));
    }
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
    if (sum) *sum = pf_hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    return d;
}

/* f32 -> Q8_0 (activations of Q4_0 / Q5_0 / Q8_0 / IQ4_NL). */
void pf_avx2_quant_q8_0(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++) {
        block_q8_0 blk;
        blk.d = half_sat(q8_block(src + i * QK8_0, blk.qs, NULL));
        memcpy((uint8_t *)dst + i * sizeof blk, &blk, sizeof blk);
    }
}

/* f32 -> Q8_1: Q8_0 plus s = d * sum(q) (with the unrounded d). */
void pf_avx2_quant_q8_1(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK8_1; i++) {
        block_q8_1 blk;
        int32_t sum;
        float d = q8_block(src + i * QK8_1, blk.qs, &sum);
        blk.d = half_sat(d);
        blk.s = half_sat((float)sum * d);
        memcpy((uint8_t *)dst + i * sizeof blk, &blk, sizeof blk);
    }
}

/* f32 -> Q8_K: max = the signed value of the first element of largest magnitude,
 * iscale = -127 / max, q = clamp(nearest-even(iscale * x), -128, 127) (NaN -> 0),
 * d = 1 / iscale, bsums = per-16 sums of q. A block whose largest |x| is 0 or infinite is
 * stored as all zeros. */
void pf_avx2_quant_q8_k(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        block_q8_K blk;
        memset(&blk, 0, sizeof blk);
        float amax = 0.0f;
        for (int k = 0; k < QK_K; k += 32) {
            float m = amax32(x + k);
            amax = m > amax ? m : amax;
        }
        if (amax != 0.0f && amax <= 3.4028235e38f) {
            int first = 0;
            const __m256 va = _mm256_set1_ps(amax);
            for (int k = 0; k < QK_K; k += 8) {
                __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(x + k));
                int mask = _mm256_movemask_ps(_mm256_cmp_ps(ax, va, _CMP_EQ_OQ));
                if (mask) {
                    first = k + __builtin_ctz((unsigned)mask);
                    break;
                }
            }
            const float iscale = -127.0f / x[first];
            const __m256 vs = _mm256_set1_ps(iscale);
            for (int k = 0; k < QK_K; k += 32) {
                __m256i q[4];
                for (int j = 0; j < 4; j++) {
                    __m256 v = clamp_nonan(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), vs), -128.0f, 127.0f);
                    q[j] = _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                }
                _mm256_storeu_si256((__m256i *)(blk.qs + k), pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
                blk.bsums[k / 16] = (int16_t)pf_hsum_epi32(_mm256_add_epi32(q[0], q[1]));
                blk.bsums[k / 16 + 1] = (int16_t)pf_hsum_epi32(_mm256_add_epi32(q[2], q[3]));
            }
            blk.d = 1.0f / iscale;
        }
        memcpy((uint8_t *)dst + i * sizeof blk, &blk, sizeof blk);
    }
}

/* f16 -> f32 (vcvtph2ps), any n. */
void pf_avx2_dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 2 * i))));
    for (; i < n; i++) dst[i] = pf_ldh(x + 2 * i);
}

/* bf16 -> f32 (shift into the high half), any n. */
void pf_avx2_dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + 2 * i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(v, 16));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(dst + i, &u, 4);
    }
}

/* 32 int8 (as a vector) times d -> 32 floats at y. */
static inline void store_i8x32_scaled(__m256i q, __m256 d, float *y) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
}

/* Q4_0 -> f32: (nibble - 8) * d. */
void pf_avx2_dequant_q4_0(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const uint8_t *b = PF_BLK(block_q4_0, src, i);
        __m256i q = _mm256_sub_epi8(pf_unpack_nibbles_32(PF_FLD(block_q4_0, b, qs)), _mm256_set1_epi8(8));
        store_i8x32_scaled(q, _mm256_set1_ps(pf_ldh(PF_FLD(block_q4_0, b, d))), dst + i * QK4_0);
    }
}

/* Q8_0 -> f32: q * d. */
void pf_avx2_dequant_q8_0(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const uint8_t *b = PF_BLK(block_q8_0, src, i);
        store_i8x32_scaled(pf_ld256(PF_FLD(block_q8_0, b, qs)), _mm256_set1_ps(pf_ldh(PF_FLD(block_q8_0, b, d))),
                           dst + i * QK8_0);
    }
}

/* 32 unsigned bytes -> (d1 * q - m1) floats at y (the Q4_K order of operations). */
static inline void store_u8x32_affine(__m256i q, float d1, float m1, float *y) {
    const __m256 vd = _mm256_set1_ps(d1), vm = _mm256_set1_ps(m1);
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
        _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(vd, f), vm));
    }
}

/* Q4_K -> f32: for sub-block j, d * sc[j] * q - dmin * mn[j]. */
void pf_avx2_dequant_q4_k(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *bx = PF_BLK(block_q4_K, src, i);
        const float d = pf_ldh(PF_FLD(block_q4_K, bx, d)), dmin = pf_ldh(PF_FLD(block_q4_K, bx, dmin));
        const uint8_t *s = PF_FLD(block_q4_K, bx, scales);
        float *y = dst + i * QK_K;
        for (int j = 0; j < 4; j++) {
            int a = 2 * j, b = 2 * j + 1;
            /* 6-bit scale and min of sub-blocks a and b (see the Q4_K layout) */
            uint8_t sca = a < 4 ? s[a] & 63 : (uint8_t)((s[a + 4] & 0xF) | ((s[a - 4] >> 6) << 4));
            uint8_t mna = a < 4 ? s[a + 4] & 63 : (uint8_t)((s[a + 4] >> 4) | ((s[a] >> 6) << 4));
            uint8_t scb = b < 4 ? s[b] & 63 : (uint8_t)((s[b + 4] & 0xF) | ((s[b - 4] >> 6) << 4));
            uint8_t mnb = b < 4 ? s[b + 4] & 63 : (uint8_t)((s[b + 4] >> 4) | ((s[b] >> 6) << 4));
            __m256i q = pf_ld256(PF_FLD(block_q4_K, bx, qs) + 32 * j);
            store_u8x32_affine(_mm256_and_si256(q, _mm256_set1_epi8(0x0F)), d * sca, dmin * mna, y + 64 * j);
            store_u8x32_affine(_mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0F)), d * scb, dmin * mnb,
                               y + 64 * j + 32);
        }
    }
}

/* 32 signed values (q - 32 as int8) times (d * sc[g]) for the two 16-groups g0, g1. */
static inline void store_q6(__m256i q, float d0, float d1, float *y) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m256 v0 = _mm256_set1_ps(d0), v1 = _mm256_set1_ps(d1);
    _mm256_storeu_ps(y, _mm256_mul_ps(v0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(v0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(v1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(v1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

/* Q6_K -> f32: (d * scale[g]) * (q - 32). */
void pf_avx2_dequant_q6_k(const void *src, float *dst, int64_t n) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *bx = PF_BLK(block_q6_K, src, i);
        const float d = pf_ldh(PF_FLD(block_q6_K, bx, d));
        float *y = dst + i * QK_K;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = PF_FLD(block_q6_K, bx, ql) + 64 * h;
            const int8_t *sc = (const int8_t *)PF_FLD(block_q6_K, bx, scales) + 8 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hq = pf_ld256(PF_FLD(block_q6_K, bx, qh) + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hq, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hq, 2), m30));
            for (int k = 0; k < 4; k++)
                store_q6(_mm256_sub_epi8(q[k], off), d * (float)sc[2 * k], d * (float)sc[2 * k + 1],
                         y + 128 * h + 32 * k);
        }
    }
}
