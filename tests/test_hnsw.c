/* HNSW vector index: SIMD vs scalar distances, recall against exact search, deletes,
 * replacement, persistence (save -> open -> identical results, copy-on-write edits) and
 * hostile files (truncated or corrupted: an error naming the field, never a crash). */
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include "testing.h"
#include "vindex/vindex_internal.h"

/* ---- data ---- */

/* n vectors of dim around n_clusters gaussian centres (sigma 1); the noise around a centre
 * decays along the dimensions (spread * exp(-j / 16)), so that clusters have a low intrinsic
 * dimension as real embeddings do. */
static float *clustered(pf_test_rng *r, int n, int dim, int n_clusters, float spread) {
    float *c = malloc(sizeof *c * (size_t)n_clusters * dim), *v = malloc(sizeof *v * (size_t)n * dim);
    for (int i = 0; i < n_clusters * dim; i++) c[i] = pf_test_gauss(r);
    for (int i = 0; i < n; i++) {
        const float *ci = c + (size_t)(pf_test_next(r) % (uint64_t)n_clusters) * dim;
        for (int j = 0; j < dim; j++) v[(size_t)i * dim + j] = ci[j] + spread * expf(-(float)j / 16.0f) * pf_test_gauss(r);
    }
    free(c);
    return v;
}

static pf_hnsw *build(pf_test *t, const pf_hnsw_params *p, const float *v, int n, int64_t label0) {
    pf_hnsw *h = NULL;
    pf_error err;
    CHECK(t, pf_hnsw_create(p, &h, &err) == PF_OK, "%s", err.msg);
    if (!h) return NULL;
    for (int i = 0; i < n; i++) {
        int rc = pf_hnsw_add(h, label0 + i, v + (size_t)i * p->dim, p->dim, &err);
        if (rc) { CHECK(t, rc == PF_OK, "add %d: %s", i, err.msg); break; }
    }
    return h;
}

/* Mean recall@k of the graph search against the exhaustive one over nq queries. */
static double recall(const pf_hnsw *h, const float *q, int nq, int k, int ef) {
    int64_t got[64], want[64];
    int hit = 0, total = 0;
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * pf_hnsw_get_params(h).dim;
        int64_t ng = pf_hnsw_search(h, qi, pf_hnsw_get_params(h).dim, k, ef, got, NULL, NULL);
        int64_t nw = pf_hnsw_search_exact(h, qi, pf_hnsw_get_params(h).dim, k, want, NULL, NULL);
        for (int64_t a = 0; a < nw; a++)
            for (int64_t b = 0; b < ng; b++) hit += want[a] == got[b];
        total += (int)nw;
    }
    return total ? (double)hit / total : 1.0;
}

/* ---- distances ---- */

