/* Trainer ops: every backward against central finite differences of a double-precision
 * reference forward written here, independently of src/train. For an op y = f(x) and a random
 * upstream gradient w, the scalar L(x) = Σ w ⊙ f(x) has dL/dx = the op's backward applied to
 * w; each dL/dx_i is compared with (L(x + h e_i) − L(x − h e_i)) / 2h (h = 1e-4, in double).
 * Shapes are small and include GQA (4 query heads over 2 kv heads), packed rows (two
 * segments), LongRoPE factors with a magnitude factor, and quantized weights for dx = g·W. */
#include <math.h>

#include "testing.h"
#include "train/train_internal.h"

#define H 1e-4

static pf_test_rng g_rng = {0x5eed1234abcdull};

static void fill(float *x, int64_t n, float amp) {
    for (int64_t i = 0; i < n; i++) x[i] = amp * pf_test_uniform(&g_rng);
}

/* worst |a − b| / (max|b| + tiny) over n values */
static double rel_err(const float *a, const double *b, int64_t n) {
    double mx = 0.0, big = 1e-12;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)a[i] - b[i]));
    return mx / big;
}

/* A reference forward: y = f(x) in double, over a parameter block. */
typedef void (*ref_fn)(const void *ctx, const double *x, double *y);

/* Σ w ⊙ f(x) */
static double ref_loss(ref_fn f, const void *ctx, const double *x, const double *w, double *y, int64_t ny) {
    f(ctx, x, y);
    double s = 0.0;
    for (int64_t i = 0; i < ny; i++) s += w[i] * y[i];
    return s;
}

/* Central differences of Σ w ⊙ f over x[0..nx) into g. */
static void fd_grad(ref_fn f, const void *ctx, const float *xf, int64_t nx, const float *wf, int64_t ny, double *g) {
    double *x = malloc((size_t)nx * sizeof *x), *w = malloc((size_t)ny * sizeof *w), *y = malloc((size_t)ny * sizeof *y);
    for (int64_t i = 0; i < nx; i++) x[i] = xf[i];
    for (int64_t i = 0; i < ny; i++) w[i] = wf[i];
    for (int64_t i = 0; i < nx; i++) {
        const double x0 = x[i];
        x[i] = x0 + H;
        const double lp = ref_loss(f, ctx, x, w, y, ny);
        x[i] = x0 - H;
        const double lm = ref_loss(f, ctx, x, w, y, ny);
        x[i] = x0;
        g[i] = (lp - lm) / (2 * H);
    }
    free(x), free(w), free(y);
}

static void ref_eval(ref_fn f, const void *ctx, const float *xf, int64_t nx, double *y) {
    double *x = malloc((size_t)nx * sizeof *x);
    for (int64_t i = 0; i < nx; i++) x[i] = xf[i];
    f(ctx, x, y);
    free(x);
}

/* ---- RMSNorm ------------------------------------------------------------------------------ */

typedef struct norm_ctx { const float *g; int64_t n, dim; double eps; } norm_ctx;

static void ref_norm(const void *vc, const double *x, double *y) {
    const norm_ctx *c = vc;
    for (int64_t t = 0; t < c->n; t++) {
        double ss = 0;
        for (int64_t i = 0; i < c->dim; i++) ss += x[t * c->dim + i] * x[t * c->dim + i];
        const double r = 1.0 / sqrt(ss / (double)c->dim + c->eps);
        for (int64_t i = 0; i < c->dim; i++) y[t * c->dim + i] = x[t * c->dim + i] * r * c->g[i];
    }
}

/* the same norm as a function of its weight g (x fixed) */
typedef struct norm_g_ctx { const float *x; int64_t n, dim; double eps; } norm_g_ctx;

static void ref_norm_g(const void *vc, const double *g, double *y) {
    const norm_g_ctx *c = vc;
    for (int64_t t = 0; t < c->n; t++) {
        double ss = 0;
        for (int64_t i = 0; i < c->dim; i++) ss += (double)c->x[t * c->dim + i] * c->x[t * c->dim + i];
        const double r = 1.0 / sqrt(ss / (double)c->dim + c->eps);
        for (int64_t i = 0; i < c->dim; i++) y[t * c->dim + i] = c->x[t * c->dim + i] * r * g[i];
    }
}

