/* Kernels: every AVX2 kernel against the scalar reference (vec_dot, activation quantizers,
 * dequantizers) on random data of odd sizes, and pf_matmul / pf_dequantize / pf_quantize
 * against naive double-precision references, with 1 and 2 threads and both kernel tables. */
#include <math.h>
#include <stdint.h>

#include "kernels/kernels_internal.h"
#include "testing.h"

static const pf_type k_weights[] = {PF_TYPE_F32,  PF_TYPE_F16,  PF_TYPE_BF16, PF_TYPE_Q4_0,  PF_TYPE_Q4_1,
                                    PF_TYPE_Q5_0, PF_TYPE_Q5_1, PF_TYPE_Q8_0, PF_TYPE_IQ4_NL, PF_TYPE_Q2_K,
                                    PF_TYPE_Q3_K, PF_TYPE_Q4_K, PF_TYPE_Q5_K, PF_TYPE_Q6_K};
#define N_WEIGHTS (sizeof k_weights / sizeof k_weights[0])

static pf_test T;
static pf_test_rng R = {0x9E3779B97F4A7C15ull};

/* Gaussian data with a per-row scale and a few outliers, as activations and weights look. */
static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float v = pf_test_gauss(&R) * scale;
        if (pf_test_next(&R) % 97 == 0) v *= 8.0f;
        x[i] = v;
    }
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* Sizes (elements) for vec_dot: 1, 3, 7 blocks and a long row (an odd block count for the
 * block types, a tail that is not a multiple of 8 / 32 for the float types). */
static int sizes_for(pf_type t, int64_t *out) {
    int64_t bs = pf_type_get(t)->block_size;
    if (bs == 1) {
        const int64_t s[] = {1, 3, 7, 8, 31, 33, 1003};
        memcpy(out, s, sizeof s);
        return 7;
    }
    out[0] = bs;
    out[1] = 3 * bs;
    out[2] = 7 * bs;
    out[3] = bs == 32 ? 33 * bs : 5 * bs; /* 1056 / 1280 elements */
    return 4;
}

/* Quantizes n f32 values to type t with the reference quantizer into a fresh buffer. */
static void *quant_ref(pf_type t, const float *x, int64_t n) {
    const pf_type_traits *tr = pf_type_get(t);
    void *q = xmalloc(pf_row_size(t, n));
    tr->from_float(x, q, n);
    return q;
}

/* ---- vec_dot: AVX2 vs scalar on the same quantized data ---------------------------------- */
static void test_vec_dot(const pf_kernels *sc, const pf_kernels *av) {
    for (size_t w = 0; w < N_WEIGHTS; w++) {
        pf_type t = k_weights[w];
        const pf_type_traits *tr = pf_type_get(t);
        pf_type vt = tr->vec_dot_type;
        int64_t sizes[8];
        int ns = sizes_for(t, sizes);
        int bad = 0, total = 0;
        double worst = 0.0;
        for (int si = 0; si < ns; si++) {
            int64_t n = sizes[si];
            for (int rep = 0; rep < 3; rep++) {
                float *x = xmalloc((size_t)n * 4), *y = xmalloc((size_t)n * 4), *xd = xmalloc((size_t)n * 4),
                      *yd = xmalloc((size_t)n * 4);
                fill(x, n, 0.05f + (float)rep);
                fill(y, n, 1.0f + (float)rep * 3.0f);
                void *qx = quant_ref(t, x, n);
                void *qy = vt == PF_TYPE_F32 ? NULL : quant_ref(vt, y, n);
                const void *yy = qy ? qy : (const void *)y;
                /* magnitude scale for the tolerance: sum |x_i y_i| of the stored values */
                tr->to_float(qx, xd, n);
                if (qy) pf_type_get(vt)->to_float(qy, yd, n);
                else memcpy(yd, y, (size_t)n * 4);
                double mag = 0.0;
                for (int64_t i = 0; i < n; i++) mag += fabs((double)xd[i] * yd[i]);
                float s_ref = NAN, s_avx = NAN;
                sc->vec_dot[t](n, &s_ref, qx, yy);
                av->vec_dot[t](n, &s_avx, qx, yy);
                double diff = fabs((double)s_ref - s_avx), tol = 2e-6 * mag + 1e-30;
                if (!(diff <= tol)) {
                    if (bad < 3)
                        fprintf(stderr, "  %s n=%lld: scalar %.9g avx2 %.9g (mag %.3g)\n", tr->name, (long long)n,
                                s_ref, s_avx, mag);
                    bad++;
                }
                if (mag > 0 && diff / mag > worst) worst = diff / mag;
                total++;
                free(x); free(y); free(xd); free(yd); free(qx); free(qy);
            }
        }
        CHECK(&T, bad == 0, "vec_dot %s: %d of %d differ (worst rel %.3g)", tr->name, bad, total, worst);
    }
}

