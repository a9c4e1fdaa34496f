/* Kernel benchmark: memory read bandwidth, pool dispatch latency, and per weight type the
 * matvec weight-streaming rate and matmul GFLOP/s (see bench.h). */
#include "kernels/bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kernels/kernels_internal.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

static const pf_type k_all_types[] = {PF_TYPE_F32,  PF_TYPE_F16,  PF_TYPE_BF16, PF_TYPE_Q4_0,  PF_TYPE_Q4_1,
                                      PF_TYPE_Q5_0, PF_TYPE_Q5_1, PF_TYPE_Q8_0, PF_TYPE_IQ4_NL, PF_TYPE_Q2_K,
                                      PF_TYPE_Q3_K, PF_TYPE_Q4_K, PF_TYPE_Q5_K, PF_TYPE_Q6_K};
#define N_ALL (sizeof k_all_types / sizeof k_all_types[0])
#define UNIQUE_ROWS 4 /* distinct quantized rows, repeated to fill a matrix */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void pf_bench_default_opts(pf_bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_threads = 0;
    o->isa = PF_ISA_AUTO;
    o->mv_rows = 16384;
    o->mv_cols = 8192;
    o->mm_rows = 4096;
    o->mm_cols = 4096;
    o->mm_tokens = 64;
    o->reps = 10;
    o->mv_min_bytes = (size_t)128 << 20;
    o->bw_bytes = (size_t)512 << 20;
}

const char *pf_bench_usage(void) {
    return "options:\n"
           "  --threads N       threads (default: online CPUs)\n"
           "  --isa NAME        auto | scalar | avx2 (default auto)\n"
           "  --types LIST      comma-separated weight types (default: all)\n"
           "  --reps N          timed repetitions, best reported (default 10)\n"
           "  --mv-rows N       matvec weight rows (default 16384)\n"
           "  --mv-cols N       matvec weight columns (default 8192)\n"
           "  --mv-min-mib N    grow matvec rows until the matrix has N MiB (default 128)\n"
           "  --mm-rows N       matmul weight rows (default 4096)\n"
           "  --mm-cols N       matmul weight columns (default 4096)\n"
           "  --mm-tokens N     matmul tokens (default 64)\n"
           "  --bw-mib N        bandwidth buffer in MiB (default 512)\n"
           "  --quick           small shapes (smoke test; bandwidth ratios not meaningful)\n"
           "  --json            JSON output\n"
           "  --help            this text\n";
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out, pf_error *err) {
    if (s == NULL) return pf_error_set(err, PF_ERR_ARG, "bench-kernels: %s needs a value", opt);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return pf_error_set(err, PF_ERR_ARG, "bench-kernels: %s wants an integer in [%lld, %lld], got '%s'", opt,
                            (long long)lo, (long long)hi, s);
    *out = v;
    return PF_OK;
}

