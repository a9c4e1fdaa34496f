/* phiforge bench-nf4 [options] — speed of the NF4 × f32 kernels (forward x·Wᵀ and backward g·W)
 * for one token and for a batch, next to pf_matmul on a Q8_0 copy of the same weights in the same
 * run: GB/s of weight bytes read per product and GFLOP/s (2·n·rows·cols per product). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef enum { K_NF4, K_NF4_T, K_Q8 } kind;

typedef struct bench {
    pf_compute *c;
    const pf_nf4_tensor *nf4;
    const void *q8;
    int64_t rows, cols;
    const float *in;
    float *out;
} bench;

/* Seconds of each of `reps` runs (after one warm-up) into t[], sorted. */
static int time_runs(bench *b, kind k, int64_t n, int reps, double *t, pf_error *err) {
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        int rc = k == K_NF4 ? pf_nf4_matmul(b->c, b->nf4, b->in, n, b->out, err)
               : k == K_NF4_T ? pf_nf4_matmul_t(b->c, b->nf4, b->in, n, b->out, err)
               : pf_matmul(b->c, b->q8, PF_TYPE_Q8_0, b->rows, b->cols, b->in, n, b->out, err);
        if (rc != PF_OK) return rc;
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return PF_OK;
}

int cmd_bench_nf4(int argc, char **argv) {
    int64_t rows = 9216, cols = 3072, tokens = 512;
    int threads = 0, reps = 5;
    bool json = false;
    pf_isa isa = PF_ISA_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: phiforge bench-nf4 [-t THREADS] [--rows 9216] [--cols 3072] [--tokens 512] [--reps 5]\n"
                   "                          [--isa auto|scalar|avx2] [--json]\n"
                   "NF4 kernels (x·Wᵀ forward, g·W backward) for 1 and --tokens rows vs Q8_0 pf_matmul of the same\n"
                   "shape (default: Phi-3-mini's qkv_proj), best and median of --reps runs: GB/s of weight bytes, GFLOP/s.\n");
            return 0;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--rows") && has) rows = atoll(argv[++i]);
        else if (!strcmp(a, "--cols") && has) cols = atoll(argv[++i]);
        else if (!strcmp(a, "--tokens") && has) tokens = atoll(argv[++i]);
        else if (!strcmp(a, "--reps") && has) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--isa") && has) {
            const char *v = argv[++i];
            if (!strcmp(v, "auto")) isa = PF_ISA_AUTO;
            else if (!strcmp(v, "scalar")) isa = PF_ISA_SCALAR;
            else if (!strcmp(v, "avx2")) isa = PF_ISA_AVX2;
            else return cli_failf("bench-nf4", "unknown --isa '%s' (auto, scalar, avx2)", v);
        } else return cli_failf("bench-nf4", "unknown or incomplete option '%s' (try -h)", a);
    }
    if (rows <= 0 || cols <= 0 || cols % 64 != 0 || tokens <= 0 || reps <= 0 || reps > 1000)
        return cli_failf("bench-nf4", "need rows > 0, cols a positive multiple of 64, tokens > 0, 1 <= reps <= 1000");

    pf_error err = {0};
    pf_compute *c = NULL;
    if (pf_compute_create(threads, isa, &c, &err) != PF_OK) return cli_fail("bench-nf4", &err);
    const int64_t big = rows > cols ? rows : cols;
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    void *q8 = malloc(pf_row_size(PF_TYPE_Q8_0, cols) * (size_t)rows);
    float *in = malloc((size_t)(tokens * big) * sizeof(float)), *out = malloc((size_t)(tokens * big) * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    pf_nf4_tensor nf4 = {0};
    int rc = PF_OK;
    if (!w || !q8 || !in || !out || !t) {
        rc = pf_error_set(&err, PF_ERR_NOMEM, "out of memory for a %lld x %lld matrix", (long long)rows, (long long)cols);
        goto done;
    }
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < rows * cols; i++) { /* roughly N(0, 0.02²): sum of 4 uniforms */
        float u = 0;
        for (int k = 0; k < 4; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            u += (float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f;
        }
        w[i] = 0.02f * u * 1.7320508f;
    }
    for (int64_t i = 0; i < tokens * big; i++) in[i] = 0.001f * (float)((i * 7919) % 2001 - 1000);
    if ((rc = pf_nf4_quantize(&nf4, w, rows, cols, &err)) != PF_OK) goto done;
    if ((rc = pf_quantize(c, w, PF_TYPE_Q8_0, rows, cols, q8, &err)) != PF_OK) goto done;
    free(w);
    w = NULL;

    const double nf4_bytes = (double)pf_nf4_bytes(&nf4), q8_bytes = (double)pf_row_size(PF_TYPE_Q8_0, cols) * (double)rows;
    bench b = {c, &nf4, q8, rows, cols, in, out};
    static const struct { const char *name; kind k; } ks[] = {
        {"NF4 x*W^T", K_NF4}, {"NF4 g*W", K_NF4_T}, {"Q8_0 x*W^T", K_Q8}};
    const int64_t ns[2] = {1, tokens};
    if (!json) {
        printf("bench-nf4: W %lld x %lld, %s kernels, %d thread%s; NF4 %.4f bits/weight (%.1f MB), Q8_0 %.1f MB\n",
               (long long)rows, (long long)cols, pf_compute_kernels(c)->name, pf_pool_n_threads(pf_compute_pool(c)),
               pf_pool_n_threads(pf_compute_pool(c)) == 1 ? "" : "s", pf_nf4_bits_per_weight(&nf4), nf4_bytes / 1e6,
               q8_bytes / 1e6);
        printf("%-12s %6s %10s %10s %10s %10s %10s\n", "kernel", "n", "best ms", "median ms", "GB/s", "GFLOP/s",
               "med GFLOP/s");
    } else {
        printf("{\"rows\": %lld, \"cols\": %lld, \"threads\": %d, \"isa\": \"%s\", \"nf4_bits_per_weight\": %.6f, "
               "\"nf4_bytes\": %.0f, \"q8_0_bytes\": %.0f, \"results\": [",
               (long long)rows, (long long)cols, pf_pool_n_threads(pf_compute_pool(c)), pf_compute_kernels(c)->name,
               pf_nf4_bits_per_weight(&nf4), nf4_bytes, q8_bytes);
    }
    int first = 1;
    for (int ni = 0; ni < 2; ni++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const int64_t n = ns[ni];
            /* the batch runs take seconds on a laptop: fewer repetitions */
            const int r = n > 1 && reps > 3 ? 3 : reps;
            if ((rc = time_runs(&b, ks[ki].k, n, r, t, &err)) != PF_OK) goto done;
            const double bytes = ks[ki].k == K_Q8 ? q8_bytes : nf4_bytes, flop = 2.0 * (double)n * (double)rows * (double)cols;
            const double best = t[0], med = t[r / 2];
            if (json)
                printf("%s{\"kernel\": \"%s\", \"n\": %lld, \"best_s\": %.6g, \"median_s\": %.6g, \"gb_s\": %.3f, "
                       "\"gflop_s\": %.3f, \"median_gflop_s\": %.3f}",
                       first ? "" : ", ", ks[ki].name, (long long)n, best, med, bytes / best * 1e-9, flop / best * 1e-9,
                       flop / med * 1e-9);
            else
                printf("%-12s %6lld %10.3f %10.3f %10.2f %10.2f %10.2f\n", ks[ki].name, (long long)n, best * 1e3, med * 1e3,
                       bytes / best * 1e-9, flop / best * 1e-9, flop / med * 1e-9);
            first = 0;
        }
    if (json) printf("]}\n");
done:
    free(w), free(q8), free(in), free(out), free(t);
    pf_nf4_free(&nf4);
    pf_compute_free(c);
    return rc == PF_OK ? 0 : cli_fail("bench-nf4", &err);
}