/* ---- prepared-activation kernels (pf_matmul's AVX2 Q4_0 / Q8_0 path) vs vec_dot ------------ */
static void test_pre_kernels(const pf_kernels *av, bool vnni) {
    const pf_type types[2] = {PF_TYPE_Q4_0, PF_TYPE_Q8_0};
    const pf_dot_pre_fn fns[2] = {vnni ? pf_vnni_dot_q4_0_pre : pf_avx2_dot_q4_0_pre,
                                  vnni ? pf_vnni_dot_q8_0_pre : pf_avx2_dot_q8_0_pre};
    const int nbs[] = {1, 3, 7, 8, 9, 16, 17, 33, 257};
    for (int k = 0; k < 2; k++) {
        int bad = 0, total = 0;
        for (size_t si = 0; si < sizeof nbs / sizeof nbs[0]; si++) {
            int64_t n = 32 * nbs[si];
            float *x = xmalloc((size_t)n * 4), *y = xmalloc((size_t)n * 4), *pre = xmalloc((size_t)n / 16 * 4);
            fill(x, n, 0.1f);
            fill(y, n, 2.0f);
            void *qx = quant_ref(types[k], x, n), *qy = quant_ref(PF_TYPE_Q8_0, y, n);
            float *xd = xmalloc((size_t)n * 4), *yd = xmalloc((size_t)n * 4);
            pf_type_get(types[k])->to_float(qx, xd, n);
            pf_type_get(PF_TYPE_Q8_0)->to_float(qy, yd, n);
            double mag = 0.0;
            for (int64_t i = 0; i < n; i++) mag += fabs((double)xd[i] * yd[i]);
            pf_avx2_prep_q8_0(n, qy, pre);
            float a = NAN, b = NAN;
            av->vec_dot[types[k]](n, &a, qx, qy);
            fns[k](n, &b, qx, qy, pre);
            if (!(fabs((double)a - b) <= 2e-6 * mag + 1e-30)) {
                if (bad < 3) fprintf(stderr, "  pre %s n=%lld: %.9g vs %.9g\n", pf_type_name(types[k]), (long long)n, a, b);
                bad++;
            }
            total++;
            free(x); free(y); free(pre); free(qx); free(qy); free(xd); free(yd);
        }
        CHECK(&T, bad == 0, "prepared %s kernel %s: %d of %d differ from vec_dot", vnni ? "vnni" : "avx2",
              pf_type_name(types[k]), bad, total);
    }
}

/* ---- register-tiled quantized GEMM kernels (pf_matmul's AVX2 n_tok >= 2 path) vs vec_dot --
 * Every tile shape (nr = 1..PF_QGEMM_ROWS, nt = 1..PF_QGEMM_TOKS), on rows with only a tail
 * of blocks, with full groups of 8 and a tail, written with an output stride (ldo) != nr. */
