/* Scalar reference implementations of every tensor format (dequantize, quantize, vec_dot).
 * All functions take whole blocks: n is a multiple of the type's block size. vec_dot computes
 * *s = dot(x, y) with x a row of the weight type and y a row of its vec_dot_type. */
#ifndef PF_QUANT_QUANT_H
#define PF_QUANT_QUANT_H

#include <stdint.h>
#include "phiforge.h"
#include "quant/blocks.h"

/* ---- float formats (quant_float.c); their vec_dot partner is plain f32 ---- */
void pf_dequant_f32(const void *src, float *dst, int64_t n);
void pf_quant_f32(const float *src, void *dst, int64_t n);
void pf_vec_dot_f32_f32(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_f16(const void *src, float *dst, int64_t n);
void pf_quant_f16(const float *src, void *dst, int64_t n);
void pf_vec_dot_f16_f32(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_bf16(const void *src, float *dst, int64_t n);
void pf_quant_bf16(const float *src, void *dst, int64_t n);
void pf_vec_dot_bf16_f32(int64_t n, float *s, const void *x, const void *y);

/* ---- legacy 32-element formats (quant_q4_q5.c) ---- */
void pf_dequant_q4_0(const void *src, float *dst, int64_t n);
void pf_quant_q4_0(const float *src, void *dst, int64_t n);
void pf_vec_dot_q4_0_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q4_1(const void *src, float *dst, int64_t n);
void pf_quant_q4_1(const float *src, void *dst, int64_t n);
void pf_vec_dot_q4_1_q8_1(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q5_0(const void *src, float *dst, int64_t n);
void pf_quant_q5_0(const float *src, void *dst, int64_t n);
void pf_vec_dot_q5_0_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q5_1(const void *src, float *dst, int64_t n);
void pf_quant_q5_1(const float *src, void *dst, int64_t n);
void pf_vec_dot_q5_1_q8_1(int64_t n, float *s, const void *x, const void *y);

/* ---- 8-bit formats (quant_q8.c); Q8_1 and Q8_K are activation-only ---- */
void pf_dequant_q8_0(const void *src, float *dst, int64_t n);
void pf_quant_q8_0(const float *src, void *dst, int64_t n);
void pf_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q8_1(const void *src, float *dst, int64_t n);
void pf_quant_q8_1(const float *src, void *dst, int64_t n);
void pf_dequant_q8_k(const void *src, float *dst, int64_t n);
void pf_quant_q8_k(const float *src, void *dst, int64_t n);

/* ---- non-linear 4-bit (quant_iq4nl.c) ---- */
void pf_dequant_iq4_nl(const void *src, float *dst, int64_t n);
void pf_quant_iq4_nl(const float *src, void *dst, int64_t n);
void pf_vec_dot_iq4_nl_q8_0(int64_t n, float *s, const void *x, const void *y);

/* ---- K-quants, 256-element super-blocks (quant_q2k_q3k.c, quant_q4k_q5k.c, quant_q6k.c) ---- */
void pf_dequant_q2_k(const void *src, float *dst, int64_t n);
void pf_quant_q2_k(const float *src, void *dst, int64_t n);
void pf_vec_dot_q2_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q3_k(const void *src, float *dst, int64_t n);
void pf_quant_q3_k(const float *src, void *dst, int64_t n);
void pf_vec_dot_q3_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q4_k(const void *src, float *dst, int64_t n);
void pf_quant_q4_k(const float *src, void *dst, int64_t n);
void pf_vec_dot_q4_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q5_k(const void *src, float *dst, int64_t n);
void pf_quant_q5_k(const float *src, void *dst, int64_t n);
void pf_vec_dot_q5_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_dequant_q6_k(const void *src, float *dst, int64_t n);
void pf_quant_q6_k(const float *src, void *dst, int64_t n);
void pf_vec_dot_q6_k_q8_k(int64_t n, float *s, const void *x, const void *y);

/* Unpacks the 6-bit scale j (0..7) and min j of a Q4_K / Q5_K scales[12] array. */
static inline void pf_k_get_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
