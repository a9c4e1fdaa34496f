/* Shared pieces of the register-tiled quantized GEMM kernels (gemm_q_avx2.c and
 * gemm_q_vnni_avx512.c). */
#ifndef PF_GEMM_Q_TILE_H
#define PF_GEMM_Q_TILE_H

#define PF_AI static inline __attribute__((always_inline))
/* Fully unrolls the loops over the rows / tokens of a tile (bounds are constants after
 * inlining), so the accumulators are registers rather than a stack array. */
#define PF_UNROLL _Pragma("GCC unroll 8")

/* Defines FN (a pf_qgemm_fn) as the (nr, nt) dispatch over the inlined tile body
 * BODY(args..., NR, NT): every shape is a separate variant with register accumulators. */
#define PF_QGEMM_DISPATCH(FN, BODY)                                                                      \
    void FN(int64_t n, const void *w, size_t wrow, const void *y, size_t yrow, const float *pre,          \
            int64_t ps, float *out, int64_t ldo, int nr, int nt) {                                         \
        const uint8_t *w8 = w, *y8 = y;                                                                   \
        switch ((nr - 1) * PF_QGEMM_TOKS + (nt - 1)) {                                                    \
        case 0: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 1, 1); break;                              \
        case 1: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 1, 2); break;                              \
        case 2: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 1, 3); break;                              \
        case 3: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 1, 4); break;                              \
        case 4: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 2, 1); break;                              \
        case 5: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 2, 2); break;                              \
        case 6: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 2, 3); break;                              \
        case 7: BODY(n, w8, wrow, y8, yrow, pre, ps, out, ldo, 2, 4); break;                              \
        default: break;                                                                                   \
        }                                                                                                 \
    }

#endif