static void test_rmsnorm(pf_test *T, pf_compute *c) {
    enum { N = 3, D = 24 };
    float x[N * D], g[D], w[N * D], y[N * D], r[N], dx[N * D] = {0};
    double yr[N * D], gr[N * D];
    fill(x, N * D, 2.0f), fill(g, D, 1.5f), fill(w, N * D, 1.0f);
    norm_ctx nc = {g, N, D, 1e-5};
    pf_train_rmsnorm_fwd(c, x, g, N, D, 1e-5f, y, r);
    ref_eval(ref_norm, &nc, x, N * D, yr);
    CHECK(T, rel_err(y, yr, N * D) < 1e-6, "rmsnorm fwd rel %g", rel_err(y, yr, N * D));
    pf_train_rmsnorm_bwd(c, x, g, r, w, N, D, dx, NULL);
    fd_grad(ref_norm, &nc, x, N * D, w, N * D, gr);
    CHECK(T, rel_err(dx, gr, N * D) < 1e-5, "rmsnorm bwd vs finite differences: rel %g", rel_err(dx, gr, N * D));
    /* the weight gradient (full fine-tuning): dg_i = Σ_t dy_ti x_ti r_t, accumulated onto dg */
    float dg[D], dx2[N * D] = {0};
    double ggr[D];
    for (int64_t i = 0; i < D; i++) dg[i] = 0.25f;
    pf_train_rmsnorm_bwd(c, x, g, r, w, N, D, dx2, dg);
    for (int64_t i = 0; i < D; i++) dg[i] -= 0.25f;
    norm_g_ctx gc = {x, N, D, 1e-5};
    fd_grad(ref_norm_g, &gc, g, D, w, N * D, ggr);
    CHECK(T, rel_err(dg, ggr, D) < 1e-5, "rmsnorm weight gradient vs finite differences: rel %g", rel_err(dg, ggr, D));
    CHECK(T, !memcmp(dx, dx2, sizeof dx), "dx unchanged when dg is asked for too");
}

/* ---- RoPE (LongRoPE factors, magnitude m) ------------------------------------------------- */

typedef struct rope_ctx { const pf_model_hparams *hp; const float *ff; const int32_t *pos; int64_t n, stride; } rope_ctx;

static void ref_rope(const void *vc, const double *x, double *y) {
    const rope_ctx *c = vc;
    const pf_model_hparams *hp = c->hp;
    const int64_t d = hp->head_dim, half = hp->n_rot / 2, nh = hp->n_head + hp->n_head_kv;
    for (int64_t i = 0; i < c->n * c->stride; i++) y[i] = x[i];
    for (int64_t t = 0; t < c->n; t++)
        for (int64_t h = 0; h < nh; h++)
            for (int64_t i = 0; i < half; i++) {
                const double f = pow(hp->rope_theta, -2.0 * (double)i / (double)hp->n_rot) / c->ff[i];
                const double a = c->pos[t] * f, m = hp->rope_attn_factor;
                const int64_t o = t * c->stride + h * d;
                y[o + i] = m * (x[o + i] * cos(a) - x[o + i + half] * sin(a));
                y[o + i + half] = m * (x[o + i + half] * cos(a) + x[o + i] * sin(a));
            }
}

static pf_model_hparams small_hp(void) {
    pf_model_hparams hp = {0};
    hp.n_embd = 32, hp.n_head = 4, hp.n_head_kv = 2, hp.head_dim = 8, hp.n_rot = 8, hp.n_ff = 16;
    hp.rope_theta = 10000.0f, hp.rope_attn_factor = 1.19f, hp.rms_eps = 1e-5f;
    return hp;
}

static void test_rope(pf_test *T, pf_compute *c) {
    const pf_model_hparams hp = small_hp();
    enum { N = 5 };
    const int64_t stride = hp.n_embd + 2 * hp.n_head_kv * hp.head_dim; /* the V part passes through */
    const float ff[4] = {1.0f, 1.7f, 3.2f, 11.0f};                       /* LongRoPE factors */
    const int32_t pos[N] = {0, 1, 2, 0, 7};
    float table[8 * 8], x[N * 64], w[N * 64], y[N * 64], dx[N * 64];
    double yr[N * 64], gr[N * 64];
    pf_train_rope_table(&hp, ff, 8, table);
    fill(x, N * stride, 1.0f), fill(w, N * stride, 1.0f);
    rope_ctx rc = {&hp, ff, pos, N, stride};
    memcpy(y, x, sizeof y);
    pf_train_rope(c, &hp, table, pos, N, y, stride, false);
    ref_eval(ref_rope, &rc, x, N * stride, yr);
    CHECK(T, rel_err(y, yr, N * stride) < 1e-6, "rope fwd rel %g", rel_err(y, yr, N * stride));
    memcpy(dx, w, sizeof dx);
    pf_train_rope(c, &hp, table, pos, N, dx, stride, true);
    fd_grad(ref_rope, &rc, x, N * stride, w, N * stride, gr);
    CHECK(T, rel_err(dx, gr, N * stride) < 1e-5, "rope bwd vs finite differences: rel %g", rel_err(dx, gr, N * stride));
}

