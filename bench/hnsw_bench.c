/* HNSW benchmark: phiforge's index against hnswlib (bench/hnswlib_peer.cpp) in one process,
 * on the same clustered vectors, queries and exact ground truth.
 *
 * Data: `clusters` gaussian centres ~ N(0, 1)^dim; a point is its centre plus noise whose
 * standard deviation decays along the dimensions (sigma * exp(-j / 64)), which gives each
 * cluster an intrinsic dimension of roughly 64, closer to real sentence embeddings than
 * isotropic noise; then every vector is normalized (cosine). Queries come from the same
 * distribution. Ground truth: exact inner products through pf_matmul.
 * Both builds are single-threaded with the same M and ef_construction; queries run one at a
 * time on one thread (as ann-benchmarks does), each timing repeated `reps` times, best kept,
 * with the indexes interleaved per ef so that machine noise hits all of them alike.
 * Bytes per vector: file size / n, and resident-set growth during the build / n. */
#include <malloc.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "phiforge.h"

void *peer_create(int dim, int l2, int64_t max_elements, int M, int ef_construction, uint64_t seed);
void peer_add(void *p, const float *v, int64_t label);
void peer_set_ef(void *p, int ef);
int peer_search(void *p, const float *q, int k, int64_t *labels, float *dists);
void peer_save(void *p, const char *path);
void peer_free(void *p);

enum { K = 10, N_EF = 5, MAX_IDX = 5 };
static const int EFS[N_EF] = {10, 20, 40, 80, 160};

/* Thread CPU time by default: the machine this runs on is shared, and CPU time is not
 * inflated by time slices given to other processes (--clock wall for elapsed time). */
static clockid_t g_clock = CLOCK_THREAD_CPUTIME_ID;
static double now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static size_t heap_in_use(void) { struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; }
static double rss_bytes(void) { /* resident set: what an index really occupies, huge pages included */
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE);
}
static double file_size(const char *p) { struct stat st; return stat(p, &st) == 0 ? (double)st.st_size : -1; }

typedef struct { uint64_t s; } rng;
static double uni(rng *r) { /* (0, 1) */
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17;
    return ((r->s >> 11) + 0.5) * 0x1p-53;
}
static float gauss(rng *r) { return (float)(sqrt(-2.0 * log(uni(r))) * cos(6.283185307179586 * uni(r))); }

static void gen(float *out, int64_t n, int dim, const float *centres, int nc, float sigma, rng *r) {
    for (int64_t i = 0; i < n; i++) {
        const float *c = centres + (size_t)(uni(r) * nc) * dim;
        float *v = out + i * dim;
        double nn = 0;
        for (int j = 0; j < dim; j++) {
            v[j] = c[j] + sigma * expf(-(float)j / 64.0f) * gauss(r);
            nn += (double)v[j] * v[j];
        }
        float inv = (float)(1.0 / sqrt(nn));
        for (int j = 0; j < dim; j++) v[j] *= inv;
    }
}

