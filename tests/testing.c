#include "testing.h"

#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

void *pf_test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf && size) *size = (size_t)n;
    return buf;
}

const char *pf_test_data_path(char *buf, size_t cap, const char *subdir, const char *name) {
    snprintf(buf, cap, "tests/data/%s", name);
    if (access(buf, R_OK) == 0) return buf;
    snprintf(buf, cap, "../shared/golden/%s/%s", subdir, name);
    if (access(buf, R_OK) == 0) return buf;
    return NULL;
}

int pf_test_read_ids(const char *name, int32_t *ids, int cap) {
    char path[256];
    if (!pf_test_data_path(path, sizeof path, "models", name)) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    while (n < cap && fscanf(f, "%d", &ids[n]) == 1) n++;
    fclose(f);
    return n;
}

float *pf_test_read_golden_f32(const char *name, size_t count) {
    char path[256];
    size_t size = 0;
    if (!pf_test_data_path(path, sizeof path, "models", name)) return NULL;
    float *p = pf_test_read_file(path, &size);
    if (p && size != count * sizeof(float)) {
        free(p);
        return NULL;
    }
    return p;
}

float pf_test_gauss(pf_test_rng *r) { /* Box-Muller */
    float u1 = (pf_test_uniform(r) + 1.0f) * 0.5f, u2 = (pf_test_uniform(r) + 1.0f) * 0.5f;
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

pf_logit_stats pf_test_logit_row(const float *a, const float *b, int n) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, md = 0;
    float lo = b[0], hi = b[0];
    pf_logit_stats r = {0};
    for (int i = 0; i < n; i++) {
        sa += a[i], sb += b[i], saa += (double)a[i] * a[i], sbb += (double)b[i] * b[i], sab += (double)a[i] * b[i];
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        lo = b[i] < lo ? b[i] : lo, hi = b[i] > hi ? b[i] : hi;
        if (a[i] > a[r.argmax_a]) r.argmax_a = i;
        if (b[i] > b[r.argmax_b]) r.argmax_b = i;
    }
    double cov = sab - sa * sb / n, va = saa - sa * sa / n, vb = sbb - sb * sb / n;
    r.corr = cov / sqrt(va * vb);
    r.rel = md / (hi - lo);
    return r;
}

void pf_test_compare_logits(pf_test *t, const char *what, const float *got, const float *want, int n_pos, int n_vocab,
                            double min_corr, double max_rel, bool argmax) {
    double worst_corr = 1, worst_rel = 0;
    int argmax_ok = 0;
    for (int p = 0; p < n_pos; p++) {
        pf_logit_stats r = pf_test_logit_row(got + (size_t)p * n_vocab, want + (size_t)p * n_vocab, n_vocab);
        CHECK(t, r.corr >= min_corr, "%s: position %d correlation %.9f < %.9f", what, p, r.corr, min_corr);
        CHECK(t, r.rel <= max_rel, "%s: position %d max|diff| = %.3g of the range > %.3g", what, p, r.rel, max_rel);
        if (argmax) CHECK(t, r.argmax_a == r.argmax_b, "%s: position %d argmax %d != %d", what, p, r.argmax_a, r.argmax_b);
        argmax_ok += r.argmax_a == r.argmax_b;
        worst_corr = r.corr < worst_corr ? r.corr : worst_corr;
        worst_rel = r.rel > worst_rel ? r.rel : worst_rel;
    }
    printf("%-52s min corr %.9f, max|diff| %.2e of range, argmax %d/%d\n", what, worst_corr, worst_rel, argmax_ok, n_pos);
}

int pf_test_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0, k;
    char tmp[4096];
    while ((k = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && n + 1 < cap) {
            size_t m = k < cap - 1 - n ? k : cap - 1 - n;
            memcpy(out + n, tmp, m);
            n += m;
        }
    }
    if (out && cap > 0) out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pf_context *pf_test_make_ctx(pf_test *t, const pf_model *m, int64_t n_ctx, int64_t n_batch, pf_type kv, int threads) {
    pf_context_params p = pf_context_default_params();
    p.n_ctx = n_ctx, p.n_batch = n_batch, p.kv_type = kv, p.n_threads = threads;
    pf_error e = {0};
    pf_context *ctx = NULL;
    int rc = pf_context_create(m, &p, &ctx, &e);
    CHECK(t, rc == PF_OK, "context: %s", e.msg);
    return ctx;
}

float *pf_test_batch_logits(pf_test *t, pf_context *ctx, const int32_t *ids, int n) {
    CHECK(t, ctx != NULL, "decode: no context");
    if (ctx == NULL) return NULL;
    const int64_t n_vocab = pf_model_get_hparams(pf_context_model(ctx))->n_vocab;
    float *lg = malloc((size_t)n * (size_t)n_vocab * sizeof *lg);
    pf_error e = {0};
    int rc = lg ? pf_decode(ctx, ids, n, 0, lg, PF_LOGITS_ALL, &e) : PF_ERR_NOMEM;
    CHECK(t, rc == PF_OK, "decode: %s", e.msg);
    if (rc != PF_OK) {
        free(lg);
        return NULL;
    }
    return lg;
}