static void test_distances(pf_test *t) {
    const pf_vdist_table *sc = pf_vdist_get(PF_ISA_SCALAR), *av = pf_vdist_get(PF_ISA_AVX2);
    CHECK(t, sc != NULL, "scalar table");
    if (!av) printf("note: no AVX2 on this CPU, SIMD kernels not compared\n");
    static const int dims[] = {1, 7, 8, 15, 31, 32, 33, 63, 64, 65, 384, 385, 768};
    pf_test_rng r = {0x1234};
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int d = dims[di];
        float *a = malloc(4 * d), *b = malloc(4 * d);
        void *ea = malloc(pf_vec_bytes(PF_VEC_F32, d) + 16), *eb = malloc(pf_vec_bytes(PF_VEC_F32, d) + 16);
        for (int rep = 0; rep < 4; rep++) {
            double dot = 0, l2 = 0, mag = 0;
            for (int i = 0; i < d; i++) {
                a[i] = pf_test_gauss(&r);
                b[i] = rep == 3 ? a[i] : pf_test_gauss(&r); /* rep 3: identical vectors */
                dot += (double)a[i] * b[i];
                l2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
                mag += fabs((double)a[i] * b[i]) + (double)a[i] * a[i];
            }
            for (int st = PF_VEC_F32; st <= PF_VEC_I8; st++) {
                /* query side: f32 (i8: an i8 record), stored side: the encoding */
                const void *qa = a;
                if (st == PF_VEC_I8) { pf_vec_encode(PF_VEC_I8, a, d, ea); qa = ea; }
                pf_vec_encode((pf_vec_storage)st, b, d, eb);
                /* reference in double over the decoded stored values */
                float *bd = malloc(4 * d), *ad = malloc(4 * d);
                pf_vec_decode((pf_vec_storage)st, eb, d, bd);
                if (st == PF_VEC_I8) pf_vec_decode(PF_VEC_I8, ea, d, ad);
                else memcpy(ad, a, 4 * d);
                double rdot = 0, rl2 = 0;
                for (int i = 0; i < d; i++) {
                    rdot += (double)ad[i] * bd[i];
                    rl2 += ((double)ad[i] - bd[i]) * ((double)ad[i] - bd[i]);
                }
                double tol = 1e-5 * (mag + 1.0) + (st == PF_VEC_I8 ? 1e-4 * (mag + 1.0) : 0);
                for (int kind = 0; kind < 2; kind++) {
                    double ref = kind == PF_VK_IP ? 1.0 - rdot : rl2;
                    float s = sc->fn[st][kind](qa, eb, d);
                    CHECK(t, fabs(s - ref) <= tol, "scalar st=%d kind=%d dim=%d: %g vs %g", st, kind, d, s, ref);
                    if (av) {
                        float x = av->fn[st][kind](qa, eb, d);
                        CHECK(t, fabs(x - ref) <= tol, "avx2 st=%d kind=%d dim=%d: %g vs %g", st, kind, d, x, ref);
                        if (st == PF_VEC_I8) CHECK(t, x == s, "i8 avx2 == scalar dim=%d: %g vs %g", d, x, s);
                    }
                }
                free(bd);
                free(ad);
            }
            /* encodings: f16 widening identical in both tables, i8 within half a step */
            float *back = malloc(4 * d), *back2 = malloc(4 * d);
            pf_vec_encode(PF_VEC_F16, b, d, eb);
            sc->f16_decode(eb, back, d);
            pf_vec_decode(PF_VEC_F16, eb, d, back2);
            CHECK(t, !memcmp(back, back2, 4 * (size_t)d), "f16 decode dim=%d", d);
            if (av) {
                av->f16_decode(eb, back2, d);
                CHECK(t, !memcmp(back, back2, 4 * (size_t)d), "avx2 f16 decode dim=%d", d);
            }
            free(back2);
            pf_vec_encode(PF_VEC_I8, b, d, eb);
            pf_vec_decode(PF_VEC_I8, eb, d, back);
            float amax = 0;
            for (int i = 0; i < d; i++) amax = fmaxf(amax, fabsf(b[i]));
            int bad = 0;
            for (int i = 0; i < d; i++) bad += fabsf(back[i] - b[i]) > amax / 127.0f * 0.5001f + 1e-6f;
            CHECK(t, bad == 0, "i8 round trip dim=%d: %d values off", d, bad);
            free(back);
            (void)dot;
            (void)l2;
        }
        free(a); free(b); free(ea); free(eb);
    }
}

/* ---- API edges ---- */

