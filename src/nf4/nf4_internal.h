/* Internal interface of the NF4 code: the block-scale decoding shared by the dequantizer and the
 * kernels, and the per-ISA tile kernels (scalar in nf4_matmul.c, AVX2 in nf4_avx2.c, the latter
 * only called after pf_cpu_has_avx2()). */
#ifndef PF_NF4_INTERNAL_H
#define PF_NF4_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

/* Block j's absmax, rebuilt from its 8-bit code: map8[q] · scale + offset (two float roundings,
 * no FMA, as bitsandbytes' dequantize_blockwise followed by "+= offset"). */
static inline float pf_nf4_block_absmax(const pf_nf4_tensor *t, int64_t j) {
    float a = pf_nf4_dq_map()[t->absmax_q[j]] * t->absmax_scale[j / PF_NF4_DQ_BLOCK];
    return a + t->offset;
}

/* Tile kernels. A "tile" is rows [r0, r0 + nr) × columns [c0, c0 + nc) of W as f32, row stride nc
 * (c0, nc multiples of 64).
 * dequant_tile: writes the tile.
 * dot_tile:     y[t·ldy + r] (=, or += when accumulate) Σ_c tile[r·nc + c] · x[t·ldx + c]
 *               for r < nr, t < n (x already offset to column c0, y to row r0).
 * axpy_tile:    dx[t·lddx + c] (=, or +=) Σ_r g[t·ldg + r] · tile[r·nc + c]
 *               for c < nc, t < n (g offset to row r0, dx to column c0).
 * matvec:       y[r] = Σ_c W[r0 + r, c] · x[c] for r < r1 - r0 (the one-row forward, fused: each
 *               block's Σ level·x is formed first and scaled by its absmax once).
 * matvec_t:     dx[c] = Σ_r g[r] · W[r, c] for the columns c of the 64-blocks [b0, b1) of a row (the
 *               one-row backward, fused: dx += (g[r] · absmax) · level, row after row).            */
typedef struct pf_nf4_kernels {
    void (*dequant_tile)(const pf_nf4_tensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *tile);
    void (*dot_tile)(const float *tile, int64_t nr, int64_t nc, const float *x, int64_t ldx, int64_t n, float *y,
                     int64_t ldy, int accumulate);
    void (*axpy_tile)(const float *tile, int64_t nr, int64_t nc, const float *g, int64_t ldg, int64_t n, float *dx,
                      int64_t lddx, int accumulate);
    void (*matvec)(const pf_nf4_tensor *t, int64_t r0, int64_t r1, const float *x, float *y);
    void (*matvec_t)(const pf_nf4_tensor *t, int64_t b0, int64_t b1, const float *g, float *dx);
} pf_nf4_kernels;

extern const pf_nf4_kernels pf_nf4_kernels_scalar;
#if defined(__x86_64__) || defined(__i386__)
extern const pf_nf4_kernels pf_nf4_kernels_avx2;
#endif

#endif