static void test_qgemm(const pf_kernels *av, bool vnni) {
    const pf_type types[] = {PF_TYPE_Q4_0, PF_TYPE_Q8_0, PF_TYPE_Q4_K, PF_TYPE_Q5_K, PF_TYPE_Q6_K};
    const pf_qgemm_fn fns[] = {vnni ? pf_vnni_qgemm_q4_0 : pf_avx2_qgemm_q4_0,
                               vnni ? pf_vnni_qgemm_q8_0 : pf_avx2_qgemm_q8_0, pf_avx2_qgemm_q4_k, pf_avx2_qgemm_q5_k,
                               pf_avx2_qgemm_q6_k};
    for (int k = 0; k < (vnni ? 2 : 5); k++) {
        const pf_type t = types[k], vt = pf_type_get(t)->vec_dot_type;
        const bool k32 = pf_type_get(t)->block_size == 32;
        const int64_t sizes[] = {k32 ? 96 : 256, k32 ? 32 * 19 : 256 * 5, k32 ? 32 * 33 : 256 * 12};
        int bad = 0, total = 0;
        for (int si = 0; si < 3; si++) {
            const int64_t n = sizes[si], R_ = PF_QGEMM_ROWS, T_ = PF_QGEMM_TOKS, ldo = PF_QGEMM_ROWS + 3;
            const size_t wrow = pf_row_size(t, n), yrow = pf_row_size(vt, n);
            const int64_t ps = 2 * (n / 32);
            float *wf = xmalloc((size_t)(R_ * n) * 4), *xf = xmalloc((size_t)(T_ * n) * 4);
            float *wd = xmalloc((size_t)(R_ * n) * 4), *yd = xmalloc((size_t)(T_ * n) * 4);
            uint8_t *wq = xmalloc(wrow * (size_t)R_), *yq = xmalloc(yrow * (size_t)T_);
            float *pre = xmalloc((size_t)(T_ * ps) * 4), *out = xmalloc((size_t)(T_ * ldo) * 4);
            fill(wf, R_ * n, 0.05f);
            fill(xf, T_ * n, 1.5f);
            for (int64_t r = 0; r < R_; r++) {
                pf_type_get(t)->from_float(wf + r * n, wq + (size_t)r * wrow, n);
                pf_type_get(t)->to_float(wq + (size_t)r * wrow, wd + r * n, n);
            }
            for (int64_t j = 0; j < T_; j++) {
                av->quantize_row[vt](xf + j * n, yq + (size_t)j * yrow, n);
                pf_type_get(vt)->to_float(yq + (size_t)j * yrow, yd + j * n, n);
                if (k32) pf_avx2_prep_q8_0(n, yq + (size_t)j * yrow, pre + j * ps);
            }
            for (int nr = 1; nr <= R_; nr++) {
                for (int nt = 1; nt <= T_; nt++) {
                    for (int64_t i = 0; i < T_ * ldo; i++) out[i] = NAN;
                    fns[k](n, wq, wrow, yq, yrow, k32 ? pre : NULL, ps, out, ldo, nr, nt);
                    for (int64_t j = 0; j < T_; j++) {
                        for (int64_t r = 0; r < ldo; r++) {
                            const float got = out[j * ldo + r];
                            if (j >= nt || r >= nr) { /* outside the tile: untouched */
                                if (!isnan(got) && bad++ < 3) fprintf(stderr, "  qgemm %s wrote outside its tile\n", pf_type_name(t));
                                continue;
                            }
                            float want = NAN;
                            av->vec_dot[t](n, &want, wq + (size_t)r * wrow, yq + (size_t)j * yrow);
                            double mag = 0.0;
                            for (int64_t i = 0; i < n; i++) mag += fabs((double)wd[r * n + i] * yd[j * n + i]);
                            total++;
                            if (!(fabs((double)got - want) <= 2e-6 * mag + 1e-30) && bad++ < 3)
                                fprintf(stderr, "  qgemm %s n=%lld nr=%d nt=%d [%lld,%lld]: %.9g vs vec_dot %.9g\n",
                                        pf_type_name(t), (long long)n, nr, nt, (long long)j, (long long)r, got, want);
                        }
                    }
                }
            }
            free(wf); free(xf); free(wd); free(yd); free(wq); free(yq); free(pre); free(out);
        }
        CHECK(&T, bad == 0 && total > 0, "qgemm %s tile %s: %d of %d outputs differ from vec_dot", vnni ? "vnni" : "avx2",
              pf_type_name(t), bad, total);
    }
}

/* ---- activation quantizers: AVX2 bytes == reference bytes ----------------------------------- */

/* Blocks of hand-made cases: zeros, exact .5 ties (amax 127 gives id = 1), equal magnitudes of
 * both signs, huge values (fp16 saturation of d), NaN and infinity, denormals. */
static void fill_special(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = 0.0f; break;
        case 1: x[i] = (i % 32 == 0) ? 127.0f : (float)((int)(pf_test_next(&R) % 254) - 127) + 0.5f; break;
        case 2: x[i] = (i % 2 ? -1.0f : 1.0f) * (float)(1 + i % 5); break;
        case 3: x[i] = pf_test_gauss(&R) * 3e9f; break;
        case 4: x[i] = (i % 37 == 5) ? NAN : (i % 53 == 7) ? INFINITY : pf_test_gauss(&R); break;
        case 5: x[i] = pf_test_gauss(&R) * 1e-39f; break;
        default: x[i] = (i % 64 == 3) ? -2.0f : (i % 64 == 9 ? 2.0f : pf_test_uniform(&R)); break;
        }
    }
}

