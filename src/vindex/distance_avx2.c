/* AVX2/FMA/F16C distance kernels of the vector index (compiled with -mavx2 -mfma -mf16c, only
 * called after pf_cpu_has_avx2()). Four independent 8-wide accumulators hide the FMA latency;
 * the tail (dim not a multiple of 8 or 32) is scalar. int8 products are exact (maddubs on
 * |a| and sign(b, a), then madd into int32), so the I8 kernels equal the scalar ones. */
#include <immintrin.h>
#include <string.h>

#include "vindex/vindex_internal.h"

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float ldf(const void *p) { float f; memcpy(&f, p, 4); return f; }

static float f32_dot(const float *q, const float *v, size_t dim) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(v + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), _mm256_loadu_ps(v + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), _mm256_loadu_ps(v + i + 24), a3);
    }
    for (; i + 8 <= dim; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(v + i), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < dim; i++) s += q[i] * v[i];
    return s;
}

float pf_avx2_vdist_f32_ip(const void *q, const void *v, size_t dim) { return 1.0f - f32_dot(q, v, dim); }

float pf_avx2_vdist_f32_l2(const void *vq, const void *vv, size_t dim) {
    const float *q = vq, *v = vv;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
#define D8(o) _mm256_sub_ps(_mm256_loadu_ps(q + i + (o)), _mm256_loadu_ps(v + i + (o)))
    for (; i + 32 <= dim; i += 32) {
        __m256 d0 = D8(0), d1 = D8(8), d2 = D8(16), d3 = D8(24);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= dim; i += 8) { __m256 d0 = D8(0); a0 = _mm256_fmadd_ps(d0, d0, a0); }
#undef D8
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < dim; i++) { float d = q[i] - v[i]; s += d * d; }
    return s;
}

#define H8(o) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i + (o))))

float pf_avx2_vdist_f16_ip(const void *vq, const void *vv, size_t dim) {
    const float *q = vq;
    const uint16_t *v = vv;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), H8(0), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), H8(8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), H8(16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), H8(24), a3);
    }
    for (; i + 8 <= dim; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), H8(0), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < dim; i++) s += q[i] * pf_fp16_to_fp32(v[i]);
    return 1.0f - s;
}

float pf_avx2_vdist_f16_l2(const void *vq, const void *vv, size_t dim) {
    const float *q = vq;
    const uint16_t *v = vv;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
#define D8(o) _mm256_sub_ps(_mm256_loadu_ps(q + i + (o)), H8(o))
    for (; i + 32 <= dim; i += 32) {
        __m256 d0 = D8(0), d1 = D8(8), d2 = D8(16), d3 = D8(24);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= dim; i += 8) { __m256 d0 = D8(0); a0 = _mm256_fmadd_ps(d0, d0, a0); }
#undef D8
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < dim; i++) { float d = q[i] - pf_fp16_to_fp32(v[i]); s += d * d; }
    return s;
}
#undef H8

static int32_t i8_dot(const int8_t *a, const int8_t *b, size_t dim) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
    size_t i = 0;
    /* |a| * sign(b, a): u8 x s8 pairs sum to at most 2 * 127 * 127, inside int16. */
#define STEP(acc, o)                                                                          \
    do {                                                                                      \
        __m256i x = _mm256_loadu_si256((const __m256i *)(a + i + (o)));                        \
        __m256i y = _mm256_loadu_si256((const __m256i *)(b + i + (o)));                        \
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));      \
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));                              \
    } while (0)
    for (; i + 64 <= dim; i += 64) { STEP(acc0, 0); STEP(acc1, 32); }
    for (; i + 32 <= dim; i += 32) STEP(acc0, 0);
#undef STEP
    int32_t s = hsum8i(_mm256_add_epi32(acc0, acc1));
    for (; i < dim; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

float pf_avx2_vdist_i8_ip(const void *vq, const void *vv, size_t dim) {
    const int8_t *q = vq, *v = vv;
    size_t o = pf_i8_pad(dim);
    return 1.0f - ldf(q + o) * ldf(v + o) * (float)i8_dot(q, v, dim);
}

float pf_avx2_vdist_i8_l2(const void *vq, const void *vv, size_t dim) {
    const int8_t *q = vq, *v = vv;
    size_t o = pf_i8_pad(dim);
    float d = ldf(q + o + 4) + ldf(v + o + 4) - 2.0f * ldf(q + o) * ldf(v + o) * (float)i8_dot(q, v, dim);
    return d > 0.0f ? d : 0.0f;
}

/* Exact (F16C widening is exact), so it matches the scalar decode bit for bit. */
void pf_avx2_f16_decode(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = pf_fp16_to_fp32(src[i]);
}