/* ---- attention (GQA, two packed segments) ------------------------------------------------- */

typedef struct attn_ctx { const pf_model_hparams *hp; const int32_t *seg; int64_t n; } attn_ctx;

static void ref_attn(const void *vc, const double *qkv, double *out) {
    const attn_ctx *c = vc;
    const pf_model_hparams *hp = c->hp;
    const int64_t d = hp->head_dim, stride = hp->n_embd + 2 * hp->n_head_kv * d, grp = hp->n_head / hp->n_head_kv;
    double s[64];
    for (int64_t h = 0; h < hp->n_head; h++)
        for (int64_t t = 0; t < c->n; t++) {
            const int64_t g = h / grp;
            double mx = -1e300, sum = 0;
            for (int64_t j = 0; j <= t; j++) {
                s[j] = -1e300;
                if (c->seg[j] != c->seg[t]) continue;
                double dot = 0;
                for (int64_t i = 0; i < d; i++) dot += qkv[t * stride + h * d + i] * qkv[j * stride + hp->n_embd + g * d + i];
                s[j] = dot / sqrt((double)d);
                mx = fmax(mx, s[j]);
            }
            for (int64_t j = 0; j <= t; j++) sum += c->seg[j] == c->seg[t] ? exp(s[j] - mx) : 0.0;
            for (int64_t i = 0; i < d; i++) {
                double o = 0;
                for (int64_t j = 0; j <= t; j++)
                    if (c->seg[j] == c->seg[t])
                        o += exp(s[j] - mx) / sum * qkv[j * stride + hp->n_embd + hp->n_head_kv * d + g * d + i];
                out[t * hp->n_head * d + h * d + i] = o;
            }
        }
}

static void test_attention(pf_test *T, pf_compute *c) {
    const pf_model_hparams hp = small_hp();
    enum { N = 7 };
    const int64_t stride = hp.n_embd + 2 * hp.n_head_kv * hp.head_dim, no = hp.n_head * hp.head_dim;
    const int32_t seg[N] = {0, 0, 0, 1, 1, 1, 1};
    float qkv[N * 64], w[N * 32], out[N * 32], lse[4 * N], dqkv[N * 64];
    double outr[N * 32], gr[N * 64];
    fill(qkv, N * stride, 1.5f), fill(w, N * no, 1.0f);
    attn_ctx ac = {&hp, seg, N};
    pf_train_attn_fwd(c, &hp, qkv, seg, N, out, lse);
    ref_eval(ref_attn, &ac, qkv, N * stride, outr);
    CHECK(T, rel_err(out, outr, N * no) < 1e-5, "attention fwd rel %g", rel_err(out, outr, N * no));
    pf_train_attn_bwd(c, &hp, qkv, seg, out, lse, w, N, dqkv);
    fd_grad(ref_attn, &ac, qkv, N * stride, w, N * no, gr);
    CHECK(T, rel_err(dqkv, gr, N * stride) < 1e-5, "attention bwd vs finite differences: rel %g",
          rel_err(dqkv, gr, N * stride));
    /* the mask: query 3 (first of segment 1) sees only itself, so its output is its own V */
    const int64_t vo = hp.n_embd + hp.n_head_kv * hp.head_dim;
    CHECK(T, fabsf(out[3 * no + 0] - qkv[3 * stride + vo + 0]) < 1e-6f, "segment start attends to itself only");
}

/* ---- SwiGLU ------------------------------------------------------------------------------- */

typedef struct swiglu_ctx { int64_t n, nff; } swiglu_ctx;

static void ref_swiglu(const void *vc, const double *gu, double *a) {
    const swiglu_ctx *c = vc;
    for (int64_t t = 0; t < c->n; t++)
        for (int64_t i = 0; i < c->nff; i++) {
            const double g = gu[t * 2 * c->nff + i], u = gu[t * 2 * c->nff + c->nff + i];
            a[t * c->nff + i] = g / (1.0 + exp(-g)) * u;
        }
}

