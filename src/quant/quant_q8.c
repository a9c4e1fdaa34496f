/* STUB: placeholder bodies (zeros) until the real implementation lands. */
#include <string.h>
#include "quant/quant.h"

void pf_dequant_q8_0(const void *src, float *dst, int64_t n) { (void)src; memset(dst, 0, (size_t)n * sizeof(float)); }
void pf_quant_q8_0(const float *src, void *dst, int64_t n) { (void)src; (void)dst; (void)n; }
void pf_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *x, const void *y) { (void)n; (void)x; (void)y; *s = 0.0f; }
void pf_dequant_q8_1(const void *src, float *dst, int64_t n) { (void)src; memset(dst, 0, (size_t)n * sizeof(float)); }
void pf_quant_q8_1(const float *src, void *dst, int64_t n) { (void)src; (void)dst; (void)n; }
void pf_dequant_q8_k(const void *src, float *dst, int64_t n) { (void)src; memset(dst, 0, (size_t)n * sizeof(float)); }
void pf_quant_q8_k(const float *src, void *dst, int64_t n) { (void)src; (void)dst; (void)n; }
