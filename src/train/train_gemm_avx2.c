/* AVX2/FMA panel kernel of dx = g·W (train_linear.c): a 4-token × 16-column tile of dx is held
 * in 8 registers while the panel's rows stream past; each row costs 2 loads, 4 broadcasts and
 * 8 FMAs. Edges (fewer than 4 tokens or 16 columns) fall back to the scalar reference. */
#include <immintrin.h>

#include "train/train_internal.h"

void pf_train_panel_avx2(const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t rows, int64_t cols,
                         int64_t n, float *dx, int64_t ldx) {
    const int64_t n4 = n / 4 * 4, c16 = cols / 16 * 16;
    for (int64_t t = 0; t < n4; t += 4) {
        const float *g0 = g + t * ldg, *g1 = g0 + ldg, *g2 = g1 + ldg, *g3 = g2 + ldg;
        float *d0 = dx + t * ldx, *d1 = d0 + ldx, *d2 = d1 + ldx, *d3 = d2 + ldx;
        for (int64_t j = 0; j < c16; j += 16) {
            __m256 a0 = _mm256_loadu_ps(d0 + j), b0 = _mm256_loadu_ps(d0 + j + 8);
            __m256 a1 = _mm256_loadu_ps(d1 + j), b1 = _mm256_loadu_ps(d1 + j + 8);
            __m256 a2 = _mm256_loadu_ps(d2 + j), b2 = _mm256_loadu_ps(d2 + j + 8);
            __m256 a3 = _mm256_loadu_ps(d3 + j), b3 = _mm256_loadu_ps(d3 + j + 8);
            for (int64_t o = 0; o < rows; o++) {
                const float *pr = p + o * ldp + j;
                const __m256 w0 = _mm256_loadu_ps(pr), w1 = _mm256_loadu_ps(pr + 8);
                __m256 s = _mm256_broadcast_ss(g0 + o);
                a0 = _mm256_fmadd_ps(s, w0, a0), b0 = _mm256_fmadd_ps(s, w1, b0);
                s = _mm256_broadcast_ss(g1 + o);
                a1 = _mm256_fmadd_ps(s, w0, a1), b1 = _mm256_fmadd_ps(s, w1, b1);
                s = _mm256_broadcast_ss(g2 + o);
                a2 = _mm256_fmadd_ps(s, w0, a2), b2 = _mm256_fmadd_ps(s, w1, b2);
                s = _mm256_broadcast_ss(g3 + o);
                a3 = _mm256_fmadd_ps(s, w0, a3), b3 = _mm256_fmadd_ps(s, w1, b3);
            }
            _mm256_storeu_ps(d0 + j, a0), _mm256_storeu_ps(d0 + j + 8, b0);
            _mm256_storeu_ps(d1 + j, a1), _mm256_storeu_ps(d1 + j + 8, b1);
            _mm256_storeu_ps(d2 + j, a2), _mm256_storeu_ps(d2 + j + 8, b2);
            _mm256_storeu_ps(d3 + j, a3), _mm256_storeu_ps(d3 + j + 8, b3);
        }
        if (c16 < cols) /* right edge of these 4 tokens */
            pf_train_panel_scalar(g + t * ldg, ldg, p + c16, ldp, rows, cols - c16, 4, dx + t * ldx + c16, ldx);
    }
    if (n4 < n) pf_train_panel_scalar(g + n4 * ldg, ldg, p, ldp, rows, cols, n - n4, dx + n4 * ldx, ldx);
}

/* AVX2/FMA block of the weight gradient dW += α gᵀx (train_linear.c): a 4-row × 16-column tile of
 * Σ_t g[t][o] x[t][c] is held in 8 registers over all n tokens (2 loads of x, 4 broadcasts of g,
 * 8 FMAs per token) and added to dW once, scaled by α. Edges go to the scalar reference. */
void pf_train_gtx_block_avx2(const float *g, int64_t ldg, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                             int64_t n, float alpha, float *dw, int64_t ldw) {
    const int64_t r4 = rows / 4 * 4, c16 = cols / 16 * 16;
    const __m256 va = _mm256_set1_ps(alpha);
    for (int64_t o = 0; o < r4; o += 4) {
        for (int64_t j = 0; j < c16; j += 16) {
            __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
            for (int64_t t = 0; t < n; t++) {
                const float *xr = x + t * ldx + j, *gr = g + t * ldg + o;
                const __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 8);
                __m256 s = _mm256_broadcast_ss(gr);
                a0 = _mm256_fmadd_ps(s, x0, a0), b0 = _mm256_fmadd_ps(s, x1, b0);
                s = _mm256_broadcast_ss(gr + 1);
                a1 = _mm256_fmadd_ps(s, x0, a1), b1 = _mm256_fmadd_ps(s, x1, b1);
                s = _mm256_broadcast_ss(gr + 2);
                a2 = _mm256_fmadd_ps(s, x0, a2), b2 = _mm256_fmadd_ps(s, x1, b2);
                s = _mm256_broadcast_ss(gr + 3);
                a3 = _mm256_fmadd_ps(s, x0, a3), b3 = _mm256_fmadd_ps(s, x1, b3);
            }
            float *d0 = dw + o * ldw + j, *d1 = d0 + ldw, *d2 = d1 + ldw, *d3 = d2 + ldw;
            _mm256_storeu_ps(d0, _mm256_fmadd_ps(va, a0, _mm256_loadu_ps(d0)));
            _mm256_storeu_ps(d0 + 8, _mm256_fmadd_ps(va, b0, _mm256_loadu_ps(d0 + 8)));
            _mm256_storeu_ps(d1, _mm256_fmadd_ps(va, a1, _mm256_loadu_ps(d1)));
            _mm256_storeu_ps(d1 + 8, _mm256_fmadd_ps(va, b1, _mm256_loadu_ps(d1 + 8)));
            _mm256_storeu_ps(d2, _mm256_fmadd_ps(va, a2, _mm256_loadu_ps(d2)));
            _mm256_storeu_ps(d2 + 8, _mm256_fmadd_ps(va, b2, _mm256_loadu_ps(d2 + 8)));
            _mm256_storeu_ps(d3, _mm256_fmadd_ps(va, a3, _mm256_loadu_ps(d3)));
            _mm256_storeu_ps(d3 + 8, _mm256_fmadd_ps(va, b3, _mm256_loadu_ps(d3 + 8)));
        }
        if (c16 < cols) /* right edge of these 4 rows */
            pf_train_gtx_block_scalar(g + o, ldg, x + c16, ldx, 4, cols - c16, n, alpha, dw + o * ldw + c16, ldw);
    }
    if (r4 < rows) pf_train_gtx_block_scalar(g + r4, ldg, x, ldx, rows - r4, cols, n, alpha, dw + r4 * ldw, ldw);
}
