/* Vector encodings (f32, f16, i8 + scale) and the portable distance kernels, plus the
 * run-time choice between them and the AVX2 ones. Scalar sums are kept in float (not double)
 * so that they match the SIMD kernels up to summation order only. */
#include <math.h>
#include <string.h>

#include "vindex/vindex_internal.h"

static inline float ldf(const void *p) { float f; memcpy(&f, p, 4); return f; }

size_t pf_vec_bytes(pf_vec_storage st, size_t dim) {
    switch (st) {
    case PF_VEC_F32: return 4 * dim;
    case PF_VEC_F16: return 2 * dim;
    case PF_VEC_I8: return pf_i8_pad(dim) + 8;
    }
    return 0;
}

void pf_vec_encode(pf_vec_storage st, const float *v, size_t dim, void *dst) {
    if (st == PF_VEC_F32) { memcpy(dst, v, 4 * dim); return; }
    if (st == PF_VEC_F16) {
        uint16_t *o = dst;
        for (size_t i = 0; i < dim; i++) o[i] = pf_fp32_to_fp16(v[i]);
        return;
    }
    int8_t *o = dst;
    float amax = 0.0f;
    for (size_t i = 0; i < dim; i++) amax = fmaxf(amax, fabsf(v[i]));
    float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f, sq = 0.0f;
    int32_t isq = 0;
    for (size_t i = 0; i < dim; i++) {
        float r = roundf(v[i] * inv);
        int32_t x = (int32_t)fminf(127.0f, fmaxf(-127.0f, r));
        o[i] = (int8_t)x;
        isq += x * x;
    }
    for (size_t i = dim; i < pf_i8_pad(dim); i++) o[i] = 0;
    sq = (float)isq * scale * scale;
    memcpy(o + pf_i8_pad(dim), &scale, 4);
    memcpy(o + pf_i8_pad(dim) + 4, &sq, 4);
}

void pf_vec_decode(pf_vec_storage st, const void *src, size_t dim, float *dst) {
    if (st == PF_VEC_F32) { memcpy(dst, src, 4 * dim); return; }
    if (st == PF_VEC_F16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < dim; i++) dst[i] = pf_fp16_to_fp32(s[i]);
        return;
    }
    const int8_t *s = src;
    float scale = ldf(s + pf_i8_pad(dim));
    for (size_t i = 0; i < dim; i++) dst[i] = scale * (float)s[i];
}

/* ---- scalar kernels: four partial sums break the dependency chain, like the SIMD ones ---- */

static float f32_ip(const void *vq, const void *vv, size_t dim) {
    const float *q = vq, *v = vv;
    float s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= dim; i += 4)
        for (int j = 0; j < 4; j++) s[j] += q[i + j] * v[i + j];
    for (; i < dim; i++) s[0] += q[i] * v[i];
    return 1.0f - ((s[0] + s[1]) + (s[2] + s[3]));
}

static float f32_l2(const void *vq, const void *vv, size_t dim) {
    const float *q = vq, *v = vv;
    float s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= dim; i += 4)
        for (int j = 0; j < 4; j++) { float d = q[i + j] - v[i + j]; s[j] += d * d; }
    for (; i < dim; i++) { float d = q[i] - v[i]; s[0] += d * d; }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static float f16_ip(const void *vq, const void *vv, size_t dim) {
    const float *q = vq;
    const uint16_t *v = vv;
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) s += q[i] * pf_fp16_to_fp32(v[i]);
    return 1.0f - s;
}

static float f16_l2(const void *vq, const void *vv, size_t dim) {
    const float *q = vq;
    const uint16_t *v = vv;
    float s = 0.0f;
    for (size_t i = 0; i < dim; i++) { float d = q[i] - pf_fp16_to_fp32(v[i]); s += d * d; }
    return s;
}

static int32_t i8_dot(const int8_t *a, const int8_t *b, size_t dim) {
    int32_t s = 0;
    for (size_t i = 0; i < dim; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

/* The integer dot product is exact, so scalar and AVX2 agree bit for bit from here on. */
static float i8_ip(const void *vq, const void *vv, size_t dim) {
    const int8_t *q = vq, *v = vv;
    size_t o = pf_i8_pad(dim);
    return 1.0f - ldf(q + o) * ldf(v + o) * (float)i8_dot(q, v, dim);
}

static float i8_l2(const void *vq, const void *vv, size_t dim) {
    const int8_t *q = vq, *v = vv;
    size_t o = pf_i8_pad(dim);
    float d = ldf(q + o + 4) + ldf(v + o + 4) - 2.0f * ldf(q + o) * ldf(v + o) * (float)i8_dot(q, v, dim);
    return d > 0.0f ? d : 0.0f;
}

static void f16_decode(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = pf_fp16_to_fp32(src[i]);
}

static const pf_vdist_table scalar_table = {
    "scalar", {{f32_ip, f32_l2}, {f16_ip, f16_l2}, {i8_ip, i8_l2}}, f16_decode};

static const pf_vdist_table avx2_table = {
    "avx2",
    {{pf_avx2_vdist_f32_ip, pf_avx2_vdist_f32_l2},
     {pf_avx2_vdist_f16_ip, pf_avx2_vdist_f16_l2},
     {pf_avx2_vdist_i8_ip, pf_avx2_vdist_i8_l2}},
    pf_avx2_f16_decode};

const pf_vdist_table *pf_vdist_get(pf_isa isa) {
    switch (isa) {
    case PF_ISA_AUTO: return pf_cpu_has_avx2() ? &avx2_table : &scalar_table;
    case PF_ISA_SCALAR: return &scalar_table;
    case PF_ISA_AVX2: return pf_cpu_has_avx2() ? &avx2_table : NULL;
    }
    return NULL;
}