int pf_bench_parse_args(int argc, char **argv, pf_bench_opts *o, pf_error *err) {
    pf_bench_default_opts(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n = 0;
        int rc = PF_OK;
        if (strcmp(a, "--json") == 0) { o->json = true; continue; }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { o->help = true; continue; }
        if (strcmp(a, "--quick") == 0) {
            o->mv_rows = 1024; o->mv_cols = 1024; o->mm_rows = 256; o->mm_cols = 512; o->mm_tokens = 8;
            o->mv_min_bytes = 0;
            o->reps = 2; o->bw_bytes = (size_t)16 << 20;
            continue;
        }
        if (strcmp(a, "--isa") == 0) {
            if (v == NULL) return pf_error_set(err, PF_ERR_ARG, "bench-kernels: --isa needs a value");
            if (strcasecmp(v, "auto") == 0) o->isa = PF_ISA_AUTO;
            else if (strcasecmp(v, "scalar") == 0) o->isa = PF_ISA_SCALAR;
            else if (strcasecmp(v, "avx2") == 0) o->isa = PF_ISA_AVX2;
            else return pf_error_set(err, PF_ERR_ARG, "bench-kernels: unknown --isa '%s' (auto, scalar, avx2)", v);
            i++;
            continue;
        }
        if (strcmp(a, "--types") == 0) {
            if (v == NULL || strlen(v) >= sizeof o->types)
                return pf_error_set(err, PF_ERR_ARG, "bench-kernels: --types needs a list of type names");
            strcpy(o->types, v);
            i++;
            continue;
        }
        if (strcmp(a, "--threads") == 0) { rc = parse_i64(a, v, 0, 512, &n, err); o->n_threads = (int)n; }
        else if (strcmp(a, "--reps") == 0) { rc = parse_i64(a, v, 1, 1000, &n, err); o->reps = (int)n; }
        else if (strcmp(a, "--mv-rows") == 0) rc = parse_i64(a, v, 1, 1 << 20, &o->mv_rows, err);
        else if (strcmp(a, "--mv-cols") == 0) rc = parse_i64(a, v, 256, 1 << 20, &o->mv_cols, err);
        else if (strcmp(a, "--mm-rows") == 0) rc = parse_i64(a, v, 1, 1 << 20, &o->mm_rows, err);
        else if (strcmp(a, "--mm-cols") == 0) rc = parse_i64(a, v, 256, 1 << 20, &o->mm_cols, err);
        else if (strcmp(a, "--mm-tokens") == 0) rc = parse_i64(a, v, 1, 4096, &o->mm_tokens, err);
        else if (strcmp(a, "--mv-min-mib") == 0) { rc = parse_i64(a, v, 0, 1 << 16, &n, err); o->mv_min_bytes = (size_t)n << 20; }
        else if (strcmp(a, "--bw-mib") == 0) { rc = parse_i64(a, v, 1, 1 << 16, &n, err); o->bw_bytes = (size_t)n << 20; }
        else return pf_error_set(err, PF_ERR_ARG, "bench-kernels: unknown option '%s' (try --help)", a);
        if (rc != PF_OK) return rc;
        i++;
    }
    return PF_OK;
}

/* ---- memory bandwidth ----------------------------------------------------------------------- */

typedef struct bw_ctx {
    const float *buf;
    size_t n;        /* floats, a multiple of 32 * nth */
    bool avx2;
    float sums[512]; /* one per thread, so the reads cannot be optimized away */
} bw_ctx;

static void bw_task(void *vctx, int ith, int nth) {
    bw_ctx *b = vctx;
    size_t per = b->n / (size_t)nth;
    const float *p = b->buf + per * (size_t)ith;
#if defined(__x86_64__)
    /* Weight bytes read as floats include denormals: flush them so no microcode assist slows
     * the adds down (the rate must be the memory's, not the FPU's). */
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
#endif
    if (b->avx2) {
        b->sums[ith] = pf_avx2_stream_sum(p, per);
    } else {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i < per; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        b->sums[ith] = s0 + s1 + s2 + s3;
    }
#if defined(__x86_64__)
    _mm_setcsr(csr);
#endif
}

/* A buffer of `bytes` (rounded to whole per-thread slices) for the streaming-read test, filled
 * so that every page is backed. NULL on OOM. */
static bw_ctx *bw_create(pf_compute *c, size_t bytes, bool avx2, pf_error *err) {
    int nth = pf_pool_n_threads(pf_compute_pool(c));
    size_t unit = (size_t)nth * 32 * sizeof(float);
    bytes = bytes / unit * unit;
    if (bytes == 0) bytes = unit;
    bw_ctx *b = calloc(1, sizeof *b);
    float *buf = aligned_alloc(64, bytes);
    if (b == NULL || buf == NULL) {
        free(b);
        free(buf);
        pf_error_set(err, PF_ERR_NOMEM, "bench-kernels: cannot allocate %zu bytes for the bandwidth test", bytes);
        return NULL;
    }
    for (size_t i = 0; i < bytes / sizeof(float); i++) buf[i] = (float)(i & 7);
    b->buf = buf;
    b->n = bytes / sizeof(float);
    b->avx2 = avx2;
    return b;
}

