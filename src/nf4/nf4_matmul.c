/* NF4 × f32 products for the trainer's frozen QLoRA base:
 *   pf_nf4_matmul:   y[n × out] = x[n × in] · Wᵀ     (forward)
 *   pf_nf4_matmul_t: dx[n × in] = g[n × out] · W     (backward to the input; W gets no gradient)
 * W is never dequantized as a whole: each thread turns one small tile of it (at most
 * NF4_TILE_FLOATS floats, on its stack, so a call allocates nothing) into f32 and uses the tile for
 * every one of the n rows of x / g before moving on, so the dequantization is paid once per
 * weight and call while x, g and the tile stay in cache.
 *   forward:  threads own output rows; tiles are (NF4_TILE_FLOATS / NF4_MM_COLS) rows ×
 *             NF4_MM_COLS columns, the partial dot products of successive column tiles accumulate
 *             into y; one row of x (n = 1) takes the fused matvec kernel instead.
 *   backward: threads own input columns (whole 64-blocks); tiles are rows × NF4_MT_COLS columns
 *             and the rows' contributions g[t, r] · W[r, :] accumulate into dx.
 * Scalar reference kernels here; the AVX2 ones are in nf4_avx2.c (same contract, chosen by the
 * pf_compute's kernel table). */
#include <string.h>

#include "nf4/nf4_internal.h"

#define NF4_TILE_FLOATS 8192 /* 32 KB of dequantized weights per thread      */
#define NF4_MM_COLS 256      /* tile width of the forward product           */
#define NF4_MT_COLS 64      /* tile width of the backward product          */
#define NF4_PAR_MIN_WORK 65536 /* below this many multiply-adds: one thread  */

/* ---- scalar reference kernels -------------------------------------------------------------- */

static void dequant_tile_scalar(const pf_nf4_tensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *tile) {
    const float *lv = pf_nf4_levels();
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t c = 0; c < nc; c += PF_NF4_BLOCK) {
            const int64_t j = (r0 + r) * bpr + (c0 + c) / PF_NF4_BLOCK;
            const float a = pf_nf4_block_absmax(t, j);
            const uint8_t *q = t->codes + j * (PF_NF4_BLOCK / 2);
            float *o = tile + r * nc + c;
            for (int i = 0; i < PF_NF4_BLOCK / 2; i++) {
                o[2 * i] = lv[q[i] >> 4] * a;
                o[2 * i + 1] = lv[q[i] & 15] * a;
            }
        }
    }
}

static void dot_tile_scalar(const float *tile, int64_t nr, int64_t nc, const float *x, int64_t ldx, int64_t n, float *y,
                            int64_t ldy, int accumulate) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < nr; r++) {
            float s = 0.0f;
            for (int64_t c = 0; c < nc; c++) s += tile[r * nc + c] * x[t * ldx + c];
            y[t * ldy + r] = accumulate ? y[t * ldy + r] + s : s;
        }
}

static void axpy_tile_scalar(const float *tile, int64_t nr, int64_t nc, const float *g, int64_t ldg, int64_t n, float *dx,
                             int64_t lddx, int accumulate) {
    for (int64_t t = 0; t < n; t++) {
        float *d = dx + t * lddx;
        if (!accumulate) memset(d, 0, (size_t)nc * sizeof(float));
        for (int64_t r = 0; r < nr; r++) {
            const float gr = g[t * ldg + r];
            for (int64_t c = 0; c < nc; c++) d[c] += gr * tile[r * nc + c];
        }
    }
}

static void matvec_scalar(const pf_nf4_tensor *t, int64_t r0, int64_t r1, const float *x, float *y) {
    const float *lv = pf_nf4_levels();
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    for (int64_t r = r0; r < r1; r++) {
        float s = 0.0f;
        for (int64_t b = 0; b < bpr; b++) {
            const uint8_t *q = t->codes + (r * bpr + b) * (PF_NF4_BLOCK / 2);
            const float *xb = x + b * PF_NF4_BLOCK;
            float sb = 0.0f;
            for (int i = 0; i < PF_NF4_BLOCK / 2; i++) sb += lv[q[i] >> 4] * xb[2 * i] + lv[q[i] & 15] * xb[2 * i + 1];
            s += sb * pf_nf4_block_absmax(t, r * bpr + b);
        }
        y[r - r0] = s;
    }
}

static void matvec_t_scalar(const pf_nf4_tensor *t, int64_t b0, int64_t b1, const float *g, float *dx) {
    const float *lv = pf_nf4_levels();
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    memset(dx + b0 * PF_NF4_BLOCK, 0, (size_t)((b1 - b0) * PF_NF4_BLOCK) * sizeof(float));
    for (int64_t r = 0; r < t->n_out; r++)
        for (int64_t b = b0; b < b1; b++) {
            const float a = g[r] * pf_nf4_block_absmax(t, r * bpr + b);
            const uint8_t *q = t->codes + (r * bpr + b) * (PF_NF4_BLOCK / 2);
            float *d = dx + b * PF_NF4_BLOCK;
            for (int i = 0; i < PF_NF4_BLOCK / 2; i++) {
                d[2 * i] += a * lv[q[i] >> 4];
                d[2 * i + 1] += a * lv[q[i] & 15];
            }
        }
}