static void test_swiglu(pf_test *T, pf_compute *c) {
    enum { N = 3, F = 10 };
    float gu[N * 2 * F], w[N * F], a[N * F], dgu[N * 2 * F];
    double ar[N * F], gr[N * 2 * F];
    fill(gu, N * 2 * F, 4.0f), fill(w, N * F, 1.0f);
    swiglu_ctx sc = {N, F};
    pf_train_swiglu_fwd(c, gu, N, F, a);
    ref_eval(ref_swiglu, &sc, gu, N * 2 * F, ar);
    CHECK(T, rel_err(a, ar, N * F) < 1e-6, "swiglu fwd rel %g", rel_err(a, ar, N * F));
    pf_train_swiglu_bwd(c, gu, w, N, F, dgu);
    fd_grad(ref_swiglu, &sc, gu, N * 2 * F, w, N * F, gr);
    CHECK(T, rel_err(dgu, gr, N * 2 * F) < 1e-5, "swiglu bwd vs finite differences: rel %g", rel_err(dgu, gr, N * 2 * F));
}

/* ---- cross-entropy ------------------------------------------------------------------------ */

typedef struct xent_ctx { const int32_t *y; int64_t n, V; } xent_ctx;

static void ref_xent(const void *vc, const double *l, double *loss) {
    const xent_ctx *c = vc;
    double s = 0;
    for (int64_t t = 0; t < c->n; t++) {
        double mx = -1e300, sum = 0;
        for (int64_t i = 0; i < c->V; i++) mx = fmax(mx, l[t * c->V + i]);
        for (int64_t i = 0; i < c->V; i++) sum += exp(l[t * c->V + i] - mx);
        s += mx + log(sum) - l[t * c->V + c->y[t]];
    }
    loss[0] = s;
}

static void test_xent(pf_test *T, pf_compute *c) {
    enum { N = 70, V = 37 }; /* more than one chunk of 64 rows */
    int32_t y[N];
    float *l = malloc(N * V * sizeof *l), *dl = malloc(N * V * sizeof *dl), w = 1.0f;
    double *gr = malloc(N * V * sizeof *gr), lr;
    fill(l, N * V, 5.0f);
    for (int i = 0; i < N; i++) y[i] = (int32_t)(pf_test_next(&g_rng) % V);
    memcpy(dl, l, N * V * sizeof *l);
    xent_ctx xc = {y, N, V};
    const double loss = pf_train_xent(c, dl, y, N, V, 0.25f);
    ref_eval(ref_xent, &xc, l, N * V, &lr);
    CHECK(T, fabs(loss - lr) < 1e-5 * fabs(lr), "xent loss %.9g vs %.9g", loss, lr);
    fd_grad(ref_xent, &xc, l, N * V, &w, 1, gr);
    for (int i = 0; i < N * V; i++) gr[i] *= 0.25;
    CHECK(T, rel_err(dl, gr, N * V) < 1e-5, "xent bwd vs finite differences: rel %g", rel_err(dl, gr, N * V));
    free(l), free(dl), free(gr);
}

/* ---- dx = g·W over GGUF weight types; dW += α gᵀx ----------------------------------------- */

static void test_gw(pf_test *T, pf_compute *c, pf_compute *c1, pf_type type, int64_t n_out, int64_t n_in, int64_t n) {
    pf_error e = {0};
    float *wf = malloc((size_t)(n_out * n_in) * sizeof *wf), *wd = malloc((size_t)(n_out * n_in) * sizeof *wd);
    float *g = malloc((size_t)(n * n_out) * sizeof *g), *dx = malloc((size_t)(n * n_in) * sizeof *dx);
    float *dx1 = malloc((size_t)(n * n_in) * sizeof *dx1);
    double *ref = malloc((size_t)(n * n_in) * sizeof *ref);
    void *wq = malloc(pf_row_size(type, n_in) * (size_t)n_out);
    float *work = malloc(4 * PF_TRAIN_PANEL * sizeof *work);
    fill(wf, n_out * n_in, 1.0f), fill(g, n * n_out, 1.0f);
    g[3] = 0.0f; /* a zero entry is skipped */
    pf_quantize(c, wf, type, n_out, n_in, wq, &e);
    pf_dequantize(c, wq, type, n_out, n_in, wd, &e); /* the exact values the kernel must use */
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < n_in; j++) {
            double s = 0;
            for (int64_t o = 0; o < n_out; o++) s += (double)g[t * n_out + o] * wd[o * n_in + j];
            ref[t * n_in + j] = s;
        }
    fill(dx, n * n_in, 1.0f);
    pf_train_matmul_gw(c, wq, type, n_out, n_in, g, n, dx, false, work);
    CHECK(T, rel_err(dx, ref, n * n_in) < 1e-5, "g·W %s %lldx%lld n=%lld rel %g", pf_type_name(type),
          (long long)n_out, (long long)n_in, (long long)n, rel_err(dx, ref, n * n_in));
    pf_train_matmul_gw(c1, wq, type, n_out, n_in, g, n, dx1, false, work); /* 1 thread, scalar */
    CHECK(T, rel_err(dx1, ref, n * n_in) < 1e-5, "g·W %s scalar 1 thread", pf_type_name(type));
    for (int64_t i = 0; i < n * n_in; i++) dx1[i] = 0.5f;
    pf_train_matmul_gw(c, wq, type, n_out, n_in, g, n, dx1, true, work); /* accumulate */
    double worst = 0;
    for (int64_t i = 0; i < n * n_in; i++) worst = fmax(worst, fabs(dx1[i] - 0.5f - dx[i]));
    CHECK(T, worst < 1e-5, "g·W accumulate adds (%g)", worst);
    free(wf), free(wd), free(g), free(dx), free(dx1), free(ref), free(wq), free(work);
}