static void bw_free(bw_ctx *b) {
    if (b) free((void *)b->buf);
    free(b);
}

/* A streaming-read view of an existing buffer (64-byte aligned), whole slices only. */
static bw_ctx bw_view(pf_compute *c, const void *buf, size_t bytes, bool avx2) {
    int nth = pf_pool_n_threads(pf_compute_pool(c));
    size_t unit = (size_t)nth * 32;
    bw_ctx b;
    memset(&b, 0, sizeof b);
    b.buf = buf;
    b.n = bytes / sizeof(float) / unit * unit;
    b.avx2 = avx2;
    return b;
}

/* One streaming read of the whole buffer with every pool thread; returns GB/s. */
static double bw_run(pf_compute *c, bw_ctx *b) {
    double t0 = now_s();
    pf_pool_run(pf_compute_pool(c), bw_task, b);
    return (double)(b->n * sizeof(float)) / (now_s() - t0) * 1e-9;
}

double pf_bench_stream_read(pf_compute *c, const void *buf, size_t bytes) {
    bool avx2 = pf_compute_kernels(c)->isa == PF_ISA_AVX2 && ((uintptr_t)buf & 31) == 0;
    bw_ctx b = bw_view(c, buf, bytes, avx2);
    return b.n ? bw_run(c, &b) : 0.0;
}

static void empty_task(void *ctx, int ith, int nth) {
    (void)ctx;
    (void)ith;
    (void)nth;
}

/* Mean time of an empty pf_pool_run, in microseconds. */
static double measure_dispatch(pf_compute *c) {
    pf_pool *p = pf_compute_pool(c);
    for (int i = 0; i < 1000; i++) pf_pool_run(p, empty_task, NULL);
    const int n = 20000;
    double t0 = now_s();
    for (int i = 0; i < n; i++) pf_pool_run(p, empty_task, NULL);
    return (now_s() - t0) / n * 1e6;
}

/* ---- matvec / matmul ----------------------------------------------------------------------- */

/* A rows x cols matrix of type t: UNIQUE_ROWS rows quantized from gaussian-like data, then
 * repeated (the kernels' speed does not depend on the values). NULL on OOM. */
static void *make_matrix(pf_compute *c, pf_type t, int64_t rows, int64_t cols, pf_error *err) {
    size_t rs = pf_row_size(t, cols);
    uint8_t *w = aligned_alloc(64, (rs * (size_t)rows + 63) & ~(size_t)63);
    float *src = malloc((size_t)(UNIQUE_ROWS * cols) * sizeof(float));
    if (w == NULL || src == NULL) {
        free(w);
        free(src);
        pf_error_set(err, PF_ERR_NOMEM, "bench-kernels: cannot allocate a %lld x %lld %s matrix", (long long)rows,
                     (long long)cols, pf_type_name(t));
        return NULL;
    }
    uint64_t s = 0x243F6A8885A308D3ull;
    for (int64_t i = 0; i < UNIQUE_ROWS * cols; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double u1 = ((s >> 11) + 1) * (1.0 / 9007199254740993.0), u2 = (double)((s >> 3) & 0xFFFF) / 65536.0;
        src[i] = (float)(0.02 * (u1 - 0.5) * (1.0 + 4.0 * u2 * u2));
    }
    int64_t u = rows < UNIQUE_ROWS ? rows : UNIQUE_ROWS;
    if (pf_quantize(c, src, t, u, cols, w, err) != PF_OK) {
        free(w);
        free(src);
        return NULL;
    }
    for (int64_t r = u; r < rows; r++) memcpy(w + (size_t)r * rs, w + (size_t)(r % u) * rs, rs);
    free(src);
    return w;
}

typedef struct bench_row {
    pf_type type;
    int64_t mv_rows;
    double mv_bytes, mv_s, mv_gbs, bw_gbs, mm_s, mm_gflops;
} bench_row;

