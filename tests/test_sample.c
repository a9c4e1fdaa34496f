/* Sampler against independent references: penalties change logits exactly as the llama.cpp /
 * OpenAI formulas say, top-k / top-p / min-p keep exactly the sets their definitions give,
 * candidate probabilities equal the filtered, temperature-scaled, renormalized softmax, and the
 * empirical frequencies of many draws match them (per-token binomial bound and chi-square).
 * Seeds: same seed -> same sequence, other seeds differ, reset restarts. */
#include <math.h>
#include <stdint.h>

#include "testing.h"

/* ---- reference chain, written from the definitions ----------------------------------------- */

typedef struct ref_cand { float logit; int32_t id; } ref_cand;

static int cmp_ref(const void *pa, const void *pb) {
    const ref_cand *a = pa, *b = pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id < b->id ? -1 : 1;
}

/* Kept ids (sorted, most likely first) and their final probabilities; returns the count. */
static int reference(const float *logits, int n, const pf_sampler_params *p, int32_t *ids, double *probs) {
    ref_cand *c = malloc((size_t)n * sizeof *c);
    for (int i = 0; i < n; i++) c[i] = (ref_cand){logits[i], i};
    qsort(c, (size_t)n, sizeof *c, cmp_ref);
    int m = n;
    if (p->temperature <= 0) m = 1;
    if (p->top_k > 0 && p->top_k < m) m = p->top_k;
    if (p->top_p < 1 && m > 1) { /* smallest prefix whose softmax mass (T = 1) is >= p */
        double z = 0, acc = 0;
        for (int i = 0; i < m; i++) z += exp((double)c[i].logit - c[0].logit);
        for (int i = 0; i < m; i++) {
            acc += exp((double)c[i].logit - c[0].logit) / z;
            if (acc >= p->top_p) { m = i + 1; break; }
        }
    }
    if (p->min_p > 0 && m > 1) { /* p_i >= min_p * p_max, probabilities over the current set */
        int k = 0;
        for (int i = 0; i < m; i++)
            if (exp((double)c[i].logit - c[0].logit) >= p->min_p) k = i + 1;
        m = k ? k : 1; /* the most likely token always stays (min_keep 1, as llama.cpp) */
    }
    double z = 0;
    double t = p->temperature > 0 ? p->temperature : 1;
    for (int i = 0; i < m; i++) z += exp(((double)c[i].logit - c[0].logit) / t);
    for (int i = 0; i < m; i++) {
        ids[i] = c[i].id;
        probs[i] = p->temperature > 0 ? exp(((double)c[i].logit - c[0].logit) / t) / z : 1.0;
    }
    free(c);
    return m;
}

static pf_sampler *make(pf_test *t, pf_sampler_params p, int n_vocab) {
    pf_sampler *s = NULL;
    pf_error e = {0};
    int rc = pf_sampler_create(&p, n_vocab, &s, &e);
    CHECK(t, rc == PF_OK && s, "create: %s", e.msg);
    return s;
}

static pf_sampler_params plain(float temp) { /* every filter off */
    pf_sampler_params p = pf_sampler_default_params();
    p.temperature = temp, p.top_k = 0, p.top_p = 1, p.min_p = 0;
    return p;
}

static void random_logits(float *l, int n, uint64_t seed, float scale) {
    pf_test_rng r = {seed};
    for (int i = 0; i < n; i++) l[i] = scale * pf_test_gauss(&r);
}

/* ---- candidates vs reference ---------------------------------------------------------------- */

static void check_candidates(pf_test *t, const char *what, const pf_sampler_params *p, const float *l, int n) {
    int32_t *ids = malloc((size_t)n * sizeof *ids), *rid = malloc((size_t)n * sizeof *rid);
    float *pr = malloc((size_t)n * sizeof *pr);
    double *rp = malloc((size_t)n * sizeof *rp);
    pf_sampler *s = make(t, *p, n);
    int64_t k = s ? pf_sampler_candidates(s, l, ids, pr) : -1;
    int m = reference(l, n, p, rid, rp);
    int same = k == m;
    double diff = 0, sum = 0;
    for (int i = 0; same && i < m; i++) {
        same = ids[i] == rid[i];
        diff = fmax(diff, fabs(pr[i] - rp[i]));
        sum += pr[i];
    }
    CHECK(t, same, "%s: kept %lld candidates, reference %d (or other ids)", what, (long long)k, m);
    CHECK(t, diff < 2e-6 && fabs(sum - 1) < 1e-5, "%s: probabilities differ by %g (sum %g)", what, diff, sum);
    pf_sampler_free(s);
    free(ids), free(rid), free(pr), free(rp);
}

