/* The two products a trainer needs from a frozen weight W (n_out rows × n_in, any GGUF type):
 *   forward  y = x·Wᵀ   — pf_matmul, as inference does;
 *   backward dx = g·W   — here: dx[t][j] = Σ_o g[t][o] W[o][j].
 * For dx, each work item is (a chunk of ≤ 256 columns of W) × (a block of tokens): it walks W's
 * rows 64 at a time, dequantizes that 64 × 256 panel into the thread's own buffer (the model is
 * never copied whole), and adds g[t][o0..o0+64) · panel into dx[t][chunk] for each token of the
 * block (panel kernel: scalar reference, AVX2 4-token × 16-column register tile). Items are
 * split between threads, so each dx value is written by one thread in a fixed order
 * (deterministic for any thread count). F32 weights are read in place (the panel is W itself).
 * Also dW += α·gᵀx for the f32 LoRA gradients. */
#include <string.h>

#include "train/train_internal.h"

#define TOKEN_BLOCK 128

void pf_train_panel_scalar(const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t rows, int64_t cols,
                           int64_t n, float *dx, int64_t ldx) {
    for (int64_t t = 0; t < n; t++) {
        float *d = dx + t * ldx;
        for (int64_t o = 0; o < rows; o++) {
            const float gv = g[t * ldg + o];
            if (gv == 0.0f) continue;
            const float *pr = p + o * ldp;
            for (int64_t j = 0; j < cols; j++) d[j] += gv * pr[j];
        }
    }
}

typedef struct gw_job {
    const uint8_t *w;
    size_t row_bytes;
    int64_t n_out, n_in, n, chunk, n_chunks, n_tblocks;
    int64_t block;            /* elements per quantization block */
    size_t block_bytes;
    pf_to_float_fn to_float;
    const float *g;
    float *dx, *work;
    bool accumulate, avx2, direct; /* direct: F32 W is its own panel (no copy) */
} gw_job;

static void gw_thread(void *arg, int ith, int nth) {
    const gw_job *j = arg;
    const int64_t n_items = j->n_chunks * j->n_tblocks;
    const int64_t i0 = n_items * ith / nth, i1 = n_items * (ith + 1) / nth;
    float *panel = j->work + (size_t)ith * PF_TRAIN_PANEL;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t ci = it / j->n_tblocks, tb = it % j->n_tblocks;
        const int64_t c0 = ci * j->chunk, cols = j->n_in - c0 < j->chunk ? j->n_in - c0 : j->chunk;
        const int64_t t0 = tb * TOKEN_BLOCK, nt = j->n - t0 < TOKEN_BLOCK ? j->n - t0 : TOKEN_BLOCK;
        float *dx = j->dx + t0 * j->n_in + c0;
        if (!j->accumulate)
            for (int64_t t = 0; t < nt; t++) memset(dx + t * j->n_in, 0, (size_t)cols * sizeof(float));
        for (int64_t o0 = 0; o0 < j->n_out; o0 += PF_TRAIN_PANEL_ROWS) {
            const int64_t rows = j->n_out - o0 < PF_TRAIN_PANEL_ROWS ? j->n_out - o0 : PF_TRAIN_PANEL_ROWS;
            const float *p = panel;
            int64_t ldp = PF_TRAIN_PANEL_COLS;
            if (j->direct) p = (const float *)j->w + o0 * j->n_in + c0, ldp = j->n_in;
            else
                for (int64_t o = 0; o < rows; o++) /* c0 and cols are whole blocks */
                    j->to_float(j->w + (size_t)(o0 + o) * j->row_bytes + (size_t)(c0 / j->block) * j->block_bytes,
                                panel + o * PF_TRAIN_PANEL_COLS, cols);
            const float *g = j->g + t0 * j->n_out + o0;
            if (j->avx2) pf_train_panel_avx2(g, j->n_out, p, ldp, rows, cols, nt, dx, j->n_in);
            else pf_train_panel_scalar(g, j->n_out, p, ldp, rows, cols, nt, dx, j->n_in);
        }
    }
}