/* dW += α gᵀx against a double-precision sum: the threaded kernel (AVX2 tiles where the CPU has
 * them; O = 37 rows: two 16-row items plus an edge of 5, of which 4 tile and 1 goes scalar; I = 300
 * columns: a 256 chunk and an edge of 44 = 32 tiled + 12 scalar) and the 1-thread scalar one. */
static void test_gtx(pf_test *T, pf_compute *c, pf_compute *c1) {
    enum { N = 9, O = 37, I = 300 };
    static float g[N * O], x[N * I], dw[O * I], dw1[O * I];
    static double ref[O * I];
    fill(g, N * O, 1.0f), fill(x, N * I, 1.0f);
    g[2 * O + 6] = 0.0f; /* a zero entry (the scalar kernel skips it) */
    for (int i = 0; i < O * I; i++) dw[i] = dw1[i] = 1.0f;
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double s = 0;
            for (int t = 0; t < N; t++) s += (double)g[t * O + o] * x[t * I + i];
            ref[o * I + i] = 1.0 + 0.5 * s;
        }
    pf_train_matmul_gtx(c, g, O, x, I, N, 0.5f, dw);
    CHECK(T, rel_err(dw, ref, O * I) < 1e-6, "dW += α gᵀx rel %g", rel_err(dw, ref, O * I));
    pf_train_matmul_gtx(c1, g, O, x, I, N, 0.5f, dw1);
    CHECK(T, rel_err(dw1, ref, O * I) < 1e-6, "dW += α gᵀx scalar rel %g", rel_err(dw1, ref, O * I));
}

/* ---- dropout mask ------------------------------------------------------------------------- */

static void test_dropout_mask(pf_test *T) {
    const uint32_t thr = (uint32_t)(0.3 * 4294967296.0);
    int64_t kept = 0, same = 0;
    for (int64_t t = 0; t < 200; t++)
        for (int64_t i = 0; i < 500; i++) {
            const bool k = pf_train_keep(77, t, i, thr);
            kept += k;
            same += k == pf_train_keep(77, t, i, thr);
        }
    const double frac = (double)kept / 100000.0; /* binomial sd ≈ 0.0015 */
    CHECK(T, fabs(frac - 0.7) < 0.01, "dropout p=0.3 keeps %.4f", frac);
    CHECK(T, same == 100000, "mask is a function of (key, t, i)");
}

int main(void) {
    pf_test T = {0};
    pf_error e = {0};
    pf_compute *c = NULL, *c1 = NULL;
    if (pf_compute_create(2, PF_ISA_AUTO, &c, &e) != PF_OK || pf_compute_create(1, PF_ISA_SCALAR, &c1, &e) != PF_OK) {
        fprintf(stderr, "compute: %s\n", e.msg);
        return 1;
    }
    test_rmsnorm(&T, c);
    test_rope(&T, c);
    test_attention(&T, c);  /* AVX2 rows (head_dim 8) */
    test_attention(&T, c1); /* scalar rows */
    test_swiglu(&T, c);
    test_xent(&T, c);
    test_gw(&T, c, c1, PF_TYPE_F32, 70, 40, 5);
    test_gw(&T, c, c1, PF_TYPE_F16, 300, 96, 131); /* more than one token block */
    test_gw(&T, c, c1, PF_TYPE_Q8_0, 65, 512, 7);  /* two column chunks */
    test_gw(&T, c, c1, PF_TYPE_Q4_K, 33, 768, 6);
    test_gw(&T, c, c1, PF_TYPE_Q6_K, 17, 256, 3);
    test_gtx(&T, c, c1);
    test_dropout_mask(&T);
    pf_compute_free(c);
    pf_compute_free(c1);
    return TEST_REPORT(&T);
}