/* Exact top-K by inner product for every query, blocks of queries through pf_matmul. */
static int ground_truth(const float *base, int64_t n, int dim, const float *q, int nq, int64_t *truth) {
    pf_compute *c = NULL;
    pf_error err;
    if (pf_compute_create(1, PF_ISA_AUTO, &c, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    const int B = 64;
    float *y = malloc(sizeof *y * (size_t)B * n);
    for (int q0 = 0; q0 < nq; q0 += B) {
        int nb = nq - q0 < B ? nq - q0 : B;
        if (pf_matmul(c, base, PF_TYPE_F32, n, dim, q + (size_t)q0 * dim, nb, y, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return -1;
        }
        for (int b = 0; b < nb; b++) {
            const float *row = y + (size_t)b * n;
            float best[K];
            int64_t id[K];
            int have = 0;
            for (int64_t i = 0; i < n; i++) {
                if (have == K && row[i] <= best[K - 1]) continue;
                int p = have < K ? have++ : K - 1;
                while (p > 0 && best[p - 1] < row[i]) { best[p] = best[p - 1]; id[p] = id[p - 1]; p--; }
                best[p] = row[i];
                id[p] = i;
            }
            memcpy(truth + (size_t)(q0 + b) * K, id, sizeof id);
        }
    }
    free(y);
    pf_compute_free(c);
    return 0;
}

typedef struct idx {
    const char *name;
    pf_hnsw *h;      /* phiforge, or */
    void *peer;      /* hnswlib      */
    double build_s, file_bpv, res_bpv, recall[N_EF], qps[N_EF];
} idx;

static int search_one(idx *x, const float *q, int dim, int ef, int64_t *lab) {
    if (x->peer) return peer_search(x->peer, q, K, lab, NULL);
    return (int)pf_hnsw_search(x->h, q, dim, K, ef, lab, NULL, NULL);
}

int main(int argc, char **argv) {
    int64_t n = 100000;
    int dim = 384, nq = 1000, nc = 100, M = 16, efc = 200, reps = 5, peer = 1;
    float sigma = 1.0f;
    const char *storages = "f32,f16,i8";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--n")) n = atoll(v);
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--queries")) nq = atoi(v);
        else if (!strcmp(a, "--clusters")) nc = atoi(v);
        else if (!strcmp(a, "--sigma")) sigma = (float)atof(v);
        else if (!strcmp(a, "--M")) M = atoi(v);
        else if (!strcmp(a, "--efc")) efc = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--storage")) storages = v;
        else if (!strcmp(a, "--peer")) peer = atoi(v);
        else if (!strcmp(a, "--clock")) g_clock = strcmp(v, "wall") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    printf("data: %lld x %d, %d gaussian clusters (sigma %.2f, decaying), normalized, cosine; %d queries\n",
           (long long)n, dim, nc, sigma, nq);
    printf("M %d, ef_construction %d, single-threaded build and queries, k = %d, best of %d timing runs, %s time\n", M,
           efc, K, reps, g_clock == CLOCK_MONOTONIC ? "wall" : "thread CPU");

    rng r = {0x9e3779b97f4a7c15ull};
    float *centres = malloc(sizeof *centres * (size_t)nc * dim);
    for (int i = 0; i < nc * dim; i++) centres[i] = gauss(&r);
    float *base = malloc(sizeof *base * (size_t)n * dim), *q = malloc(sizeof *q * (size_t)nq * dim);
    int64_t *truth = malloc(sizeof *truth * (size_t)nq * K), *lab = malloc(sizeof *lab * (size_t)nq * K);
    gen(base, n, dim, centres, nc, sigma, &r);
    gen(q, nq, dim, centres, nc, sigma, &r);
    double t0 = now();
    if (ground_truth(base, n, dim, q, nq, truth)) return 1;
    printf("ground truth: %.1f s\n", now() - t0);

    idx xs[MAX_IDX];
    int nx = 0;
    char path[128];
    pf_error err;
    if (peer) {
        idx *x = &xs[nx++];
        memset(x, 0, sizeof *x);
        x->name = "hnswlib 0.6.2 (f32)";
        double r0 = rss_bytes();
        t0 = now();
        x->peer = peer_create(dim, 0, n, M, efc, 100);
        for (int64_t i = 0; i < n; i++) peer_add(x->peer, base + i * dim, i);
        x->build_s = now() - t0;
        x->res_bpv = (rss_bytes() - r0) / n;
        snprintf(path, sizeof path, "/tmp/pf_hnsw_bench_%d.peer", (int)getpid());
        peer_save(x->peer, path);
        x->file_bpv = file_size(path) / n;
        unlink(path);
        printf("built %s in %.1f s\n", x->name, x->build_s);
        fflush(stdout);
    }
    static const struct { const char *key, *name; pf_vec_storage st; } kinds[] = {
        {"f32", "phiforge f32", PF_VEC_F32}, {"f16", "phiforge f16", PF_VEC_F16}, {"i8", "phiforge i8", PF_VEC_I8}};
    for (int s = 0; s < 3; s++) {
        if (!strstr(storages, kinds[s].key)) continue;
        idx *x = &xs[nx++];
        memset(x, 0, sizeof *x);
        x->name = kinds[s].name;
        pf_hnsw_params p = pf_hnsw_default_params(dim, PF_METRIC_COSINE);
        p.M = M;
        p.ef_construction = efc;
        p.storage = kinds[s].st;
        double r0 = rss_bytes();
        t0 = now();
        if (pf_hnsw_create(&p, &x->h, &err) || pf_hnsw_reserve(x->h, n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (int64_t i = 0; i < n; i++)
            if (pf_hnsw_add(x->h, i, base + i * dim, dim, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        x->build_s = now() - t0;
        x->res_bpv = (rss_bytes() - r0) / n;
        snprintf(path, sizeof path, "/tmp/pf_hnsw_bench_%d.idx", (int)getpid());
        if (pf_hnsw_save(x->h, path, 1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        x->file_bpv = file_size(path) / n;
        if (kinds[s].st == PF_VEC_F32 && nx < MAX_IDX) { /* the same index opened from its file */
            idx *m = &xs[nx++];
            memset(m, 0, sizeof *m);
            m->name = "phiforge f32 mmap";
            size_t m0 = heap_in_use();
            t0 = now();
            if (pf_hnsw_open(path, &m->h, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            m->build_s = now() - t0; /* open time */
            m->res_bpv = (double)(heap_in_use() - m0) / n; /* heap only: the rest is page cache */
            m->file_bpv = x->file_bpv;
        }
        unlink(path);
        printf("built %s in %.1f s\n", x->name, x->build_s);
        fflush(stdout);
    }

    for (int e = 0; e < N_EF; e++) {
        for (int i = 0; i < nx; i++) xs[i].qps[e] = 0;
        for (int rep = 0; rep < reps; rep++) {
            for (int i = 0; i < nx; i++) {
                idx *x = &xs[i];
                if (x->peer) peer_set_ef(x->peer, EFS[e]);
                t0 = now();
                for (int j = 0; j < nq; j++) search_one(x, q + (size_t)j * dim, dim, EFS[e], lab + (size_t)j * K);
                double qps = nq / (now() - t0);
                if (qps > x->qps[e]) x->qps[e] = qps;
                int hit = 0;
                for (int j = 0; j < nq; j++)
                    for (int a = 0; a < K; a++)
                        for (int b = 0; b < K; b++) hit += lab[(size_t)j * K + a] == truth[(size_t)j * K + b];
                x->recall[e] = (double)hit / ((double)nq * K);
            }
        }
    }

    printf("\n| index | build s | file B/vec | resident B/vec |\n|---|---|---|---|\n");
    for (int i = 0; i < nx; i++) {
        bool mm = strstr(xs[i].name, "mmap") != NULL;
        printf("| %s | %.*f%s | %.1f | %.1f%s |\n", xs[i].name, mm ? 3 : 1, xs[i].build_s, mm ? " (open)" : "",
               xs[i].file_bpv, xs[i].res_bpv, mm ? " (heap; the rest is shared page cache)" : "");
    }
    printf("\n| ef |");
    for (int i = 0; i < nx; i++) printf(" %s recall@10 | qps |", xs[i].name);
    printf("\n|---|");
    for (int i = 0; i < nx; i++) printf("---|---|");
    printf("\n");
    for (int e = 0; e < N_EF; e++) {
        printf("| %d |", EFS[e]);
        for (int i = 0; i < nx; i++) {
            printf(" %.4f | %.0f", xs[i].recall[e], xs[i].qps[e]);
            if (peer && i > 0) printf(" (%.2fx)", xs[i].qps[e] / xs[0].qps[e]);
            printf(" |");
        }
        printf("\n");
    }
    for (int i = 0; i < nx; i++) {
        if (xs[i].peer) peer_free(xs[i].peer);
        else pf_hnsw_free(xs[i].h);
    }
    free(centres); free(base); free(q); free(truth); free(lab);
    return 0;
}
