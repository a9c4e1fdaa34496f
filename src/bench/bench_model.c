/* End-to-end benchmark of a model file (`phiforge bench`), measured the way llama-bench does
 * (random token ids, one warm-up run, then reps timed runs; mean and deviation):
 *   pp: one batch of n_prompt tokens from position 0 (the cache is rewound each time);
 *   tg: n_gen single-token decodes after the prompt, each with its logits.
 * Generation reads every weight once per token, so its speed is bounded by memory bandwidth:
 * bytes per token = every 2-D weight (output included) + the norms + one token_embd row + the
 * KV cache read at that position; the bound is the streaming read rate over the weights
 * themselves (same pages, same TLB behaviour), probed right before and after each tg run:
 * a shared machine's bandwidth drifts by tens of percent within seconds, so each tg run is
 * compared with the bandwidth of its own moment. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "phiforge.h"
#include "kernels/bench.h"

pf_bench_model_params pf_bench_model_default_params(void) {
    return (pf_bench_model_params){.n_prompt = 64, .n_gen = 16, .reps = 3, .n_threads = 0, .seed = 42};
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* VmHWM (peak resident set, file-backed pages of the mapping included), else ru_maxrss. */
static double peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage ru;
        kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    }
    return (double)kb * 1024.0;
}

/* Weight bytes one generated token reads, and the [lo, hi) span of all tensor data. */
static double weight_bytes_per_token(const pf_gguf *g, const uint8_t **lo, const uint8_t **hi, double *n_params) {
    const bool tied = pf_gguf_find_tensor(g, "output.weight") < 0; /* token_embd is the output then */
    double bytes = 0.0;
    *lo = NULL, *hi = NULL, *n_params = 0.0;
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        const uint8_t *d = t->data;
        if (*lo == NULL || d < *lo) *lo = d;
        if (*hi == NULL || d + t->nbytes > *hi) *hi = d + t->nbytes;
        *n_params += (double)pf_tensor_nelements(t);
        if (!strcmp(t->name, "token_embd.weight") && !tied) bytes += (double)pf_row_size(t->type, t->ne[0]);
        else bytes += (double)t->nbytes;
    }
    return bytes;
}

