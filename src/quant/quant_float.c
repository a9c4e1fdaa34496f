/* STUB: placeholder bodies (zeros) until the real implementation lands. */
#include <string.h>
#include "quant/quant.h"

void pf_dequant_f32(const void *src, float *dst, int64_t n) { (void)src; memset(dst, 0, (size_t)n * sizeof(float)); }
void pf_quant_f32(const float *src, void *dst, int64_t n) { (void)src; (void)dst; (void)n; }
void pf_vec_dot_f32_f32(int64_t n, float *s, const void *x, const void *y) { (void)n; (void)x; (void)y; *s = 0.0f; }
void pf_dequant_f16(const void *src, float *dst, int64_t n) { (void)src; memset(dst, 0, (size_t)n * sizeof(float)); }
void pf_quant_f16(const float *src, void *dst, int64_t n) { (void)src; (void)dst; (void)n; }
void pf_vec_dot_f16_f32(int64_t n, float *s, const void *x, const void *y) { (void)n; (void)x; (void)y; *s = 0.0f; }
void pf_dequant_bf16(const void *src, float *dst, int64_t n) { (void)src; memset(dst, 0, (size_t)n * sizeof(float)); }
void pf_quant_bf16(const float *src, void *dst, int64_t n) { (void)src; (void)dst; (void)n; }
void pf_vec_dot_bf16_f32(int64_t n, float *s, const void *x, const void *y) { (void)n; (void)x; (void)y; *s = 0.0f; }