static void test_filters(pf_test *t) {
    enum { N = 1000 };
    static float l[N];
    random_logits(l, N, 7, 2.0f);
    pf_sampler_params p = plain(1.0f);
    char what[64];
    int ks[] = {1, 2, 10, 999, 1000, 5000};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        p = plain(1.0f), p.top_k = ks[i];
        snprintf(what, sizeof what, "top-k %d", ks[i]);
        check_candidates(t, what, &p, l, N);
    }
    float ps[] = {0.0f, 0.05f, 0.5f, 0.9f, 0.999f};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        p = plain(1.0f), p.top_p = ps[i];
        snprintf(what, sizeof what, "top-p %g", (double)ps[i]);
        check_candidates(t, what, &p, l, N);
    }
    float mps[] = {0.01f, 0.1f, 0.5f, 1.0f, 2.0f};
    for (size_t i = 0; i < sizeof mps / sizeof mps[0]; i++) {
        p = plain(1.0f), p.min_p = mps[i];
        snprintf(what, sizeof what, "min-p %g", (double)mps[i]);
        check_candidates(t, what, &p, l, N);
    }
    p = pf_sampler_default_params(); /* top-k 40, top-p 0.95, min-p 0.05, T 0.8 */
    check_candidates(t, "default chain", &p, l, N);
    p.top_k = 0, p.temperature = 1.7f;
    check_candidates(t, "top-p + min-p at T 1.7", &p, l, N);
    p = plain(0.25f);
    check_candidates(t, "T 0.25 alone", &p, l, N);
    p = plain(0.0f);
    check_candidates(t, "greedy", &p, l, N);

    /* Properties straight from the definitions, independent of the reference code. */
    int32_t ids[N];
    float pr[N];
    p = plain(1.0f), p.top_p = 0.6f;
    pf_sampler *s = make(t, p, N);
    int64_t k = pf_sampler_candidates(s, l, ids, pr);
    double z = 0, mass = 0;
    for (int i = 0; i < N; i++) z += exp(l[i]);
    for (int64_t i = 0; i + 1 < k; i++) mass += exp(l[ids[i]]) / z;
    CHECK(t, mass < 0.6 && mass + exp(l[ids[k - 1]]) / z >= 0.6, "top-p prefix is not the smallest with mass >= p");
    pf_sampler_free(s);
    p = plain(1.0f), p.min_p = 0.2f;
    s = make(t, p, N);
    k = pf_sampler_candidates(s, l, ids, pr);
    float mx = l[0];
    for (int i = 1; i < N; i++) mx = fmaxf(mx, l[i]);
    int expect = 0;
    for (int i = 0; i < N; i++) expect += exp(l[i] - mx) >= 0.2;
    CHECK(t, k == expect, "min-p kept %lld, %d tokens have p >= 0.2 p_max", (long long)k, expect);
    pf_sampler_free(s);

    /* Ties: top-k keeps exactly k, the lowest ids. */
    float flat[N] = {0};
    p = plain(1.0f), p.top_k = 5;
    s = make(t, p, N);
    k = pf_sampler_candidates(s, flat, ids, pr);
    CHECK(t, k == 5 && ids[0] == 0 && ids[4] == 4 && fabsf(pr[3] - 0.2f) < 1e-6f, "ties: k %lld ids %d..%d", (long long)k,
          ids[0], ids[4]);
    pf_sampler_free(s);
    /* Ties through the full sort (top-p): half the mass is the 500 lowest ids, in order. */
    p = plain(1.0f), p.top_p = 0.5f;
    s = make(t, p, N);
    k = pf_sampler_candidates(s, flat, ids, pr);
    int ordered = k == 500;
    for (int64_t i = 0; ordered && i < k; i++) ordered = ids[i] == i;
    CHECK(t, ordered, "flat top-p 0.5 kept %lld, not ids 0..499 in order", (long long)k);
    pf_sampler_free(s);
    /* Few distinct values, many duplicates: the sort must still give the total order. */
    float few[N];
    for (int i = 0; i < N; i++) few[i] = (float)((i * 7919) % 5);
    p = plain(1.0f), p.top_p = 0.999f;
    check_candidates(t, "five distinct logits", &p, few, N);
}

/* ---- empirical frequencies ------------------------------------------------------------------ */