static void mean_sd(const double *v, int n, double *mean, double *sd, double *best) {
    double s = 0.0, ss = 0.0;
    *best = 0.0;
    for (int i = 0; i < n; i++) s += v[i], *best = v[i] > *best ? v[i] : *best;
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

typedef struct run {
    pf_context *ctx;
    const int32_t *ids;
    int64_t n_prompt, n_gen;
    float *logits;
} run;

typedef struct bw_probe {
    pf_compute *c;
    const uint8_t *p;
    size_t bytes;
} bw_probe;

/* One pp batch then n_gen tg steps: seconds of each in *pp_s and *tg_s. With a probe, the read
 * rate over the weights is measured right before and right after the tg steps and the better
 * of the two returned in *bw (one short probe can lose its slice of the machine). */
static int run_once(run *r, const bw_probe *probe, double *pp_s, double *tg_s, double *bw, pf_error *err) {
    double t0 = now_s();
    int rc = pf_decode(r->ctx, r->ids, r->n_prompt, 0, r->logits, PF_LOGITS_LAST, err);
    *pp_s = now_s() - t0;
    if (rc != PF_OK) return rc;
    double before = probe ? pf_bench_stream_read(probe->c, probe->p, probe->bytes) : 0.0;
    t0 = now_s();
    for (int64_t i = 0; i < r->n_gen && rc == PF_OK; i++)
        rc = pf_decode(r->ctx, r->ids + r->n_prompt + i, 1, r->n_prompt + i, r->logits, PF_LOGITS_LAST, err);
    *tg_s = now_s() - t0;
    double after = probe ? pf_bench_stream_read(probe->c, probe->p, probe->bytes) : 0.0;
    *bw = before > after ? before : after;
    return rc;
}

#define MAX_REPS 100

int pf_bench_model(const char *path, const pf_bench_model_params *params, pf_bench_model_result *out,
                   pf_error *err) {
    if (path == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "bench: NULL argument");
    pf_bench_model_params p = params ? *params : pf_bench_model_default_params();
    if (p.n_prompt < 1 || p.n_gen < 1 || p.reps < 1 || p.reps > MAX_REPS)
        return pf_error_set(err, PF_ERR_ARG, "bench: need n_prompt >= 1, n_gen >= 1, 1 <= reps <= %d", MAX_REPS);
    memset(out, 0, sizeof *out);
    pf_model *m = NULL;
    pf_context *ctx = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    pf_lora **adapters = NULL;
    int rc = pf_model_load(path, &m, err);
    if (rc != PF_OK) return rc;
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    const pf_gguf *g = pf_model_gguf(m);
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = p.n_prompt + p.n_gen;
    cp.n_batch = p.n_prompt; /* pp is one batch, as llama-bench's */
    cp.n_threads = p.n_threads;
    if (cp.n_ctx > hp->n_ctx_train) {
        rc = pf_error_set(err, PF_ERR_ARG, "bench: %lld + %lld tokens exceed the model's context of %lld",
                          (long long)p.n_prompt, (long long)p.n_gen, (long long)hp->n_ctx_train);
        goto done;
    }
    if ((rc = pf_context_create(m, &cp, &ctx, err)) != PF_OK) goto done;
    if (p.n_lora < 0 || p.n_lora > 64 || (p.n_lora > 0 && !p.lora)) {
        rc = pf_error_set(err, PF_ERR_ARG, "bench: bad LoRA adapter list");
        goto done;
    }
    if (p.n_lora > 0 && !(adapters = calloc((size_t)p.n_lora, sizeof *adapters))) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    for (int i = 0; i < p.n_lora && rc == PF_OK; i++) rc = pf_lora_load(p.lora[i], m, &adapters[i], err);
    if (rc == PF_OK && p.n_lora > 0) rc = pf_context_set_lora(ctx, adapters, p.lora_scale, p.n_lora, err);
    if (rc != PF_OK) goto done;
    ids = malloc((size_t)cp.n_ctx * sizeof *ids);
    logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    if (ids == NULL || logits == NULL) { rc = pf_error_set(err, PF_ERR_NOMEM, "bench: out of memory"); goto done; }
    uint64_t s = p.seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < cp.n_ctx; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        ids[i] = (int32_t)(s % (uint64_t)hp->n_vocab);
    }

    const uint8_t *lo, *hi;
    out->weight_bytes_per_token = weight_bytes_per_token(g, &lo, &hi, &out->n_params);
    const double kv_row = (double)(hp->n_head_kv * hp->head_dim) * 2.0 /* K and V */ * (double)hp->n_layer *
                          (cp.kv_type == PF_TYPE_F16 ? 2.0 : 4.0);
    out->kv_cache_bytes = kv_row * (double)cp.n_ctx;
    /* a token at position q reads the cache rows 0..q: mean over the tg positions */
    out->kv_bytes_per_token = kv_row * ((double)p.n_prompt + (double)(p.n_gen - 1) / 2.0 + 1.0);
    int64_t ft = 0;
    if (pf_gguf_get_int(g, "general.file_type", &ft, NULL) == PF_OK && ft >= 0) out->file_type = (uint32_t)ft;

    run r = {ctx, ids, p.n_prompt, p.n_gen, logits};
    const bw_probe probe = {pf_context_compute(ctx), lo, (size_t)(hi - lo)};
    double pp_s, tg_s, bw_s, pp[MAX_REPS], tg[MAX_REPS], bw[MAX_REPS], pct[MAX_REPS], sd, best;
    if ((rc = run_once(&r, NULL, &pp_s, &tg_s, &bw_s, err)) != PF_OK) goto done; /* warm-up: pages, caches */
    const double bytes = out->weight_bytes_per_token + out->kv_bytes_per_token;
    for (int i = 0; i < p.reps; i++) {
        if ((rc = run_once(&r, &probe, &pp_s, &tg_s, &bw[i], err)) != PF_OK) goto done;
        pp[i] = (double)p.n_prompt / pp_s;
        tg[i] = (double)p.n_gen / tg_s;
        pct[i] = bw[i] > 0 ? tg[i] / (bw[i] * 1e9 / bytes) : 0.0;
    }
    mean_sd(pp, p.reps, &out->pp_tps, &out->pp_tps_sd, &out->pp_tps_best);
    mean_sd(tg, p.reps, &out->tg_tps, &out->tg_tps_sd, &out->tg_tps_best);
    mean_sd(bw, p.reps, &out->bw_gbs, &sd, &best);
    mean_sd(pct, p.reps, &out->tg_frac_of_bound, &sd, &best);
    out->tg_bound_tps = out->bw_gbs * 1e9 / bytes;
    out->n_threads = pf_pool_n_threads(pf_compute_pool(pf_context_compute(ctx)));
    out->reps = p.reps;
    out->n_prompt = p.n_prompt, out->n_gen = p.n_gen, out->n_ctx = cp.n_ctx;
    out->file_bytes = (double)pf_gguf_file_size(g);
    out->peak_rss_bytes = peak_rss_bytes();
done:
    free(ids);
    free(logits);
    pf_context_free(ctx);
    for (int i = 0; adapters && i < p.n_lora; i++) pf_lora_free(adapters[i]);
    free(adapters);
    pf_model_free(m);
    return rc;
}
