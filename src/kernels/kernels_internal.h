/* Internal interface of the compute kernels: the AVX2 entry points (defined in *_avx2.c files,
 * compiled with -mavx2 -mfma -mf16c, and only ever called after pf_cpu_has_avx2()) and the
 * pieces shared by compute.c, kernels.c and bench.c. */
#ifndef PF_KERNELS_INTERNAL_H
#define PF_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

/* ---- AVX2 vec_dot: *s = dot(x, y), x a row of the weight type, y of its vec_dot_type ---- */
void pf_avx2_vec_dot_f32_f32(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_f16_f32(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_bf16_f32(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q4_0_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q4_1_q8_1(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q5_0_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q5_1_q8_1(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_iq4_nl_q8_0(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q2_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q3_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q4_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q5_k_q8_k(int64_t n, float *s, const void *x, const void *y);
void pf_avx2_vec_dot_q6_k_q8_k(int64_t n, float *s, const void *x, const void *y);

/* ---- AVX2 "prepared-activation" dot kernels (dot_pre_avx2.c), used by pf_matmul: the Q8_0
 *      activation row y comes with pre[] = {d_b (nb floats), d_b * sum(q_b) (nb floats)},
 *      computed once per row by pf_avx2_prep_q8_0. *s = dot(x, y) up to float rounding.  ---- */
typedef void (*pf_dot_pre_fn)(int64_t n, float *s, const void *x, const void *y, const float *pre);
void pf_avx2_prep_q8_0(int64_t n, const void *y, float *pre);
void pf_avx2_dot_q4_0_pre(int64_t n, float *s, const void *x, const void *y, const float *pre);
void pf_avx2_dot_q8_0_pre(int64_t n, float *s, const void *x, const void *y, const float *pre);
/* The same two with AVX-512 VNNI (dot_pre_vnni_avx512.c; only when pf_cpu_has_avx512vnni()). */
void pf_vnni_dot_q4_0_pre(int64_t n, float *s, const void *x, const void *y, const float *pre);
void pf_vnni_dot_q8_0_pre(int64_t n, float *s, const void *x, const void *y, const float *pre);

/* ---- AVX2 register-tiled quantized GEMM (gemm_q_avx2.c), used by pf_matmul for n_tok >= 2:
 *      for r < nr (1..PF_QGEMM_ROWS), t < nt (1..PF_QGEMM_TOKS):
 *      out[t * ldo + r] = dot(w + r * wrow, y + t * yrow), y in the weight's vec_dot_type.
 *      Q4_0 / Q8_0 also take the pf_avx2_prep_q8_0 data of token t at pre + t * pre_stride;
 *      the K-quant kernels (x Q8_K) ignore pre. Equal to vec_dot up to float rounding.   ---- */
#define PF_QGEMM_ROWS 2
#define PF_QGEMM_TOKS 4
typedef void (*pf_qgemm_fn)(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                            int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
void pf_avx2_qgemm_q4_0(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
void pf_avx2_qgemm_q8_0(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
/* The Q4_0 / Q8_0 ones with AVX-512 VNNI (gemm_q_vnni_avx512.c; only when pf_cpu_has_avx512vnni()). */
void pf_vnni_qgemm_q4_0(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
void pf_vnni_qgemm_q8_0(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
void pf_avx2_qgemm_q4_k(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
void pf_avx2_qgemm_q5_k(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);
void pf_avx2_qgemm_q6_k(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,
                        int64_t pre_stride, float *out, int64_t ldo, int nr, int nt);

/* ---- AVX2 activation quantizers (same bytes as the reference quantizers) ---- */
void pf_avx2_quant_q8_0(const float *src, void *dst, int64_t n);
void pf_avx2_quant_q8_1(const float *src, void *dst, int64_t n);
void pf_avx2_quant_q8_k(const float *src, void *dst, int64_t n);

/* ---- AVX2 dequantizers (bit-identical to the reference) ---- */
void pf_avx2_dequant_f16(const void *src, float *dst, int64_t n);
void pf_avx2_dequant_bf16(const void *src, float *dst, int64_t n);
void pf_avx2_dequant_q4_0(const void *src, float *dst, int64_t n);
void pf_avx2_dequant_q8_0(const void *src, float *dst, int64_t n);
void pf_avx2_dequant_q4_k(const void *src, float *dst, int64_t n);
void pf_avx2_dequant_q6_k(const void *src, float *dst, int64_t n);

/* ---- AVX2 f32 GEMM tile: for r < nr (1..4), t < nt (1..3):
 *      c[t * ldc + r] = dot(a + r * lda, b + t * ldb) over n elements (any n).            ---- */
void pf_avx2_gemm_f32_tile(int64_t n, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int nr, int nt);
#define PF_GEMM_TILE_ROWS 4
#define PF_GEMM_TILE_TOKS 3

/* ---- AVX2 float-weight matvec over 4 rows at once (rows at w + r * wrow, r < 4; y f32):
 *      out[r] = dot(row r, y); y is loaded once per 4 rows.                               ---- */
typedef void (*pf_matvec4_fn)(int64_t n, const void *w, size_t wrow, const float *y, float *out);
void pf_avx2_matvec4_f32(int64_t n, const void *w, size_t wrow, const float *y, float *out);
void pf_avx2_matvec4_f16(int64_t n, const void *w, size_t wrow, const float *y, float *out);
void pf_avx2_matvec4_bf16(int64_t n, const void *w, size_t wrow, const float *y, float *out);

/* ---- AVX2 multithread-friendly streaming read: returns the sum of n floats (n % 32 == 0,
 *      p 32-byte aligned); used by the bandwidth benchmark.                                 ---- */
float pf_avx2_stream_sum(const float *p, size_t n);

#endif