static void test_quantize_rows(const pf_kernels *sc, const pf_kernels *av) {
    const pf_type acts[] = {PF_TYPE_Q8_0, PF_TYPE_Q8_1, PF_TYPE_Q8_K};
    for (int a = 0; a < 3; a++) {
        pf_type t = acts[a];
        const pf_type_traits *tr = pf_type_get(t);
        CHECK(&T, sc->quantize_row[t] != NULL && av->quantize_row[t] != NULL, "%s quantizers present", tr->name);
        if (!sc->quantize_row[t] || !av->quantize_row[t]) continue;
        int bad = 0, total = 0;
        for (int kind = -1; kind < 7; kind++) {
            for (int nb = 1; nb <= 9; nb += 4) {
                int64_t n = nb * tr->block_size;
                float *x = xmalloc((size_t)n * 4);
                if (kind < 0) fill(x, n, 0.5f + (float)nb);
                else fill_special(x, n, kind);
                size_t rs = pf_row_size(t, n);
                uint8_t *q1 = xmalloc(rs), *q2 = xmalloc(rs);
                memset(q1, 0xAA, rs);
                memset(q2, 0x55, rs);
                sc->quantize_row[t](x, q1, n);
                av->quantize_row[t](x, q2, n);
                if (memcmp(q1, q2, rs) != 0) {
                    size_t at = 0;
                    while (q1[at] == q2[at]) at++;
                    if (bad < 3)
                        fprintf(stderr, "  %s kind %d n=%lld: first differing byte %zu (%02x vs %02x)\n", tr->name, kind,
                                (long long)n, at, q1[at], q2[at]);
                    bad++;
                }
                total++;
                free(x); free(q1); free(q2);
            }
        }
        CHECK(&T, bad == 0, "quantize_row %s: %d of %d rows differ from the reference", tr->name, bad, total);
    }
}

/* ---- dequantizers: bit-identical to the reference ------------------------------------------- */
static void test_to_float(const pf_kernels *sc, const pf_kernels *av) {
    for (size_t w = 0; w < N_WEIGHTS; w++) {
        pf_type t = k_weights[w];
        const pf_type_traits *tr = pf_type_get(t);
        int64_t n = tr->block_size == 1 ? 1003 : tr->block_size * 7;
        float *x = xmalloc((size_t)n * 4), *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
        fill(x, n, 2.0f);
        void *q = quant_ref(t, x, n);
        sc->to_float[t](q, a, n);
        av->to_float[t](q, b, n);
        CHECK(&T, memcmp(a, b, (size_t)n * 4) == 0, "to_float %s: AVX2 differs from the reference", tr->name);
        free(x); free(a); free(b); free(q);
    }
}

/* ---- pf_matmul --------------------------------------------------------------------------- */

/* Largest |x| over the activation block containing element i (0 for f32 activations). */
static double act_qerr(pf_type vt, const float *x, int64_t n, int64_t i) {
    if (vt == PF_TYPE_F32) return 0.0;
    int64_t bs = pf_type_get(vt)->block_size, b0 = i / bs * bs;
    double m = 0.0;
    for (int64_t j = b0; j < b0 + bs && j < n; j++) m = fmax(m, fabs(x[j]));
    return m / 254.0; /* half a quantization step, d = amax / 127 */
}