static void test_edges(pf_test *t) {
    pf_error err;
    pf_hnsw *h = NULL;
    pf_hnsw_params p = pf_hnsw_default_params(8, PF_METRIC_COSINE);
    p.dim = 0;
    CHECK(t, pf_hnsw_create(&p, &h, &err) == PF_ERR_ARG, "dim 0 refused");
    p = pf_hnsw_default_params(8, PF_METRIC_COSINE);
    p.M = 1;
    CHECK(t, pf_hnsw_create(&p, &h, &err) == PF_ERR_ARG, "M 1 refused");
    p = pf_hnsw_default_params(8, PF_METRIC_COSINE);
    CHECK(t, pf_hnsw_create(&p, &h, &err) == PF_OK, "%s", err.msg);

    float q[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t lab[4];
    float dist[4];
    CHECK(t, pf_hnsw_count(h) == 0, "empty count");
    CHECK(t, pf_hnsw_search(h, q, 8, 4, 10, lab, dist, &err) == 0, "empty search: %s", err.msg);
    CHECK(t, pf_hnsw_search_exact(h, q, 8, 4, lab, dist, &err) == 0, "empty exact search");
    CHECK(t, pf_hnsw_remove(h, 7, &err) == PF_ERR_NOT_FOUND, "remove from empty");

    CHECK(t, pf_hnsw_add(h, 1, q, 9, &err) == PF_ERR_ARG, "add with wrong dim");
    CHECK(t, strstr(err.msg, "9 dimensions") && strstr(err.msg, "8"), "message names dims: %s", err.msg);
    CHECK(t, pf_hnsw_search(h, q, 7, 1, 10, lab, dist, &err) == PF_ERR_ARG, "search with wrong dim");
    float bad[8] = {1, 2, NAN, 4, 5, 6, 7, 8};
    CHECK(t, pf_hnsw_add(h, 1, bad, 8, &err) == PF_ERR_ARG, "NaN refused");
    CHECK(t, pf_hnsw_search(h, q, 8, 0, 10, lab, dist, &err) == PF_ERR_ARG, "k 0 refused");

    /* a few vectors: k > count returns count, closest first */
    for (int i = 0; i < 3; i++) {
        float v[8];
        for (int j = 0; j < 8; j++) v[j] = (float)(j == i) + 0.01f * (float)j;
        CHECK(t, pf_hnsw_add(h, 100 + i, v, 8, &err) == PF_OK, "%s", err.msg);
    }
    float e1[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    int64_t n = pf_hnsw_search(h, e1, 8, 4, 10, lab, dist, &err);
    CHECK(t, n == 3, "k > count returns count: %lld", (long long)n);
    CHECK(t, lab[0] == 101 && dist[0] <= dist[1] && dist[1] <= dist[2], "closest first: %lld", (long long)lab[0]);
    CHECK(t, pf_hnsw_contains(h, 102) && !pf_hnsw_contains(h, 103), "contains");
    CHECK(t, pf_hnsw_remove(h, 101, &err) == PF_OK && pf_hnsw_count(h) == 2, "remove");
    n = pf_hnsw_search(h, e1, 8, 4, 10, lab, dist, &err);
    CHECK(t, n == 2 && lab[0] != 101 && lab[1] != 101, "deleted not returned");
    pf_hnsw_free(h);

    /* zero vectors under cosine do not divide by zero */
    p.exact_below = 0;
    CHECK(t, pf_hnsw_create(&p, &h, &err) == PF_OK, "%s", err.msg);
    float z[8] = {0};
    CHECK(t, pf_hnsw_add(h, 5, z, 8, &err) == PF_OK && pf_hnsw_add(h, 6, q, 8, &err) == PF_OK, "zero vector add");
    CHECK(t, pf_hnsw_search(h, z, 8, 2, 10, lab, dist, &err) == 2 && isfinite(dist[0]), "zero query");
    pf_hnsw_free(h);
}

/* ---- recall, deletes, replacement ---- */

enum { DIM = 64, N = 5000, NQ = 200 };

static void test_recall(pf_test *t, const float *v, const float *q, pf_metric metric, pf_vec_storage st, int n,
                        double want) {
    pf_hnsw_params p = pf_hnsw_default_params(DIM, metric);
    p.storage = st;
    p.exact_below = 0; /* always the graph */
    pf_hnsw *h = build(t, &p, v, n, 0);
    if (!h) return;
    double r10 = recall(h, q, NQ, 10, 100);
    printf("recall@10 (ef 100, n %d, metric %d, storage %d): %.4f\n", n, metric, st, r10);
    CHECK(t, r10 >= want, "recall@10 %.4f < %.2f (metric %d storage %d)", r10, want, metric, st);
    pf_hnsw_free(h);
}

static void test_deletes(pf_test *t, const float *v, const float *q) {
    pf_error err;
    pf_hnsw_params p = pf_hnsw_default_params(DIM, PF_METRIC_COSINE);
    p.exact_below = 0;
    pf_hnsw *h = build(t, &p, v, 3000, 0);
    if (!h) return;
    for (int64_t l = 0; l < 3000; l += 3) CHECK(t, pf_hnsw_remove(h, l, &err) == PF_OK, "%s", err.msg);
    CHECK(t, pf_hnsw_count(h) == 2000, "count after removes: %lld", (long long)pf_hnsw_count(h));
    int bad = 0;
    int64_t lab[50];
    for (int i = 0; i < NQ; i++) {
        int64_t n = pf_hnsw_search(h, q + (size_t)i * DIM, DIM, 50, 80, lab, NULL, &err);
        for (int64_t j = 0; j < n; j++) bad += lab[j] % 3 == 0;
        bad += n != 50;
    }
    CHECK(t, bad == 0, "%d deleted labels returned (or short results)", bad);
    double r = recall(h, q, NQ, 10, 64);
    CHECK(t, r >= 0.95, "recall with a third deleted: %.4f", r);

    /* re-adding reuses deleted slots: the slot count does not grow */
    pf_hnsw_stats s0, s1;
    pf_hnsw_get_stats(h, &s0);
    for (int64_t l = 0; l < 3000; l += 3) CHECK(t, pf_hnsw_add(h, l, v + (size_t)l * DIM, DIM, &err) == PF_OK, "%s", err.msg);
    pf_hnsw_get_stats(h, &s1);
    CHECK(t, s1.slots == s0.slots && s1.deleted <= 1 && s1.count == 3000, /* the entry point is never reused */
          "slots reused: %lld -> %lld slots, %lld deleted", (long long)s0.slots, (long long)s1.slots, (long long)s1.deleted);
    r = recall(h, q, NQ, 10, 64);
    CHECK(t, r >= 0.95, "recall after slot reuse: %.4f", r);

    /* replacing a label: its new vector is found, its old one is not */
    int64_t target = 1234;
    const float *newv = q; /* query 0 */
    CHECK(t, pf_hnsw_add(h, target, newv, DIM, &err) == PF_OK, "%s", err.msg);
    CHECK(t, pf_hnsw_count(h) == 3000, "replace keeps the count");
    float d[1];
    CHECK(t, pf_hnsw_search(h, newv, DIM, 1, 40, lab, d, &err) == 1 && lab[0] == target && d[0] < 1e-5f,
          "replaced vector found: %lld %g", (long long)lab[0], d[0]);
    CHECK(t, pf_hnsw_search(h, v + (size_t)target * DIM, DIM, 1, 40, lab, d, &err) == 1 && (lab[0] != target || d[0] > 1e-4f),
          "old vector gone");
    pf_hnsw_free(h);
}

/* ---- persistence ---- */

static bool same_results(pf_test *t, const pf_hnsw *a, const pf_hnsw *b, const float *q, int nq, const char *what) {
    int64_t la[10], lb[10];
    float da[10], db[10];
    int diff = 0;
    for (int i = 0; i < nq; i++) {
        int64_t na = pf_hnsw_search(a, q + (size_t)i * DIM, DIM, 10, 40, la, da, NULL);
        int64_t nb = pf_hnsw_search(b, q + (size_t)i * DIM, DIM, 10, 40, lb, db, NULL);
        diff += na != nb || memcmp(la, lb, sizeof *la * (size_t)na) || memcmp(da, db, sizeof *da * (size_t)na);
    }
    CHECK(t, diff == 0, "%s: %d queries differ", what, diff);
    return diff == 0;
}

static char g_path[256], g_path2[256];

static void test_save_open(pf_test *t, const float *v, const float *q) {
    pf_error err;
    pf_hnsw_params p = pf_hnsw_default_params(DIM, PF_METRIC_L2);
    p.exact_below = 0;
    p.storage = PF_VEC_F16;
    pf_hnsw *h = build(t, &p, v, 2500, 1000);
    if (!h) return;
    for (int64_t l = 1000; l < 1100; l++) pf_hnsw_remove(h, l, &err);
    CHECK(t, pf_hnsw_save(h, g_path, 42, &err) == PF_OK, "%s", err.msg);
    CHECK(t, access(g_path, F_OK) == 0, "file written");
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_path);
    CHECK(t, access(tmp, F_OK) != 0, "no temporary left");

    pf_hnsw *m = NULL;
    uint64_t gen = 0;
    CHECK(t, pf_hnsw_open(g_path, &m, &gen, &err) == PF_OK, "%s", err.msg);
    if (!m) { pf_hnsw_free(h); return; }
    CHECK(t, gen == 42, "generation %llu", (unsigned long long)gen);
    pf_hnsw_stats s;
    pf_hnsw_get_stats(m, &s);
    CHECK(t, s.mapped_bytes > 0 && s.count == 2400 && s.deleted == 100, "mapped: %zu bytes, %lld live", s.mapped_bytes,
          (long long)s.count);
    same_results(t, h, m, q, 50, "save -> open");

    /* edits after open: slot reuse writes into the private mapping, growth moves to heap */
    size_t fsz0 = 0, fsz1 = 0;
    void *before = pf_test_read_file(g_path, &fsz0);
    for (int64_t l = 1100; l < 1150; l++) {
        CHECK(t, pf_hnsw_remove(m, l, &err) == PF_OK && pf_hnsw_remove(h, l, &err) == PF_OK, "remove after open");
    }
    for (int i = 0; i < 300; i++) { /* 150 reuse deleted slots, the rest append */
        const float *x = v + (size_t)(2500 + i) * DIM;
        CHECK(t, pf_hnsw_add(m, 9000 + i, x, DIM, &err) == PF_OK && pf_hnsw_add(h, 9000 + i, x, DIM, &err) == PF_OK, "%s", err.msg);
    }
    pf_hnsw_get_stats(m, &s);
    CHECK(t, s.mapped_bytes == 0 && s.count == 2650, "copied to heap after growth: %zu, %lld", s.mapped_bytes, (long long)s.count);
    same_results(t, h, m, q, 50, "same edits on built and opened index");
    void *after = pf_test_read_file(g_path, &fsz1);
    CHECK(t, before && after && fsz0 == fsz1 && memcmp(before, after, fsz0) == 0, "file unchanged by edits");
    free(before);
    free(after);

    CHECK(t, pf_hnsw_save(m, g_path2, 43, &err) == PF_OK, "%s", err.msg);
    pf_hnsw *m2 = NULL;
    CHECK(t, pf_hnsw_open(g_path2, &m2, &gen, &err) == PF_OK && gen == 43, "%s", err.msg);
    if (m2) same_results(t, h, m2, q, 50, "save -> open after edits");

    /* a remove on a freshly mapped index (copy-on-write of one page) */
    pf_hnsw *m3 = NULL;
    CHECK(t, pf_hnsw_open(g_path2, &m3, NULL, &err) == PF_OK, "%s", err.msg);
    if (m3) {
        CHECK(t, pf_hnsw_remove(m3, 9000, &err) == PF_OK && !pf_hnsw_contains(m3, 9000), "remove on mapped");
        pf_hnsw_get_stats(m3, &s);
        CHECK(t, s.mapped_bytes > 0, "still mapped after remove");
    }
    pf_hnsw_free(m3);
    pf_hnsw_free(m2);
    pf_hnsw_free(m);
    pf_hnsw_free(h);

    /* empty index round trip */
    pf_hnsw *e = NULL, *e2 = NULL;
    pf_hnsw_create(&p, &e, &err);
    CHECK(t, pf_hnsw_save(e, g_path2, 7, &err) == PF_OK, "%s", err.msg);
    CHECK(t, pf_hnsw_open(g_path2, &e2, &gen, &err) == PF_OK && gen == 7 && pf_hnsw_count(e2) == 0, "%s", err.msg);
    if (e2) CHECK(t, pf_hnsw_add(e2, 1, v, DIM, &err) == PF_OK && pf_hnsw_count(e2) == 1, "add to opened empty");
    pf_hnsw_free(e);
    pf_hnsw_free(e2);
}

/* ---- hostile files ---- */

static int open_bytes(const void *b, size_t n, pf_error *err, pf_hnsw **out) {
    FILE *f = fopen(g_path2, "wb");
    if (!f) return -100;
    if (n) fwrite(b, 1, n, f);
    fclose(f);
    *out = NULL;
    return pf_hnsw_open(g_path2, out, NULL, err);
}

static void put32(uint8_t *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void fix_checksum(uint8_t *b) {
    uint64_t c = pf_hnsw_fnv1a(b, PF_HNSW_HDR_CHECKSUM);
    memcpy(b + PF_HNSW_HDR_CHECKSUM, &c, 8);
}

static void expect_error(pf_test *t, const uint8_t *b, size_t n, const char *needle, const char *what) {
    pf_error err = {0};
    pf_hnsw *h;
    int rc = open_bytes(b, n, &err, &h);
    CHECK(t, rc == PF_ERR_FORMAT || rc == PF_ERR_UNSUPPORTED, "%s: rc %d", what, rc);
    CHECK(t, strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    pf_hnsw_free(h);
}

static void test_corrupt(pf_test *t, const float *v, const float *q) {
    pf_error err;
    pf_hnsw_params p = pf_hnsw_default_params(16, PF_METRIC_COSINE);
    p.M = 4; /* small and many levels, so upper lists exist */
    p.exact_below = 0;
    pf_hnsw *h = NULL;
    pf_hnsw_create(&p, &h, &err);
    for (int i = 0; i < 300; i++) pf_hnsw_add(h, i, v + (size_t)i * DIM, 16, &err);
    pf_hnsw_remove(h, 5, &err);
    CHECK(t, pf_hnsw_save(h, g_path, 1, &err) == PF_OK, "%s", err.msg);
    size_t n = 0;
    uint8_t *good = pf_test_read_file(g_path, &n), *b = malloc(n + 8);
    if (!good || !b) { free(good); free(b); pf_hnsw_free(h); return; }
    pf_hnsw_layout l;
    pf_hnsw_layout_of(h->n, h->vec_bytes, h->M0, h->upper_n, &l);
    CHECK(t, l.end == n && h->upper_n > 0, "layout matches the file (%llu vs %zu)", (unsigned long long)l.end, n);

    const size_t cuts[] = {0, 1, 64, 127, 128, 129, (size_t)l.off[PF_HNSW_SEC_LINKS0] + 5, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu", cuts[i]);
        expect_error(t, good, cuts[i], cuts[i] < 128 ? "header" : "truncated", what);
    }
    memcpy(b, good, n); b[n] = 0;
    expect_error(t, b, n + 1, "unexpected bytes", "trailing byte");
    memcpy(b, good, n); b[3] ^= 1;
    expect_error(t, b, n, "offset 0 (magic)", "magic");
    memcpy(b, good, n); b[PF_HNSW_HDR_GENERATION] ^= 1;
    expect_error(t, b, n, "checksum", "header checksum");
    memcpy(b, good, n); put32(b, PF_HNSW_HDR_DIM, 0); fix_checksum(b);
    expect_error(t, b, n, "offset 16 (dim)", "dim 0");
    memcpy(b, good, n); put32(b, PF_HNSW_HDR_DIM, 17); fix_checksum(b);
    expect_error(t, b, n, "(vec_bytes)", "dim without matching sizes");
    memcpy(b, good, n); put32(b, PF_HNSW_HDR_STORAGE, 9); fix_checksum(b);
    expect_error(t, b, n, "offset 24 (storage)", "storage");
    memcpy(b, good, n); put32(b, PF_HNSW_HDR_EP, 1000); fix_checksum(b);
    expect_error(t, b, n, "(entry_point)", "entry point");
    memcpy(b, good, n); put32(b, PF_HNSW_HDR_DELETED, 2); fix_checksum(b);
    expect_error(t, b, n, "(n_deleted)", "deleted count");
    memcpy(b, good, n); put32(b, (size_t)l.off[PF_HNSW_SEC_LINKS0] + 4 * 37, 300);
    expect_error(t, b, n, "links0 of slot 4", "link out of range");
    memcpy(b, good, n); b[l.off[PF_HNSW_SEC_LEVELS] + 17] = 0x1f;
    expect_error(t, b, n, "levels[17]", "level above max");
    memcpy(b, good, n); memcpy(b + l.off[PF_HNSW_SEC_LABELS] + 8 * 9, b + l.off[PF_HNSW_SEC_LABELS] + 8 * 10, 8);
    expect_error(t, b, n, "labels[10]", "duplicate label");
    /* an upper-level neighbour that lives only on level 0 */
    uint32_t low = 0;
    while (low < h->n && pf_hnsw_level(h, low) != 0) low++;
    memcpy(b, good, n); put32(b, (size_t)l.off[PF_HNSW_SEC_UPPER], low);
    expect_error(t, b, n, "level-1 list", "upper link to a level-0 node");

    /* random corruption anywhere: open fails cleanly or yields a searchable index */
    pf_test_rng r = {99};
    int opened = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(b, good, n);
        int flips = 1 + (int)(pf_test_next(&r) % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = it % 3 == 0 ? (size_t)(pf_test_next(&r) % 128) : (size_t)(pf_test_next(&r) % n);
            b[at] = (uint8_t)pf_test_next(&r);
        }
        if (it % 3 == 0) fix_checksum(b);
        pf_hnsw *m = NULL;
        int rc = open_bytes(b, n, &err, &m);
        if (rc == PF_OK) {
            opened++;
            int64_t lab[10];
            pf_hnsw_search(m, q, 16, 10, 20, lab, NULL, NULL);
            pf_hnsw_add(m, 100000 + it, q + DIM, 16, NULL);
        } else {
            CHECK(t, err.msg[0] != 0, "error without a message (rc %d)", rc);
        }
        pf_hnsw_free(m);
    }
    printf("random corruption: %d of 300 files still opened (vector bytes are not checked)\n", opened);
    free(good);
    free(b);
    pf_hnsw_free(h);
}

/* ---- determinism and concurrent searches ---- */

typedef struct { const pf_hnsw *h; const float *q; int64_t lab[NQ][10]; } search_job;
static void *search_all(void *arg) {
    search_job *j = arg;
    for (int i = 0; i < NQ; i++) pf_hnsw_search(j->h, j->q + (size_t)i * DIM, DIM, 10, 40, j->lab[i], NULL, NULL);
    return NULL;
}

static void test_threads_and_seed(pf_test *t, const float *v, const float *q) {
    pf_hnsw_params p = pf_hnsw_default_params(DIM, PF_METRIC_IP);
    p.exact_below = 0;
    pf_hnsw *a = build(t, &p, v, 2000, 0), *b = build(t, &p, v, 2000, 0);
    if (a && b) same_results(t, a, b, q, NQ, "same seed, same graph");
    static search_job j1, j2, j0;
    j0.h = j1.h = j2.h = a;
    j0.q = j1.q = j2.q = q;
    search_all(&j0);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, search_all, &j1);
    pthread_create(&t2, NULL, search_all, &j2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(t, !memcmp(j0.lab, j1.lab, sizeof j0.lab) && !memcmp(j0.lab, j2.lab, sizeof j0.lab), "concurrent searches agree");
    pf_hnsw_free(a);
    pf_hnsw_free(b);
}

int main(void) {
    pf_test t = {0};
    snprintf(g_path, sizeof g_path, "/tmp/pf_test_hnsw_%d.idx", (int)getpid());
    snprintf(g_path2, sizeof g_path2, "/tmp/pf_test_hnsw_%d_b.idx", (int)getpid());
    pf_test_rng r = {0x5eedf00d};
    float *v = clustered(&r, N + 400, DIM, 50, 1.0f);
    float *q = clustered(&r, NQ, DIM, 50, 1.0f);

    test_distances(&t);
    test_edges(&t);
    test_recall(&t, v, q, PF_METRIC_COSINE, PF_VEC_F32, N, 0.95);
    test_recall(&t, v, q, PF_METRIC_L2, PF_VEC_F32, 2000, 0.95);
    test_recall(&t, v, q, PF_METRIC_COSINE, PF_VEC_F16, 2000, 0.95);
    test_recall(&t, v, q, PF_METRIC_COSINE, PF_VEC_I8, 2000, 0.95);
    test_deletes(&t, v, q);
    test_save_open(&t, v, q);
    test_corrupt(&t, v, q);
    test_threads_and_seed(&t, v, q);

    unlink(g_path);
    unlink(g_path2);
    free(v);
    free(q);
    return TEST_REPORT(&t);
}
