/* AVX2/FMA attention scores (compiled with -mavx2 -mfma; called only when the compute
 * context's kernel table is the AVX2 one). Keys are transposed per (sequence, head), so the
 * scores of 8 keys come from one FMA per head dimension. */
#include <immintrin.h>
#include <math.h>

#include "embed/embed_internal.h"

/* s[j] = scale · Σ_i q[i] kt[i·len + j] + mask[j], j < len (i < d), FMA-accumulated over i in
 * the same order in every lane and in the tail, so a key's score does not depend on len. */
void pfe_avx2_scores(int64_t d, int64_t len, const float *q, const float *kt, float scale, const float *mask,
                     float *s) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < d; i++) {
            const __m256 qi = _mm256_set1_ps(q[i]);
            const float *k = kt + i * len + j;
            a0 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(k), a0);
            a1 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(k + 8), a1);
            a2 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(k + 16), a2);
            a3 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(k + 24), a3);
        }
        _mm256_storeu_ps(s + j, _mm256_fmadd_ps(a0, vs, _mm256_loadu_ps(mask + j)));
        _mm256_storeu_ps(s + j + 8, _mm256_fmadd_ps(a1, vs, _mm256_loadu_ps(mask + j + 8)));
        _mm256_storeu_ps(s + j + 16, _mm256_fmadd_ps(a2, vs, _mm256_loadu_ps(mask + j + 16)));
        _mm256_storeu_ps(s + j + 24, _mm256_fmadd_ps(a3, vs, _mm256_loadu_ps(mask + j + 24)));
    }
    for (; j + 8 <= len; j += 8) {
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < d; i++) a = _mm256_fmadd_ps(_mm256_set1_ps(q[i]), _mm256_loadu_ps(kt + i * len + j), a);
        _mm256_storeu_ps(s + j, _mm256_fmadd_ps(a, vs, _mm256_loadu_ps(mask + j)));
    }
    for (; j < len; j++) {
        float a = 0.0f;
        for (int64_t i = 0; i < d; i++) a = fmaf(q[i], kt[i * len + j], a);
        s[j] = fmaf(a, scale, mask[j]);
    }
}
