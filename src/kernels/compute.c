/* Compute context and the multithreaded entry points: pf_matmul (activations quantized once to
 * the weight's vec_dot_type, rows of W split across threads in cache-sized chunks, tokens
 * tiled so each chunk of weight rows is reused from cache; with AVX2 and several tokens the
 * Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights go through the register-tiled GEMM kernels of
 * gemm_q_avx2.c), pf_dequantize and pf_quantize. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_internal.h"
#include "quant/blocks.h"

struct pf_compute {
    pf_pool *pool;
    const pf_kernels *k;
    bool vnni;     /* AUTO on an AVX-512 VNNI CPU: int8 matvec kernels use vpdpbusd */
    int n_threads;
    void *scratch; /* pf_compute_scratch: the caller's                     */
    size_t scratch_cap;
    void *work;    /* internal: quantized activations, per-thread tiles     */
    size_t work_cap;
};

/* ---- scratch ------------------------------------------------------------------------------ */

/* Ensures *buf holds at least `bytes` (64-byte aligned, grown by 1.5x to limit reallocations);
 * returns it, or NULL on OOM (the old buffer is then released). */
static void *grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes == 0) bytes = 64;
    if (*buf != NULL && *cap >= bytes) return *buf;
    size_t want = *cap + *cap / 2;
    if (want < bytes) want = bytes;
    want = (want + 63) & ~(size_t)63;
    free(*buf);
    *buf = aligned_alloc(64, want);
    *cap = *buf ? want : 0;
    return *buf;
}