static void check_draws(pf_test *t, const char *what, const pf_sampler_params *p, const float *l, int n, int draws) {
    int32_t rid[256];
    double rp[256];
    int m = reference(l, n, p, rid, rp);
    long *count = calloc((size_t)n, sizeof *count);
    pf_sampler *s = make(t, *p, n);
    for (int i = 0; s && i < draws; i++) {
        int32_t id = pf_sampler_sample(s, l);
        if (id >= 0 && id < n) count[id]++;
    }
    long inside = 0;
    double chi2 = 0, worst = 0;
    for (int i = 0; i < m; i++) {
        double e = rp[i] * draws, sd = sqrt(draws * rp[i] * (1 - rp[i])) + 1e-12;
        inside += count[rid[i]];
        chi2 += (count[rid[i]] - e) * (count[rid[i]] - e) / e;
        worst = fmax(worst, fabs(count[rid[i]] - e) / sd);
    }
    /* 5 sigma per token: a false alarm has probability < 1e-6 each. chi2 with df = m - 1 stays
     * below df + 6 sqrt(2 df) except with negligible probability. */
    double df = m > 1 ? m - 1 : 1;
    CHECK(t, inside == draws, "%s: %ld draws outside the kept set", what, draws - inside);
    CHECK(t, worst < 5.0, "%s: a frequency is %.2f binomial sigmas off", what, worst);
    CHECK(t, chi2 < df + 6 * sqrt(2 * df), "%s: chi2 %.1f for %g degrees of freedom", what, chi2, df);
    pf_sampler_free(s);
    free(count);
}

static void test_frequencies(pf_test *t) {
    enum { N = 200 };
    float l[N];
    random_logits(l, N, 11, 1.5f);
    pf_sampler_params p = plain(1.0f);
    check_draws(t, "full softmax", &p, l, N, 100000);
    p = plain(1.5f), p.top_k = 20;
    check_draws(t, "top-k 20 at T 1.5", &p, l, N, 100000);
    p = plain(0.7f), p.top_p = 0.8f;
    check_draws(t, "top-p 0.8 at T 0.7", &p, l, N, 100000);
    p = plain(1.0f), p.min_p = 0.05f;
    check_draws(t, "min-p 0.05", &p, l, N, 100000);
    p = pf_sampler_default_params(), p.seed = 99;
    check_draws(t, "default chain", &p, l, N, 100000);
}

/* ---- penalties ---------------------------------------------------------------------------- */

static void test_penalties(pf_test *t) {
    enum { N = 16 };
    pf_sampler_params p = plain(1.0f);
    p.repeat_penalty = 1.3f, p.frequency_penalty = 0.5f, p.presence_penalty = 0.25f, p.repeat_last_n = 4;
    pf_sampler *s = make(t, p, N);
    if (!s) return;
    int32_t hist[] = {7, 5, 7, 9, 5, 11, 5}; /* window of 4: 9 5 11 5 -> counts 5:2 9:1 11:1, 7 gone */
    for (size_t i = 0; i < sizeof hist / sizeof hist[0]; i++) pf_sampler_accept(s, hist[i]);
    float l[N], got[N];
    for (int i = 0; i < N; i++) l[i] = got[i] = 0.5f * (float)i - 3.0f; /* 5: -0.5, 9: 1.5, 11: 2.5, 7: 0.5 */
    got[11] = 0.0f, l[11] = 0.0f;                                        /* zero counts as "<= 0": multiplied */
    pf_sampler_apply_penalties(s, got);
    float want[N];
    memcpy(want, l, sizeof l);
    want[5] = l[5] * 1.3f - 2 * 0.5f - 0.25f;
    want[9] = l[9] / 1.3f - 1 * 0.5f - 0.25f;
    want[11] = l[11] * 1.3f - 1 * 0.5f - 0.25f;
    int bad = -1;
    for (int i = 0; i < N; i++)
        if (fabsf(got[i] - want[i]) > 1e-6f) bad = i;
    CHECK(t, bad < 0, "penalized logit %d: %g, formula %g", bad, bad < 0 ? 0.0 : (double)got[bad], bad < 0 ? 0.0 : (double)want[bad]);
    /* Applying twice penalizes twice (the window is unchanged, nothing is left marked). */
    pf_sampler_apply_penalties(s, got);
    CHECK(t, fabsf(got[9] - (want[9] / 1.3f - 0.75f)) < 1e-6f && fabsf(got[7] - l[7]) < 1e-7f, "second application");
    /* Sampling uses the penalized logits: greedy moves off a repeated favourite. */
    pf_sampler_free(s);
    p = plain(0.0f), p.repeat_penalty = 2.0f, p.repeat_last_n = 8;
    s = make(t, p, N);
    float g[N] = {0};
    g[3] = 2.0f, g[4] = 1.5f;
    CHECK(t, pf_sampler_sample(s, g) == 3, "greedy before the penalty");
    pf_sampler_accept(s, 3);
    CHECK(t, pf_sampler_sample(s, g) == 4, "greedy after the penalty (2 / 2 = 1 < 1.5)");
    pf_sampler_clear_history(s);
    CHECK(t, pf_sampler_sample(s, g) == 3, "cleared history");
    pf_sampler_free(s);
    /* repeat_last_n 0: no penalty at all. */
    p.repeat_last_n = 0, p.frequency_penalty = 3;
    s = make(t, p, N);
    pf_sampler_accept(s, 3);
    memcpy(got, g, sizeof g);
    pf_sampler_apply_penalties(s, got);
    CHECK(t, !memcmp(got, g, sizeof g), "window 0 changed logits");
    pf_sampler_free(s);
}