const pf_nf4_kernels pf_nf4_kernels_scalar = {dequant_tile_scalar, dot_tile_scalar, axpy_tile_scalar, matvec_scalar,
                                              matvec_t_scalar};

/* ---- drivers ------------------------------------------------------------------------------- */

typedef struct nf4_job {
    const pf_nf4_kernels *k;
    const pf_nf4_tensor *w;
    const float *in; /* x (forward) or g (backward) */
    int64_t n;
    float *out;      /* y or dx                     */
} nf4_job;

/* Forward, output rows [r0, r1). */
static void mm_rows(void *arg, int64_t r0, int64_t r1) {
    const nf4_job *j = arg;
    if (j->n == 1) { /* one row of x: no tile, the fused dot product */
        j->k->matvec(j->w, r0, r1, j->in, j->out + r0);
        return;
    }
    const int64_t n_in = j->w->n_in, n_out = j->w->n_out;
    _Alignas(64) float tile[NF4_TILE_FLOATS];
    const int64_t cols = n_in < NF4_MM_COLS ? n_in : NF4_MM_COLS;
    const int64_t rows = NF4_TILE_FLOATS / cols;
    for (int64_t c0 = 0; c0 < n_in; c0 += cols) {
        const int64_t nc = n_in - c0 < cols ? n_in - c0 : cols;
        for (int64_t r = r0; r < r1; r += rows) {
            const int64_t nr = r1 - r < rows ? r1 - r : rows;
            j->k->dequant_tile(j->w, r, nr, c0, nc, tile);
            j->k->dot_tile(tile, nr, nc, j->in + c0, n_in, j->n, j->out + r, n_out, c0 > 0);
        }
    }
}

/* Backward, input columns of the 64-blocks [b0, b1) of a row. */
static void mt_cols(void *arg, int64_t b0, int64_t b1) {
    const nf4_job *j = arg;
    if (j->n == 1) { /* one row of g: no tile, the fused kernel */
        j->k->matvec_t(j->w, b0, b1, j->in, j->out);
        return;
    }
    const int64_t n_in = j->w->n_in, n_out = j->w->n_out;
    _Alignas(64) float tile[NF4_TILE_FLOATS];
    const int64_t c_end = b1 * PF_NF4_BLOCK;
    for (int64_t c0 = b0 * PF_NF4_BLOCK; c0 < c_end; c0 += NF4_MT_COLS) {
        const int64_t nc = c_end - c0 < NF4_MT_COLS ? c_end - c0 : NF4_MT_COLS;
        const int64_t rows = NF4_TILE_FLOATS / nc;
        for (int64_t r = 0; r < n_out; r += rows) {
            const int64_t nr = n_out - r < rows ? n_out - r : rows;
            j->k->dequant_tile(j->w, r, nr, c0, nc, tile);
            j->k->axpy_tile(tile, nr, nc, j->in + r, n_out, j->n, j->out + c0, n_in, r > 0);
        }
    }
}

static int check_args(const char *fn, pf_compute *c, const pf_nf4_tensor *w, const float *in, int64_t n, float *out,
                      pf_error *err) {
    if (c == NULL || w == NULL || in == NULL || out == NULL)
        return pf_error_set(err, PF_ERR_ARG, "%s: NULL %s", fn,
                            c == NULL ? "compute context" : w == NULL ? "weights" : in == NULL ? "input" : "output");
    if (!w->ready || w->codes == NULL) return pf_error_set(err, PF_ERR_ARG, "%s: NF4 tensor not finished", fn);
    if (n < 0) return pf_error_set(err, PF_ERR_ARG, "%s: negative row count %lld", fn, (long long)n);
    return PF_OK;
}

static const pf_nf4_kernels *kernels_of(const pf_compute *c) {
#if defined(__x86_64__) || defined(__i386__)
    if (pf_compute_kernels(c)->isa == PF_ISA_AVX2) return &pf_nf4_kernels_avx2;
#endif
    return &pf_nf4_kernels_scalar;
}

/* Smallest item count worth splitting across threads for a job of `work` multiply-adds. */
static int64_t min_par(int64_t items, double work) { return work < NF4_PAR_MIN_WORK ? items + 1 : 2; }

int pf_nf4_matmul(pf_compute *c, const pf_nf4_tensor *w, const float *x, int64_t n, float *y, pf_error *err) {
    int rc = check_args("pf_nf4_matmul", c, w, x, n, y, err);
    if (rc != PF_OK || n == 0) return rc;
    nf4_job j = {kernels_of(c), w, x, n, y};
    pf_compute_parallel(c, w->n_out, min_par(w->n_out, (double)w->n_out * (double)w->n_in * (double)n), mm_rows, &j);
    return PF_OK;
}

int pf_nf4_matmul_t(pf_compute *c, const pf_nf4_tensor *w, const float *g, int64_t n, float *dx, pf_error *err) {
    int rc = check_args("pf_nf4_matmul_t", c, w, g, n, dx, err);
    if (rc != PF_OK || n == 0) return rc;
    nf4_job j = {kernels_of(c), w, g, n, dx};
    const int64_t nb = w->n_in / PF_NF4_BLOCK;
    pf_compute_parallel(c, nb, min_par(nb, (double)w->n_out * (double)w->n_in * (double)n), mt_cols, &j);
    return PF_OK;
}