int pf_compute_create(int n_threads, pf_isa isa, pf_compute **out, pf_error *err) {
    if (out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_compute_create: out is NULL");
    *out = NULL;
    const pf_kernels *k = pf_kernels_get(isa);
    if (k == NULL) {
        if (isa == PF_ISA_AVX2)
            return pf_error_set(err, PF_ERR_UNSUPPORTED,
                                "pf_compute_create: AVX2 kernels requested but this CPU (or OS) lacks AVX2+FMA+F16C");
        return pf_error_set(err, PF_ERR_ARG, "pf_compute_create: unknown instruction set %d", (int)isa);
    }
    pf_compute *c = calloc(1, sizeof *c);
    if (c == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_compute_create: out of memory");
    int rc = pf_pool_create(n_threads, &c->pool, err);
    if (rc != PF_OK) {
        free(c);
        return rc;
    }
    c->k = k;
    c->vnni = isa == PF_ISA_AUTO && k->isa == PF_ISA_AVX2 && pf_cpu_has_avx512vnni();
    c->n_threads = pf_pool_n_threads(c->pool);
    *out = c;
    return PF_OK;
}

void pf_compute_free(pf_compute *c) {
    if (c == NULL) return;
    pf_pool_free(c->pool);
    free(c->scratch);
    free(c->work);
    free(c);
}

pf_pool *pf_compute_pool(pf_compute *c) { return c ? c->pool : NULL; }
const pf_kernels *pf_compute_kernels(const pf_compute *c) { return c ? c->k : NULL; }
const char *pf_compute_isa_name(const pf_compute *c) { return c == NULL ? "none" : c->vnni ? "avx2+vnni" : c->k->name; }
void *pf_compute_scratch(pf_compute *c, size_t bytes) { return c ? grow(&c->scratch, &c->scratch_cap, bytes) : NULL; }

/* ---- parallel for over [0, n) in chunks claimed through an atomic counter ------------------ */

typedef void (*range_fn)(void *ctx, int64_t i0, int64_t i1, int ith);

typedef struct par_for {
    atomic_llong next;
    int64_t n, chunk;
    range_fn body;
    void *ctx;
} par_for;

static void par_for_task(void *vctx, int ith, int nth) {
    (void)nth;
    par_for *pf = vctx;
    for (;;) {
        int64_t i0 = (int64_t)atomic_fetch_add_explicit(&pf->next, pf->chunk, memory_order_relaxed);
        if (i0 >= pf->n) break;
        int64_t i1 = i0 + pf->chunk < pf->n ? i0 + pf->chunk : pf->n;
        pf->body(pf->ctx, i0, i1, ith);
    }
}

static void parallel_for(pf_compute *c, int64_t n, int64_t chunk, range_fn body, void *ctx) {
    if (chunk < 1) chunk = 1;
    if (n <= chunk || c->n_threads == 1) {
        /* Bodies size per-thread buffers for one chunk: never hand them more. */
        for (int64_t i0 = 0; i0 < n; i0 += chunk) body(ctx, i0, i0 + chunk < n ? i0 + chunk : n, 0);
        return;
    }
    par_for pf = {.n = n, .chunk = chunk, .body = body, .ctx = ctx};
    atomic_init(&pf.next, 0);
    pf_pool_run(c->pool, par_for_task, &pf);
}

/* ---- pf_matmul ----------------------------------------------------------------------------- */

#define MM_TOK_TILE 4         /* tokens per inner step of the quantized path          */
#define MM_CHUNK_BYTES 32768  /* weight bytes per chunk when several tokens share it  */
#define MM_FLOAT_BLOCK 65536  /* f32 bytes of converted weight rows per thread (GEMM) */

typedef struct mm_ctx {
    pf_vec_dot_fn vd;
    const uint8_t *w;
    size_t wrow;        /* bytes per weight row                        */
    const uint8_t *xq;  /* activations in vec_dot_type (or f32)         */
    size_t xrow;        /* bytes per activation row                     */
    int64_t n_in, n_out, n_tok;
    float *y;
    /* quantization step */
    pf_from_float_fn quant;
    const float *x;
    /* prepared-activation kernel (AVX2 Q4_0 / Q8_0), NULL otherwise */
    pf_dot_pre_fn pre_dot;
    float *pre;         /* per token: pre_stride floats                */
    int64_t pre_stride;
    /* register-tiled quantized GEMM (AVX2, n_tok >= 2), NULL otherwise */
    pf_qgemm_fn qgemm;
    /* float matvec over 4 rows at a time (AVX2 f32 / f16 / bf16, one token), NULL otherwise */
    pf_matvec4_fn mv4;
    /* float GEMM path */
    pf_to_float_fn conv; /* NULL: weights are f32 already          */
    float *tiles;        /* n_threads * tile_floats                */
    int64_t tile_floats;
} mm_ctx;

/* Quantizes activation rows [t0, t1) into xq. */
static void mm_quant_rows(void *vctx, int64_t t0, int64_t t1, int ith) {
    (void)ith;
    mm_ctx *m = vctx;
    for (int64_t t = t0; t < t1; t++) {
        void *q = (void *)(m->xq + (size_t)t * m->xrow);
        m->quant(m->x + t * m->n_in, q, m->n_in);
        if (m->pre_dot) pf_avx2_prep_q8_0(m->n_in, q, m->pre + t * m->pre_stride);
    }
}

/* Output rows [r0, r1) of every token with the vec_dot kernel: tokens in tiles of
 * MM_TOK_TILE, so the chunk's weight rows and the tile's activation rows stay in L1/L2. */
static void mm_dot_rows(void *vctx, int64_t r0, int64_t r1, int ith) {
    (void)ith;
    const mm_ctx *m = vctx;
    if (m->qgemm && m->n_tok >= 2) {
        /* PF_QGEMM_ROWS x PF_QGEMM_TOKS tiles (the kernel takes the smaller edge tiles too) */
        for (int64_t t0 = 0; t0 < m->n_tok; t0 += PF_QGEMM_TOKS) {
            int nt = (int)(m->n_tok - t0 < PF_QGEMM_TOKS ? m->n_tok - t0 : PF_QGEMM_TOKS);
            const uint8_t *yq = m->xq + (size_t)t0 * m->xrow;
            const float *pre = m->pre ? m->pre + t0 * m->pre_stride : NULL;
            for (int64_t r = r0; r < r1; r += PF_QGEMM_ROWS) {
                int nr = (int)(r1 - r < PF_QGEMM_ROWS ? r1 - r : PF_QGEMM_ROWS);
                m->qgemm(m->n_in, m->w + (size_t)r * m->wrow, m->wrow, yq, m->xrow, pre, m->pre_stride,
                         &m->y[t0 * m->n_out + r], m->n_out, nr, nt);
            }
        }
        return;
    }
    if (m->pre_dot) {
        for (int64_t t0 = 0; t0 < m->n_tok; t0 += MM_TOK_TILE) {
            int64_t t1 = t0 + MM_TOK_TILE < m->n_tok ? t0 + MM_TOK_TILE : m->n_tok;
            for (int64_t r = r0; r < r1; r++) {
                const uint8_t *wr = m->w + (size_t)r * m->wrow;
                for (int64_t t = t0; t < t1; t++)
                    m->pre_dot(m->n_in, &m->y[t * m->n_out + r], wr, m->xq + (size_t)t * m->xrow,
                               m->pre + t * m->pre_stride);
            }
        }
        return;
    }
    if (m->n_tok == 1) {
        int64_t r = r0;
        if (m->mv4)
            for (; r + 4 <= r1; r += 4) m->mv4(m->n_in, m->w + (size_t)r * m->wrow, m->wrow, m->x, &m->y[r]);
        for (; r < r1; r++) m->vd(m->n_in, &m->y[r], m->w + (size_t)r * m->wrow, m->xq);
        return;
    }
    for (int64_t t0 = 0; t0 < m->n_tok; t0 += MM_TOK_TILE) {
        int64_t t1 = t0 + MM_TOK_TILE < m->n_tok ? t0 + MM_TOK_TILE : m->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *wr = m->w + (size_t)r * m->wrow;
            for (int64_t t = t0; t < t1; t++)
                m->vd(m->n_in, &m->y[t * m->n_out + r], wr, m->xq + (size_t)t * m->xrow);
        }
    }
}

/* Output rows [r0, r1) for f32/f16/bf16 weights and several tokens: the rows are widened to
 * f32 into this thread's tile buffer (unless already f32), then 4-row x 3-token FMA tiles. */
static void mm_gemm_rows(void *vctx, int64_t r0, int64_t r1, int ith) {
    const mm_ctx *m = vctx;
    const int64_t nr = r1 - r0, n = m->n_in;
    const float *a;
    if (m->conv) {
        float *buf = m->tiles + (size_t)ith * (size_t)m->tile_floats;
        for (int64_t r = 0; r < nr; r++) m->conv(m->w + (size_t)(r0 + r) * m->wrow, buf + r * n, n);
        a = buf;
    } else {
        a = (const float *)(const void *)(m->w + (size_t)r0 * m->wrow);
    }
    const float *x = (const float *)(const void *)m->xq;
    for (int64_t t0 = 0; t0 < m->n_tok; t0 += PF_GEMM_TILE_TOKS) {
        int nt = (int)(m->n_tok - t0 < PF_GEMM_TILE_TOKS ? m->n_tok - t0 : PF_GEMM_TILE_TOKS);
        for (int64_t i = 0; i < nr; i += PF_GEMM_TILE_ROWS) {
            int rr = (int)(nr - i < PF_GEMM_TILE_ROWS ? nr - i : PF_GEMM_TILE_ROWS);
            pf_avx2_gemm_f32_tile(n, a + i * n, n, x + t0 * n, n, m->y + t0 * m->n_out + r0 + i, m->n_out, rr, nt);
        }
    }
}

static bool is_float_type(pf_type t) { return t == PF_TYPE_F32 || t == PF_TYPE_F16 || t == PF_TYPE_BF16; }

/* The register-tiled GEMM kernel for weight type t, if there is one (VNNI when c has it). */
static pf_qgemm_fn qgemm_kernel(const pf_compute *c, pf_type t) {
    if (c->k->isa != PF_ISA_AVX2) return NULL;
    switch (t) {
    case PF_TYPE_Q4_0: return c->vnni ? pf_vnni_qgemm_q4_0 : pf_avx2_qgemm_q4_0;
    case PF_TYPE_Q8_0: return c->vnni ? pf_vnni_qgemm_q8_0 : pf_avx2_qgemm_q8_0;
    case PF_TYPE_Q4_K: return pf_avx2_qgemm_q4_k;
    case PF_TYPE_Q5_K: return pf_avx2_qgemm_q5_k;
    case PF_TYPE_Q6_K: return pf_avx2_qgemm_q6_k;
    default: return NULL;
    }
}

/* The prepared-activation kernel for weight type t, if there is one (VNNI when c has it). */
static pf_dot_pre_fn pre_kernel(const pf_compute *c, pf_type t) {
    if (c->k->isa != PF_ISA_AVX2) return NULL;
    switch (t) {
    case PF_TYPE_Q4_0: return c->vnni ? pf_vnni_dot_q4_0_pre : pf_avx2_dot_q4_0_pre;
    case PF_TYPE_Q8_0: return c->vnni ? pf_vnni_dot_q8_0_pre : pf_avx2_dot_q8_0_pre;
    default: return NULL;
    }
}

int pf_matmul(pf_compute *c, const void *w, pf_type wtype, int64_t n_out, int64_t n_in, const float *x, int64_t n_tok,
              float *y, pf_error *err) {
    if (c == NULL || w == NULL || x == NULL || y == NULL)
        return pf_error_set(err, PF_ERR_ARG, "pf_matmul: NULL %s", c == NULL ? "compute context" : w == NULL ? "weights" : x == NULL ? "input" : "output");
    const pf_type_traits *tr = pf_type_get(wtype);
    if (tr == NULL) return pf_error_set(err, PF_ERR_UNSUPPORTED, "pf_matmul: unknown weight type id %d", (int)wtype);
    if (!tr->is_weight)
        return pf_error_set(err, PF_ERR_ARG, "pf_matmul: %s is an activation-only format, not a weight type", tr->name);
    if (n_in <= 0 || n_out < 0 || n_tok < 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_matmul: bad shape n_out=%lld n_in=%lld n_tok=%lld", (long long)n_out,
                            (long long)n_in, (long long)n_tok);
    if (n_in % tr->block_size != 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_matmul: n_in=%lld is not a multiple of the %s block size %lld",
                            (long long)n_in, tr->name, (long long)tr->block_size);
    if (n_in > INT64_MAX / 4 / (n_tok > 0 ? n_tok : 1) || n_out > INT64_MAX / 4 / (n_tok > 0 ? n_tok : 1))
        return pf_error_set(err, PF_ERR_ARG, "pf_matmul: shape too large");
    const pf_kernels *k = c->k;
    pf_vec_dot_fn vd = k->vec_dot[wtype] ? k->vec_dot[wtype] : tr->vec_dot;
    if (vd == NULL) return pf_error_set(err, PF_ERR_UNSUPPORTED, "pf_matmul: no %s kernel for %s", k->name, tr->name);
    if (n_out == 0 || n_tok == 0) return PF_OK;

    mm_ctx m = {.vd = vd, .w = w, .wrow = pf_row_size(wtype, n_in), .n_in = n_in, .n_out = n_out, .n_tok = n_tok,
                .y = y, .x = x};
    const bool gemm = is_float_type(wtype) && k->isa == PF_ISA_AVX2 && n_tok >= 2;
    if (k->isa == PF_ISA_AVX2 && n_tok == 1)
        m.mv4 = wtype == PF_TYPE_F32 ? pf_avx2_matvec4_f32
              : wtype == PF_TYPE_F16 ? pf_avx2_matvec4_f16
              : wtype == PF_TYPE_BF16 ? pf_avx2_matvec4_bf16 : NULL;
    int64_t block_rows = 0;
    size_t act_bytes = 0, pre_bytes = 0, tile_bytes = 0;
    const pf_type vdt = tr->vec_dot_type;
    if (vdt != PF_TYPE_F32) {
        const pf_type_traits *vt = pf_type_get(vdt);
        m.quant = k->quantize_row[vdt] ? k->quantize_row[vdt] : vt ? vt->from_float : NULL;
        if (m.quant == NULL)
            return pf_error_set(err, PF_ERR_UNSUPPORTED, "pf_matmul: no quantizer for %s activations", pf_type_name(vdt));
        m.xrow = pf_row_size(vdt, n_in);
        if (m.xrow == 0)
            return pf_error_set(err, PF_ERR_ARG, "pf_matmul: n_in=%lld is not whole %s blocks", (long long)n_in,
                                pf_type_name(vdt));
        act_bytes = ((size_t)n_tok * m.xrow + 63) & ~(size_t)63;
        m.pre_dot = pre_kernel(c, wtype);
        /* The GEMM kernels work in tiles of PF_QGEMM_TOKS tokens: 2-3 tokens would pay for a
         * whole tile, which is slower than the prepared-activation dot per token (Q4_0 on
         * phi3-mini, 2 threads: 2 tokens 145 vs 220 ms, 3 tokens 210 vs 245 ms, 5 tokens 335 vs
         * 315 ms). Short batches are speculative decoding's verification passes. */
        if (n_tok >= (m.pre_dot ? PF_QGEMM_TOKS : 2)) m.qgemm = qgemm_kernel(c, wtype);
        if (m.pre_dot) {
            m.pre_stride = 2 * (n_in / QK8_0);
            pre_bytes = ((size_t)(n_tok * m.pre_stride) * sizeof(float) + 63) & ~(size_t)63;
        }
    } else {
        m.xq = (const uint8_t *)x;
        m.xrow = (size_t)n_in * sizeof(float);
    }
    if (gemm) {
        /* rows widened per chunk: a multiple of the tile height, about MM_FLOAT_BLOCK bytes */
        block_rows = MM_FLOAT_BLOCK / (n_in * (int64_t)sizeof(float));
        block_rows = block_rows < PF_GEMM_TILE_ROWS ? PF_GEMM_TILE_ROWS : block_rows / PF_GEMM_TILE_ROWS * PF_GEMM_TILE_ROWS;
        if (wtype != PF_TYPE_F32) {
            m.conv = k->to_float[wtype] ? k->to_float[wtype] : tr->to_float;
            m.tile_floats = (block_rows * n_in + 15) & ~(int64_t)15;
            tile_bytes = (size_t)c->n_threads * (size_t)m.tile_floats * sizeof(float);
        }
    }
    const size_t work_bytes = act_bytes + pre_bytes + tile_bytes;
    if (work_bytes > 0) {
        uint8_t *work = grow(&c->work, &c->work_cap, work_bytes);
        if (work == NULL)
            return pf_error_set(err, PF_ERR_NOMEM, "pf_matmul: out of memory for %zu bytes of scratch", work_bytes);
        if (act_bytes) m.xq = work;
        if (pre_bytes) m.pre = (float *)(void *)(work + act_bytes);
        if (tile_bytes) m.tiles = (float *)(void *)(work + act_bytes + pre_bytes);
    }

    /* 1. activations -> vec_dot_type, once */
    if (m.quant) {
        if (n_tok * n_in >= 65536 && n_tok > 1) parallel_for(c, n_tok, 1, mm_quant_rows, &m);
        else mm_quant_rows(&m, 0, n_tok, 0);
    }
    /* 2. rows of W across threads */
    const int nth = c->n_threads;
    if (gemm) {
        parallel_for(c, n_out, block_rows, mm_gemm_rows, &m);
    } else if (n_tok == 1) {
        /* matvec: ~16 chunks per thread for balance, each long enough to stream */
        int64_t chunk = (n_out + nth * 16 - 1) / (nth * 16);
        parallel_for(c, n_out, chunk < 16 ? 16 : chunk, mm_dot_rows, &m);
    } else {
        int64_t chunk = (int64_t)(MM_CHUNK_BYTES / m.wrow);
        int64_t fair = (n_out + nth * 4 - 1) / (nth * 4);
        if (chunk > fair) chunk = fair;
        if (m.qgemm) chunk = (chunk + PF_QGEMM_ROWS - 1) / PF_QGEMM_ROWS * PF_QGEMM_ROWS; /* whole row tiles */
        parallel_for(c, n_out, chunk < 4 ? 4 : chunk, mm_dot_rows, &m);
    }
    return PF_OK;
}

/* ---- pf_dequantize / pf_quantize ----------------------------------------------------------- */

typedef struct conv_ctx {
    pf_to_float_fn to_float;
    pf_from_float_fn from_float;
    const uint8_t *q; /* quantized rows (source or destination) */
    uint8_t *qdst;
    const float *f;
    float *fdst;
    size_t qrow;
    int64_t ne0;
} conv_ctx;

static void dequant_rows(void *vctx, int64_t r0, int64_t r1, int ith) {
    (void)ith;
    const conv_ctx *cc = vctx;
    for (int64_t r = r0; r < r1; r++) cc->to_float(cc->q + (size_t)r * cc->qrow, cc->fdst + r * cc->ne0, cc->ne0);
}

static void quant_rows(void *vctx, int64_t r0, int64_t r1, int ith) {
    (void)ith;
    const conv_ctx *cc = vctx;
    for (int64_t r = r0; r < r1; r++) cc->from_float(cc->f + r * cc->ne0, cc->qdst + (size_t)r * cc->qrow, cc->ne0);
}

/* Shared argument checks: PF_OK and *out = the type's traits, or an error. */
static int check_conv(const char *fn, pf_compute *c, const void *a, const void *b, pf_type t, int64_t n_rows,
                      int64_t ne0, const pf_type_traits **out, pf_error *err) {
    if (c == NULL || a == NULL || b == NULL) return pf_error_set(err, PF_ERR_ARG, "%s: NULL argument", fn);
    const pf_type_traits *tr = pf_type_get(t);
    if (tr == NULL) return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: unknown type id %d", fn, (int)t);
    if (n_rows < 0 || ne0 <= 0 || ne0 % tr->block_size != 0)
        return pf_error_set(err, PF_ERR_ARG, "%s: bad shape n_rows=%lld ne0=%lld (%s needs ne0 a multiple of %lld)",
                            fn, (long long)n_rows, (long long)ne0, tr->name, (long long)tr->block_size);
    *out = tr;
    return PF_OK;
}

static int64_t conv_chunk(const pf_compute *c, int64_t n_rows, int64_t ne0) {
    int64_t chunk = (n_rows + c->n_threads * 8 - 1) / (c->n_threads * 8);
    int64_t min_rows = 16384 / ne0; /* not less than ~16K elements per chunk */
    return chunk < min_rows ? (min_rows < 1 ? 1 : min_rows) : chunk;
}

int pf_dequantize(pf_compute *c, const void *src, pf_type t, int64_t n_rows, int64_t ne0, float *dst, pf_error *err) {
    const pf_type_traits *tr = NULL;
    int rc = check_conv("pf_dequantize", c, src, dst, t, n_rows, ne0, &tr, err);
    if (rc != PF_OK) return rc;
    conv_ctx cc = {.to_float = c->k->to_float[t] ? c->k->to_float[t] : tr->to_float, .q = src, .fdst = dst,
                   .qrow = pf_row_size(t, ne0), .ne0 = ne0};
    if (cc.to_float == NULL) return pf_error_set(err, PF_ERR_UNSUPPORTED, "pf_dequantize: no dequantizer for %s", tr->name);
    parallel_for(c, n_rows, conv_chunk(c, n_rows, ne0), dequant_rows, &cc);
    return PF_OK;
}

int pf_quantize(pf_compute *c, const float *src, pf_type t, int64_t n_rows, int64_t ne0, void *dst, pf_error *err) {
    const pf_type_traits *tr = NULL;
    int rc = check_conv("pf_quantize", c, src, dst, t, n_rows, ne0, &tr, err);
    if (rc != PF_OK) return rc;
    if (tr->from_float == NULL)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "pf_quantize: no quantizer for %s", tr->name);
    conv_ctx cc = {.from_float = tr->from_float, .f = src, .qdst = dst, .qrow = pf_row_size(t, ne0), .ne0 = ne0};
    parallel_for(c, n_rows, conv_chunk(c, n_rows, ne0), quant_rows, &cc);
    return PF_OK;
}

/* ---- pf_compute_parallel ------------------------------------------------------------------- */

typedef struct split_job {
    pf_range_fn fn;
    void *arg;
    int64_t n;
} split_job;

static void split_task(void *vjob, int ith, int nth) {
    const split_job *job = vjob;
    const int64_t chunk = (job->n + nth - 1) / nth, i0 = (int64_t)ith * chunk;
    const int64_t i1 = i0 + chunk < job->n ? i0 + chunk : job->n;
    if (i0 < i1) job->fn(job->arg, i0, i1);
}

void pf_compute_parallel(pf_compute *c, int64_t n, int64_t min_par, pf_range_fn fn, void *arg) {
    if (n < min_par || c->n_threads == 1) {
        fn(arg, 0, n);
        return;
    }
    split_job job = {fn, arg, n};
    pf_pool_run(c->pool, split_task, &job);
}