/* ---- seeds, greedy, odd inputs, errors -------------------------------------------------------- */

static void test_seeds(pf_test *t) {
    enum { N = 64, K = 500 };
    float l[N];
    random_logits(l, N, 3, 1.0f);
    pf_sampler_params p = plain(1.0f);
    int32_t a[K], b[K], c[K];
    p.seed = 1234;
    pf_sampler *s1 = make(t, p, N), *s2 = make(t, p, N);
    p.seed = 1235;
    pf_sampler *s3 = make(t, p, N);
    if (!s1 || !s2 || !s3) return;
    for (int i = 0; i < K; i++) a[i] = pf_sampler_sample(s1, l), b[i] = pf_sampler_sample(s2, l), c[i] = pf_sampler_sample(s3, l);
    CHECK(t, !memcmp(a, b, sizeof a), "same seed, different sequences");
    CHECK(t, memcmp(a, c, sizeof a) != 0, "different seeds, same sequence");
    pf_sampler_reset(s1);
    for (int i = 0; i < K; i++) b[i] = pf_sampler_sample(s1, l);
    CHECK(t, !memcmp(a, b, sizeof a), "reset does not restart the sequence");

    /* Greedy: argmax, lowest id on ties, no randomness consumed. */
    p = plain(0.0f);
    pf_sampler *g = make(t, p, N);
    float tie[N] = {0};
    tie[9] = tie[4] = 1.0f;
    CHECK(t, pf_sampler_sample(g, tie) == 4, "greedy tie");
    CHECK(t, pf_sampler_sample(g, l) == pf_sampler_sample(g, l), "greedy not deterministic");
    /* NaN counts as -inf; all -inf still returns a token. */
    float odd[N];
    for (int i = 0; i < N; i++) odd[i] = NAN;
    odd[17] = -1.0f, odd[30] = -2.0f;
    int ok = 1;
    for (int i = 0; i < 200; i++) {
        int32_t id = pf_sampler_sample(s3, odd);
        ok &= id == 17 || id == 30;
    }
    CHECK(t, ok, "NaN logits sampled");
    for (int i = 0; i < N; i++) odd[i] = -INFINITY;
    int32_t id = pf_sampler_sample(s3, odd);
    CHECK(t, id >= 0 && id < N, "all -inf: %d", id);
    CHECK(t, pf_sampler_sample(NULL, l) == PF_ERR_ARG && pf_sampler_accept(s3, N) == PF_ERR_ARG, "bad arguments");
    pf_sampler_free(s1), pf_sampler_free(s2), pf_sampler_free(s3), pf_sampler_free(g);

    pf_error e = {0};
    pf_sampler *bad = NULL;
    p = pf_sampler_default_params();
    p.top_p = NAN;
    CHECK(t, pf_sampler_create(&p, N, &bad, &e) == PF_ERR_ARG && !bad, "NaN top_p accepted");
    p = pf_sampler_default_params(), p.repeat_penalty = 0;
    CHECK(t, pf_sampler_create(&p, N, &bad, &e) == PF_ERR_ARG && strstr(e.msg, "repeat_penalty"), "repeat 0: %s", e.msg);
    p = pf_sampler_default_params(), p.repeat_last_n = -1;
    CHECK(t, pf_sampler_create(&p, N, &bad, &e) == PF_ERR_ARG, "negative window accepted");
    p = pf_sampler_default_params();
    CHECK(t, pf_sampler_create(&p, 0, &bad, &e) == PF_ERR_ARG, "n_vocab 0 accepted");
}

int main(void) {
    pf_test t = {0};
    test_filters(&t);
    test_frequencies(&t);
    test_penalties(&t);
    test_seeds(&t);
    return TEST_REPORT(&t);
}