static void test_matmul_type(pf_compute *cs[3][2], pf_type t) {
    const pf_type_traits *tr = pf_type_get(t);
    pf_type vt = tr->vec_dot_type;
    /* 19 blocks of 32: two groups of 8 plus a tail for the prepared-activation kernels */
    const int64_t n_in = tr->block_size == 256 ? 768 : tr->block_size == 32 ? 608 : 100;
    /* 300 rows exceed one per-thread chunk of the float GEMM path (n_in 100) */
    const int64_t outs[] = {1, 5, 37, 300};
    const int64_t toks[] = {1, 2, 7, 17}; /* 7, 17: token tails of 3 and 1 after 4-token tiles */
    int bad_ref = 0, bad_self = 0, bad_rc = 0, total = 0;
    double worst = 0.0;
    for (int oi = 0; oi < 4; oi++) {
        int64_t n_out = outs[oi];
        float *wf = xmalloc((size_t)(n_out * n_in) * 4), *wd = xmalloc((size_t)(n_out * n_in) * 4);
        fill(wf, n_out * n_in, 0.02f);
        size_t rs = pf_row_size(t, n_in);
        uint8_t *wq = xmalloc(rs * (size_t)n_out);
        for (int64_t r = 0; r < n_out; r++) tr->from_float(wf + r * n_in, wq + r * rs, n_in);
        for (int64_t r = 0; r < n_out; r++) tr->to_float(wq + r * rs, wd + r * n_in, n_in);
        for (int ti = 0; ti < 4; ti++) {
            int64_t n_tok = toks[ti];
            float *x = xmalloc((size_t)(n_tok * n_in) * 4);
            float *y = xmalloc((size_t)(n_tok * n_out) * 4);
            double *qe = xmalloc((size_t)(n_tok * n_in) * sizeof(double));
            fill(x, n_tok * n_in, 1.0f);
            for (int64_t i = 0; i < n_tok * n_in; i++) qe[i] = act_qerr(vt, x + i / n_in * n_in, n_in, i % n_in);
            for (int isa = 0; isa < 3; isa++) {
                for (int th = 0; th < 2; th++) {
                    pf_compute *c = cs[isa][th];
                    if (!c) continue;
                    const pf_kernels *k = pf_compute_kernels(c);
                    pf_error err;
                    for (int64_t i = 0; i < n_tok * n_out; i++) y[i] = NAN;
                    int rc = pf_matmul(c, wq, t, n_out, n_in, x, n_tok, y, &err);
                    total++;
                    if (rc != PF_OK) {
                        if (bad_rc++ < 2) fprintf(stderr, "  %s: pf_matmul failed: %s\n", tr->name, err.msg);
                        continue;
                    }
                    /* the same kernel table's vec_dot on the same activation quantization */
                    size_t xs = vt == PF_TYPE_F32 ? (size_t)n_in * 4 : pf_row_size(vt, n_in);
                    uint8_t *xq = xmalloc(xs);
                    for (int64_t tk = 0; tk < n_tok; tk++) {
                        const void *xr = x + tk * n_in;
                        if (vt != PF_TYPE_F32) {
                            k->quantize_row[vt](x + tk * n_in, xq, n_in);
                            xr = xq;
                        }
                        for (int64_t r = 0; r < n_out; r++) {
                            double exact = 0.0, mag = 0.0, qb = 0.0;
                            for (int64_t i = 0; i < n_in; i++) {
                                double p = (double)wd[r * n_in + i] * x[tk * n_in + i];
                                exact += p;
                                mag += fabs(p);
                                qb += fabs(wd[r * n_in + i]) * qe[tk * n_in + i];
                            }
                            double got = y[tk * n_out + r];
                            /* quantization bound + fp16 rounding of the activation scales */
                            double tol = qb * 1.01 + 1.5e-3 * mag + 1e-6;
                            if (!(fabs(got - exact) <= tol)) {
                                if (bad_ref++ < 3)
                                    fprintf(stderr, "  %s %s th=%d n_out=%lld n_tok=%lld [%lld,%lld]: %.7g vs %.7g (tol %.3g)\n",
                                            tr->name, k->name, th + 1, (long long)n_out, (long long)n_tok, (long long)tk,
                                            (long long)r, got, exact, tol);
                            }
                            if (mag > 0 && fabs(got - exact) / mag > worst) worst = fabs(got - exact) / mag;
                            float s;
                            k->vec_dot[t](n_in, &s, wq + r * rs, xr);
                            /* the scalar table runs the very same kernel: bit-identical; AVX2 may
                             * use the float GEMM tile or a prepared-activation kernel, which sum
                             * in another order */
                            double stol = k->isa == PF_ISA_SCALAR ? 0.0 : 2e-6 * mag + 1e-30;
                            if (!(fabs((double)s - got) <= stol)) {
                                if (bad_self++ < 3)
                                    fprintf(stderr, "  %s %s: matmul %.9g vs vec_dot %.9g\n", tr->name, k->name, got, s);
                            }
                        }
                    }
                    free(xq);
                }
            }
            free(x); free(y); free(qe);
        }
        free(wf); free(wd); free(wq);
    }
    CHECK(&T, bad_rc == 0, "matmul %s: %d calls failed", tr->name, bad_rc);
    CHECK(&T, bad_ref == 0, "matmul %s vs double reference: %d outputs off (worst rel %.3g)", tr->name, bad_ref, worst);
    CHECK(&T, bad_self == 0, "matmul %s vs its vec_dot: %d outputs differ (%d calls)", tr->name, bad_self, total);
}