void pf_train_matmul_gw(pf_compute *c, const void *w, pf_type type, int64_t n_out, int64_t n_in, const float *g,
                        int64_t n, float *dx, bool accumulate, float *work) {
    const pf_type_traits *tt = pf_type_get(type);
    const pf_kernels *k = pf_compute_kernels(c);
    gw_job j = {.w = w, .row_bytes = pf_row_size(type, n_in), .n_out = n_out, .n_in = n_in, .n = n,
                .block = tt->block_size, .block_bytes = tt->type_size,
                .to_float = k->to_float[type] ? k->to_float[type] : tt->to_float, .g = g, .dx = dx, .work = work,
                .accumulate = accumulate, .avx2 = k->isa == PF_ISA_AVX2, .direct = type == PF_TYPE_F32};
    /* chunk: ≤ 256 columns, a whole number of blocks (a K-quant block is 256 wide) */
    j.chunk = PF_TRAIN_PANEL_COLS / j.block * j.block;
    if (j.chunk > n_in) j.chunk = n_in;
    j.n_chunks = (n_in + j.chunk - 1) / j.chunk;
    /* tokens in blocks of TOKEN_BLOCK: the dx rows of one block and one panel stay in cache;
     * items are ordered chunk-major, so narrow W (few chunks) still spreads over threads */
    j.n_tblocks = (n + TOKEN_BLOCK - 1) / TOKEN_BLOCK;
    pf_pool_run(pf_compute_pool(c), gw_thread, &j);
}

void pf_train_gtx_block_scalar(const float *g, int64_t ldg, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                               int64_t n, float alpha, float *dw, int64_t ldw) {
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * ldx, *gr = g + t * ldg;
        for (int64_t o = 0; o < rows; o++) {
            const float gv = alpha * gr[o];
            if (gv == 0.0f) continue;
            float *d = dw + o * ldw;
            for (int64_t i = 0; i < cols; i++) d[i] += gv * xr[i];
        }
    }
}

typedef struct gtx_job {
    const float *g, *x;
    float *dw;
    int64_t n_out, n_in, n, n_chunks;
    float alpha;
    bool avx2;
} gtx_job;

#define GTX_ROWS 16

/* Items (block of 16 rows of dW, column chunk of 256): dW[o][chunk] += α Σ_t g[t][o] x[t][chunk]
 * (block kernel: scalar reference, AVX2 4-row × 16-column register tile over all tokens). */
static void gtx_items(void *arg, int64_t i0, int64_t i1) {
    const gtx_job *j = arg;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t o0 = it / j->n_chunks * GTX_ROWS, c0 = (it % j->n_chunks) * PF_TRAIN_PANEL_COLS;
        const int64_t rows = j->n_out - o0 < GTX_ROWS ? j->n_out - o0 : GTX_ROWS;
        const int64_t cols = j->n_in - c0 < PF_TRAIN_PANEL_COLS ? j->n_in - c0 : PF_TRAIN_PANEL_COLS;
        const float *g = j->g + o0, *x = j->x + c0;
        float *dw = j->dw + o0 * j->n_in + c0;
        if (j->avx2) pf_train_gtx_block_avx2(g, j->n_out, x, j->n_in, rows, cols, j->n, j->alpha, dw, j->n_in);
        else pf_train_gtx_block_scalar(g, j->n_out, x, j->n_in, rows, cols, j->n, j->alpha, dw, j->n_in);
    }
}

void pf_train_matmul_gtx(pf_compute *c, const float *g, int64_t n_out, const float *x, int64_t n_in, int64_t n,
                         float alpha, float *dw) {
    gtx_job j = {g, x, dw, n_out, n_in, n, (n_in + PF_TRAIN_PANEL_COLS - 1) / PF_TRAIN_PANEL_COLS, alpha,
                 pf_compute_kernels(c)->isa == PF_ISA_AVX2};
    pf_compute_parallel(c, (n_out + GTX_ROWS - 1) / GTX_ROWS * j.n_chunks, 2, gtx_items, &j);
}