/* Best time of reps calls of pf_matmul (after one warm-up call), or < 0 on error. */
static double time_matmul(pf_compute *c, const void *w, pf_type t, int64_t rows, int64_t cols, const float *x,
                          int64_t ntok, float *y, int reps, pf_error *err) {
    if (pf_matmul(c, w, t, rows, cols, x, ntok, y, err) != PF_OK) return -1.0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        pf_matmul(c, w, t, rows, cols, x, ntok, y, err);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

/* Matvec timed interleaved with the streaming-read test over the same matrix bytes, so both
 * see the same memory and the same machine state (on a shared VM the available bandwidth
 * drifts by tens of percent within seconds): best of reps for each. Returns < 0 on error. */
static double time_matvec(pf_compute *c, bw_ctx *bw, const void *w, pf_type t, int64_t rows, int64_t cols,
                          const float *x, float *y, int reps, double *bw_best, pf_error *err) {
    if (pf_matmul(c, w, t, rows, cols, x, 1, y, err) != PF_OK) return -1.0;
    double best = 1e30;
    *bw_best = 0.0;
    for (int r = 0; r < reps; r++) {
        double g = bw_run(c, bw);
        if (g > *bw_best) *bw_best = g;
        double t0 = now_s();
        pf_matmul(c, w, t, rows, cols, x, 1, y, err);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static int bench_type(pf_compute *c, bool avx2, const pf_bench_opts *o, pf_type t, bench_row *row, pf_error *err) {
    memset(row, 0, sizeof *row);
    row->type = t;
    /* rows: at least mv_rows, and enough for mv_min_bytes of weights (>> the LLC) */
    int64_t mv_rows = o->mv_rows;
    size_t rs = pf_row_size(t, o->mv_cols);
    if (rs > 0 && (size_t)mv_rows * rs < o->mv_min_bytes) mv_rows = (int64_t)((o->mv_min_bytes + rs - 1) / rs);
    int64_t maxcols = o->mv_cols > o->mm_cols ? o->mv_cols : o->mm_cols;
    int64_t ntok = o->mm_tokens;
    float *x = malloc((size_t)(ntok * maxcols) * sizeof(float));
    float *y = malloc((size_t)((mv_rows > o->mm_rows * ntok ? mv_rows : o->mm_rows * ntok)) * sizeof(float));
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        return pf_error_set(err, PF_ERR_NOMEM, "bench-kernels: out of memory");
    }
    for (int64_t i = 0; i < ntok * maxcols; i++) x[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;

    void *w = make_matrix(c, t, mv_rows, o->mv_cols, err);
    if (w == NULL) { free(x); free(y); return err->code; }
    row->mv_rows = mv_rows;
    row->mv_bytes = (double)pf_row_size(t, o->mv_cols) * (double)mv_rows;
    bw_ctx view = bw_view(c, w, pf_row_size(t, o->mv_cols) * (size_t)mv_rows, avx2);
    row->mv_s = time_matvec(c, &view, w, t, mv_rows, o->mv_cols, x, y, o->reps, &row->bw_gbs, err);
    free(w);
    if (row->mv_s < 0) { free(x); free(y); return err->code; }
    row->mv_gbs = row->mv_bytes / row->mv_s * 1e-9;

    w = make_matrix(c, t, o->mm_rows, o->mm_cols, err);
    if (w == NULL) { free(x); free(y); return err->code; }
    int mm_reps = o->reps / 3 > 2 ? o->reps / 3 : 2;
    row->mm_s = time_matmul(c, w, t, o->mm_rows, o->mm_cols, x, ntok, y, mm_reps, err);
    free(w);
    free(x);
    free(y);
    if (row->mm_s < 0) return err->code;
    row->mm_gflops = 2.0 * (double)o->mm_rows * (double)o->mm_cols * (double)ntok / row->mm_s * 1e-9;
    return PF_OK;
}

/* Selected types from the comma-separated list (all weight types when empty). */
static int select_types(const char *list, pf_type *out, int *n, pf_error *err) {
    *n = 0;
    if (list[0] == '\0') {
        for (size_t i = 0; i < N_ALL; i++) out[(*n)++] = k_all_types[i];
        return PF_OK;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        pf_type t;
        if (pf_type_from_name(tok, &t) != PF_OK || !pf_type_get(t)->is_weight)
            return pf_error_set(err, PF_ERR_ARG, "bench-kernels: '%s' is not a weight type", tok);
        if (*n < (int)N_ALL) out[(*n)++] = t;
    }
    return PF_OK;
}

static bool is_goal_type(pf_type t) { return t == PF_TYPE_Q4_0 || t == PF_TYPE_Q4_K || t == PF_TYPE_Q8_0; }

int pf_bench_kernels(const pf_bench_opts *opts, FILE *out, pf_error *err) {
    pf_error local;
    if (err == NULL) err = &local; /* the helpers below report through err */
    pf_bench_opts o;
    if (opts) o = *opts;
    else pf_bench_default_opts(&o);
    if (out == NULL) return pf_error_set(err, PF_ERR_ARG, "bench-kernels: no output stream");
    pf_type types[N_ALL];
    int nt = 0;
    int rc = select_types(o.types, types, &nt, err);
    if (rc != PF_OK) return rc;
    for (int i = 0; i < nt; i++) {
        int64_t bs = pf_type_get(types[i])->block_size;
        if (o.mv_cols % bs || o.mm_cols % bs)
            return pf_error_set(err, PF_ERR_ARG, "bench-kernels: columns (%lld, %lld) must be multiples of the %s block size %lld",
                                (long long)o.mv_cols, (long long)o.mm_cols, pf_type_name(types[i]), (long long)bs);
    }
    pf_compute *c = NULL;
    rc = pf_compute_create(o.n_threads, o.isa, &c, err);
    if (rc != PF_OK) return rc;
    const pf_kernels *k = pf_compute_kernels(c);
    const int nth = pf_pool_n_threads(pf_compute_pool(c));
    const bool avx2 = k->isa == PF_ISA_AVX2;

    /* whole-machine read bandwidth before and after the per-type runs */
    bw_ctx *bwc = bw_create(c, o.bw_bytes, avx2, err);
    if (bwc == NULL) { pf_compute_free(c); return err->code; }
    bw_run(c, bwc); /* warm-up */
    double bw_start = 0.0, bw_end = 0.0;
    for (int r = 0; r < o.reps; r++) {
        double g = bw_run(c, bwc);
        if (g > bw_start) bw_start = g;
    }
    double disp = measure_dispatch(c);

    bench_row rows[N_ALL];
    for (int i = 0; i < nt; i++) {
        rc = bench_type(c, avx2, &o, types[i], &rows[i], err);
        if (rc != PF_OK) { bw_free(bwc); pf_compute_free(c); return rc; }
    }
    for (int r = 0; r < o.reps; r++) {
        double g = bw_run(c, bwc);
        if (g > bw_end) bw_end = g;
    }
    double bw_max = bw_start > bw_end ? bw_start : bw_end;
    for (int i = 0; i < nt; i++) bw_max = rows[i].bw_gbs > bw_max ? rows[i].bw_gbs : bw_max;

    int goal_n = 0, goal_met = 0;
    for (int i = 0; i < nt; i++)
        if (is_goal_type(rows[i].type)) {
            goal_n++;
            goal_met += rows[i].mv_gbs >= 0.85 * rows[i].bw_gbs;
        }
    if (o.json) {
        fprintf(out,
                "{\"kernels\":\"%s\",\"threads\":%d,\"bandwidth_gbs_start\":%.3f,\"bandwidth_gbs_end\":%.3f,"
                "\"bandwidth_gbs_max\":%.3f,\"bandwidth_buffer_mib\":%zu,\"dispatch_us\":%.3f,\"reps\":%d,\n",
                k->name, nth, bw_start, bw_end, bw_max, o.bw_bytes >> 20, disp, o.reps);
        fprintf(out, " \"matvec\":{\"cols\":%lld,\"min_rows\":%lld,\"min_mib\":%zu},"
                     "\"matmul\":{\"rows\":%lld,\"cols\":%lld,\"tokens\":%lld},\n",
                (long long)o.mv_cols, (long long)o.mv_rows, o.mv_min_bytes >> 20, (long long)o.mm_rows,
                (long long)o.mm_cols, (long long)o.mm_tokens);
        fprintf(out, " \"types\":[\n");
        for (int i = 0; i < nt; i++)
            fprintf(out,
                    "  {\"type\":\"%s\",\"matvec_rows\":%lld,\"matvec_bytes\":%.0f,\"matvec_ms\":%.4f,\"matvec_gbs\":%.3f,"
                    "\"bw_gbs\":%.3f,\"bw_ratio\":%.4f,\"max_bw_ratio\":%.4f,\"matmul_ms\":%.3f,\"matmul_gflops\":%.2f}%s\n",
                    pf_type_name(rows[i].type), (long long)rows[i].mv_rows, rows[i].mv_bytes, rows[i].mv_s * 1e3,
                    rows[i].mv_gbs, rows[i].bw_gbs, rows[i].mv_gbs / rows[i].bw_gbs, rows[i].mv_gbs / bw_max,
                    rows[i].mm_s * 1e3, rows[i].mm_gflops, i + 1 < nt ? "," : "");
        fprintf(out, " ],\n \"goal\":{\"types\":%d,\"met\":%d,\"min_ratio\":0.85}}\n", goal_n, goal_met);
    } else {
        fprintf(out, "phiforge bench-kernels: kernels=%s threads=%d\n", k->name, nth);
        fprintf(out, "memory read bandwidth (AVX2 streaming sum, %zu MiB buffer, %d threads, best of %d): "
                     "%.2f GB/s before, %.2f GB/s after the runs below\n",
                o.bw_bytes >> 20, nth, o.reps, bw_start, bw_end);
        fprintf(out, "pool dispatch: %.2f us per empty run\n", disp);
        fprintf(out, "matvec: %lld columns x >= %lld rows (>= %zu MiB of weights), 1 token, best of %d;\n"
                     "  BW GB/s = streaming sum over the same weight bytes, interleaved with the matvec runs\n"
                     "  (best of %d), the reference for %% of BW; %% of max = against the best bandwidth of\n"
                     "  the whole run (%.2f GB/s)\n",
                (long long)o.mv_cols, (long long)o.mv_rows, o.mv_min_bytes >> 20, o.reps, o.reps, bw_max);
        fprintf(out, "matmul: %lld x %lld weights x %lld tokens\n\n", (long long)o.mm_rows, (long long)o.mm_cols,
                (long long)o.mm_tokens);
        fprintf(out, "%-7s %7s %7s %9s %9s %8s %8s %8s %8s %10s %8s\n", "type", "bits/w", "rows", "matvec MB", "matvec ms",
                "GB/s", "BW GB/s", "% of BW", "% of max", "matmul ms", "GFLOP/s");
        for (int i = 0; i < nt; i++) {
            const pf_type_traits *tr = pf_type_get(rows[i].type);
            double bits = 8.0 * (double)tr->type_size / (double)tr->block_size;
            fprintf(out, "%-7s %7.3f %7lld %9.1f %9.3f %8.2f %8.2f %7.1f%% %7.1f%% %10.2f %8.1f\n", tr->name, bits,
                    (long long)rows[i].mv_rows, rows[i].mv_bytes / 1e6, rows[i].mv_s * 1e3, rows[i].mv_gbs,
                    rows[i].bw_gbs, 100.0 * rows[i].mv_gbs / rows[i].bw_gbs, 100.0 * rows[i].mv_gbs / bw_max,
                    rows[i].mm_s * 1e3, rows[i].mm_gflops);
        }
        if (goal_n > 0)
            fprintf(out, "\ngoal (matvec >= 85%% of BW for Q4_0, Q4_K, Q8_0): %d of %d met\n", goal_met, goal_n);
    }
    bw_free(bwc);
    pf_compute_free(c);
    return PF_OK;
}