static void test_matmul_errors(pf_compute *c) {
    pf_error err;
    float x[512] = {0}, y[8];
    uint8_t w[4096] = {0};
    int rc = pf_matmul(c, w, PF_TYPE_Q4_0, 2, 48, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG && strstr(err.msg, "multiple") != NULL, "n_in not whole blocks: %d %s", rc, err.msg);
    rc = pf_matmul(c, w, PF_TYPE_Q4_K, 2, 128, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG && strstr(err.msg, "256") != NULL, "K-quant block size: %d %s", rc, err.msg);
    rc = pf_matmul(c, w, PF_TYPE_Q8_K, 2, 256, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG && strstr(err.msg, "activation") != NULL, "activation-only type: %d %s", rc, err.msg);
    rc = pf_matmul(c, w, (pf_type)4, 2, 32, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_UNSUPPORTED, "removed type id 4: %d %s", rc, err.msg);
    rc = pf_matmul(c, w, (pf_type)99, 2, 32, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_UNSUPPORTED, "type id 99: %d %s", rc, err.msg);
    rc = pf_matmul(c, NULL, PF_TYPE_F32, 2, 32, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG, "NULL weights: %d", rc);
    rc = pf_matmul(NULL, w, PF_TYPE_F32, 2, 32, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG, "NULL context: %d", rc);
    rc = pf_matmul(c, w, PF_TYPE_F32, 2, 0, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG, "n_in 0: %d", rc);
    rc = pf_matmul(c, w, PF_TYPE_F32, -1, 32, x, 1, y, &err);
    CHECK(&T, rc == PF_ERR_ARG, "negative n_out: %d", rc);
    rc = pf_matmul(c, w, PF_TYPE_Q8_0, 2, 32, x, 0, y, &err);
    CHECK(&T, rc == PF_OK, "n_tok 0 is a no-op: %d", rc);
    rc = pf_dequantize(c, w, PF_TYPE_Q4_0, 1, 33, x, &err);
    CHECK(&T, rc == PF_ERR_ARG, "dequantize bad ne0: %d", rc);
    rc = pf_quantize(c, x, PF_TYPE_Q6_K, 1, 64, w, &err);
    CHECK(&T, rc == PF_ERR_ARG, "quantize bad ne0: %d", rc);
    rc = pf_quantize(c, x, (pf_type)5, 1, 64, w, &err);
    CHECK(&T, rc == PF_ERR_UNSUPPORTED, "quantize unknown type: %d", rc);
}

/* pf_dequantize / pf_quantize over many rows and threads == the reference, row by row. */
static void test_convert(pf_compute *c) {
    for (size_t w = 0; w < N_WEIGHTS; w++) {
        pf_type t = k_weights[w];
        const pf_type_traits *tr = pf_type_get(t);
        const int64_t ne0 = tr->block_size == 256 ? 512 : 96, rows = 23;
        float *x = xmalloc((size_t)(rows * ne0) * 4), *a = xmalloc((size_t)(rows * ne0) * 4),
              *b = xmalloc((size_t)(rows * ne0) * 4);
        fill(x, rows * ne0, 1.0f);
        size_t rs = pf_row_size(t, ne0);
        uint8_t *q1 = xmalloc(rs * rows), *q2 = xmalloc(rs * rows);
        pf_error err;
        for (int64_t r = 0; r < rows; r++) tr->from_float(x + r * ne0, q1 + r * rs, ne0);
        int rc = pf_quantize(c, x, t, rows, ne0, q2, &err);
        CHECK(&T, rc == PF_OK && memcmp(q1, q2, rs * rows) == 0, "pf_quantize %s matches the reference", tr->name);
        for (int64_t r = 0; r < rows; r++) tr->to_float(q1 + r * rs, a + r * ne0, ne0);
        rc = pf_dequantize(c, q1, t, rows, ne0, b, &err);
        CHECK(&T, rc == PF_OK && memcmp(a, b, (size_t)(rows * ne0) * 4) == 0, "pf_dequantize %s matches the reference",
              tr->name);
        free(x); free(a); free(b); free(q1); free(q2);
    }
}

