/* F32, F16 and BF16: element-wise conversions and float dot products against f32. */
#include <string.h>

#include "quant/quant.h"

/* F32 is stored as is (memcpy: the source may be unaligned inside a mapping). */
void pf_dequant_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }
void pf_quant_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

/* Loads element i of a 16-bit array that may be unaligned. */
static inline uint16_t load_u16(const void *p, int64_t i) {
    uint16_t v;
    memcpy(&v, (const uint8_t *)p + 2 * i, 2);
    return v;
}

static inline float load_f32(const void *p, int64_t i) {
    float v;
    memcpy(&v, (const uint8_t *)p + 4 * i, 4);
    return v;
}

/* y_i = half(x_i) exactly (every binary16 value is a binary32 value). */
void pf_dequant_f16(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = pf_fp16_to_fp32(load_u16(src, i));
}

/* Round to nearest even binary16 (overflow to ±inf, as F16C does). */
void pf_quant_f16(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = pf_fp32_to_fp16(src[i]);
        memcpy((uint8_t *)dst + 2 * i, &h, 2);
    }
}

/* y_i = bf16 bits << 16. */
void pf_dequant_bf16(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = pf_bf16_to_fp32(load_u16(src, i));
}

/* Round to nearest even bfloat16 (NaN stays a quiet NaN). */
void pf_quant_bf16(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = pf_fp32_to_bf16(src[i]);
        memcpy((uint8_t *)dst + 2 * i, &h, 2);
    }
}

/* The float dot products accumulate Σ x_i·y_i in double (every product of two floats is
 * exact in double), so the reference is accurate to about one float rounding at the end. */
void pf_vec_dot_f32_f32(int64_t n, float *s, const void *x, const void *y) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += (double)load_f32(x, i) * load_f32(y, i);
    *s = (float)acc;
}

void pf_vec_dot_f16_f32(int64_t n, float *s, const void *x, const void *y) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += (double)pf_fp16_to_fp32(load_u16(x, i)) * load_f32(y, i);
    *s = (float)acc;
}

void pf_vec_dot_bf16_f32(int64_t n, float *s, const void *x, const void *y) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += (double)pf_bf16_to_fp32(load_u16(x, i)) * load_f32(y, i);
    *s = (float)acc;
}
