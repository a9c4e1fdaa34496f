/* AVX2/FMA versions of the per-query attention rows of train_attn.c (same math, head_dim a
 * multiple of 8): dot products and the d-wide accumulations 8 lanes at a time. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "train/train_internal.h"

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float dot8(const float *a, const float *b, int64_t d) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    if (i < d) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
}

float pf_train_attn_fwd_row_avx2(const float *q, const float *kb, const float *vb, int64_t stride, const int32_t *seg,
                                 int64_t t, int64_t d, float scale, float *o) {
    float m = -INFINITY, l = 0.0f;
    float acc[256];
    memset(acc, 0, (size_t)d * sizeof *acc);
    for (int64_t k = 0; k <= t; k++) {
        if (seg[k] != seg[t]) continue;
        const float *v = vb + k * stride;
        const float s = dot8(q, kb + k * stride, d) * scale;
        if (s > m) {
            const __m256 r = _mm256_set1_ps(expf(m - s));
            l *= expf(m - s);
            for (int64_t i = 0; i < d; i += 8) _mm256_storeu_ps(acc + i, _mm256_mul_ps(_mm256_loadu_ps(acc + i), r));
            m = s;
        }
        const float p = expf(s - m);
        l += p;
        const __m256 pv = _mm256_set1_ps(p);
        for (int64_t i = 0; i < d; i += 8)
            _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(acc + i)));
    }
    const __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int64_t i = 0; i < d; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(acc + i), inv));
    return m + logf(l);
}

void pf_train_attn_bwd_row_avx2(const float *q, const float *kb, const float *vb, float *dkb, float *dvb,
                                int64_t stride, const int32_t *seg, int64_t t, int64_t d, float scale, float lse,
                                float D, const float *dout, float *dq) {
    for (int64_t k = 0; k <= t; k++) {
        if (seg[k] != seg[t]) continue;
        const float *kk = kb + k * stride, *v = vb + k * stride;
        float *dk = dkb + k * stride, *dv = dvb + k * stride;
        const float p = expf(dot8(q, kk, d) * scale - lse);
        const float ds = p * (dot8(dout, v, d) - D) * scale;
        const __m256 dsv = _mm256_set1_ps(ds), pv = _mm256_set1_ps(p);
        for (int64_t i = 0; i < d; i += 8) {
            _mm256_storeu_ps(dq + i, _mm256_fmadd_ps(dsv, _mm256_loadu_ps(kk + i), _mm256_loadu_ps(dq + i)));
            _mm256_storeu_ps(dk + i, _mm256_fmadd_ps(dsv, _mm256_loadu_ps(q + i), _mm256_loadu_ps(dk + i)));
            _mm256_storeu_ps(dv + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(dout + i), _mm256_loadu_ps(dv + i)));
        }
    }
}