/* Scratch: 64-byte aligned, keeps its contents' address while it fits, grows on demand. */
static void test_scratch(pf_compute *c) {
    void *p1 = pf_compute_scratch(c, 1000);
    CHECK(&T, p1 != NULL && ((uintptr_t)p1 & 63) == 0, "scratch aligned");
    void *p2 = pf_compute_scratch(c, 500);
    CHECK(&T, p1 == p2, "smaller request reuses the buffer");
    void *p3 = pf_compute_scratch(c, 1 << 20);
    CHECK(&T, p3 != NULL && ((uintptr_t)p3 & 63) == 0, "grown scratch aligned");
    if (p3) memset(p3, 1, 1 << 20);
}

int main(void) {
    bool avx2 = pf_cpu_has_avx2();
    const pf_kernels *sc = pf_kernels_get(PF_ISA_SCALAR), *av = pf_kernels_get(PF_ISA_AVX2),
                     *au = pf_kernels_get(PF_ISA_AUTO);
    CHECK(&T, sc != NULL && strcmp(sc->name, "scalar") == 0 && sc->isa == PF_ISA_SCALAR, "scalar table");
    CHECK(&T, au == (avx2 ? av : sc), "AUTO picks %s", avx2 ? "avx2" : "scalar");
    CHECK(&T, (av != NULL) == avx2, "AVX2 table iff the CPU has AVX2");
    CHECK(&T, pf_kernels_get((pf_isa)42) == NULL, "unknown ISA");
    for (size_t w = 0; w < N_WEIGHTS; w++) {
        pf_type t = k_weights[w];
        CHECK(&T, sc->vec_dot[t] == pf_type_get(t)->vec_dot, "scalar vec_dot of %s is the reference", pf_type_name(t));
        if (av) CHECK(&T, av->vec_dot[t] != NULL && av->to_float[t] != NULL, "avx2 kernels of %s", pf_type_name(t));
    }

    if (avx2) {
        test_vec_dot(sc, av);
        test_quantize_rows(sc, av);
        test_to_float(sc, av);
        test_pre_kernels(av, false);
        if (pf_cpu_has_avx512vnni()) test_pre_kernels(av, true);
        else printf("CPU lacks AVX-512 VNNI: skipping the VNNI kernel checks\n");
        test_qgemm(av, false);
        if (pf_cpu_has_avx512vnni()) test_qgemm(av, true);
    } else {
        printf("CPU lacks AVX2+FMA+F16C: skipping the AVX2-vs-scalar kernel checks\n");
    }

    /* scalar, AVX2, and AUTO when it differs from AVX2 (AVX-512 VNNI matvec kernels) */
    pf_compute *cs[3][2] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
    pf_error err;
    for (int th = 0; th < 2; th++) {
        CHECK(&T, pf_compute_create(th + 1, PF_ISA_SCALAR, &cs[0][th], &err) == PF_OK, "create scalar: %s", err.msg);
        if (avx2)
            CHECK(&T, pf_compute_create(th + 1, PF_ISA_AVX2, &cs[1][th], &err) == PF_OK, "create avx2: %s", err.msg);
        if (pf_cpu_has_avx512vnni()) {
            CHECK(&T, pf_compute_create(th + 1, PF_ISA_AUTO, &cs[2][th], &err) == PF_OK, "create auto: %s", err.msg);
            CHECK(&T, cs[2][th] && strcmp(pf_compute_isa_name(cs[2][th]), "avx2+vnni") == 0, "AUTO runs avx2+vnni");
            CHECK(&T, cs[1][th] && strcmp(pf_compute_isa_name(cs[1][th]), "avx2") == 0, "AVX2 runs plain avx2");
        }
    }
    if (!avx2) {
        pf_compute *c = NULL;
        CHECK(&T, pf_compute_create(1, PF_ISA_AVX2, &c, &err) == PF_ERR_UNSUPPORTED && c == NULL, "no AVX2 context");
    }
    for (size_t w = 0; w < N_WEIGHTS; w++) test_matmul_type(cs, k_weights[w]);
    pf_compute *c2 = cs[avx2 ? 1 : 0][1];
    if (c2) {
        test_matmul_errors(c2);
        test_convert(c2);
        test_scratch(c2);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) pf_compute_free(cs[i][j]);
    pf_compute_free(NULL);
    return TEST_REPORT(&T);
}
