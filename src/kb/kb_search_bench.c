/* Search latency at scale: builds a synthetic KB of n chunks (English-like text: a Zipf-
 * distributed vocabulary whose 33 most frequent words are the real English stopwords), then
 * times pf_retriever_search per query and reports percentiles.
 *
 * For hybrid, each query is embedded by the real model but the chunk vectors are random unit
 * vectors: embedding 100k chunks with a model would take most of an hour and the HNSW search
 * cost depends on the vector count and dimension, not on what the vectors mean (random vectors
 * are, if anything, the hard case for a graph index). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kb/kb_schema.h"
#include "kb/retrieve.h"

static const char *const STOP[] = {"the", "of", "and", "to", "a", "in", "is", "for", "that", "with", "on", "as",
                                   "be", "by", "this", "are", "it", "or", "at", "an", "not", "will", "was", "if",
                                   "no", "but", "into", "such", "their", "then", "there", "these", "they"};
#define N_STOP ((int)(sizeof STOP / sizeof STOP[0]))

static const char *const SYL[] = {"ka", "to", "ri", "mu", "sel", "la", "no", "pi", "ve", "dor", "gan", "lo",
                                  "fi", "ne", "ru", "so", "tem", "ba", "qui", "zo", "char", "me", "por", "di"};
#define N_SYL ((int)(sizeof SYL / sizeof SYL[0]))

pf_search_bench_params pf_search_bench_default_params(void) {
    return (pf_search_bench_params){.n_chunks = 100000, .words_per_chunk = 180, .vocab = 50000, .n_queries = 500,
                                    .k = 10, .seed = 42};
}

typedef struct rng { uint64_t s; } rng;
static uint64_t next_u64(rng *r) {
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17;
    return r->s;
}
static double next_unit(rng *r) { return (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Word of rank i (0-based): a stopword for the top ranks, else syllables spelling i. */
static void word_of(int i, char *buf) {
    if (i < N_STOP) { strcpy(buf, STOP[i]); return; }
    unsigned v = (unsigned)(i - N_STOP) + N_SYL; /* at least two syllables */
    buf[0] = '\0';
    while (v) { strcat(buf, SYL[v % N_SYL]); v /= N_SYL; }
}

typedef struct zipf { double *cdf; int n; } zipf;

static int zipf_init(zipf *z, int n) {
    z->cdf = malloc((size_t)n * sizeof *z->cdf);
    if (!z->cdf) return PF_ERR_NOMEM;
    z->n = n;
    double s = 0;
    for (int i = 0; i < n; i++) z->cdf[i] = (s += 1.0 / (i + 1.0));
    for (int i = 0; i < n; i++) z->cdf[i] /= s;
    return PF_OK;
}

static int zipf_draw(const zipf *z, rng *r) {
    double u = next_unit(r);
    int lo = 0, hi = z->n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (z->cdf[mid] < u) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static void say(const pf_search_bench_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const pf_search_bench_params *p, const char *fmt, ...) {
    if (!p->log) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->log(p->user, msg);
}

/* Inserts the synthetic chunks: 10 per document, documents /bench/docN.txt. */
static int build_db(sqlite3 *db, const pf_search_bench_params *p, const zipf *z, pf_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, PF_KB_SCHEMA_V1, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = pf_error_set(err, PF_ERR_IO, "bench schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return rc;
    }
    sqlite3_stmt *sd = NULL, *sc = NULL;
    sqlite3_prepare_v2(db, "INSERT INTO documents(id, doc_key, source, doc_type, sha256, mtime, size, text_len, "
                           "ingested_at) VALUES (?1, ?2, ?2, 'txt', '', 0, 0, 0, 0)", -1, &sd, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO chunks(id, doc_id, ordinal, text, start_char, end_char, n_tokens) "
                           "VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)", -1, &sc, NULL);
    size_t cap = (size_t)p->words_per_chunk * 24 + 16;
    char *text = malloc(cap);
    int rc = (sd && sc && text) ? PF_OK : pf_error_set(err, PF_ERR_IO, "bench: %s", sqlite3_errmsg(db));
    rng r = {p->seed * 2654435761u + 1};
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int64_t c = 0; c < p->n_chunks && rc == PF_OK; c++) {
        int64_t doc = c / 10 + 1;
        if (c % 10 == 0) {
            char key[64];
            snprintf(key, sizeof key, "/bench/doc%lld.txt", (long long)doc);
            sqlite3_bind_int64(sd, 1, doc);
            sqlite3_bind_text(sd, 2, key, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(sd) != SQLITE_DONE) rc = pf_error_set(err, PF_ERR_IO, "bench: %s", sqlite3_errmsg(db));
            sqlite3_reset(sd);
        }
        size_t n = 0;
        for (int w = 0; w < p->words_per_chunk; w++) {
            char word[64];
            word_of(zipf_draw(z, &r), word);
            size_t l = strlen(word);
            if (n + l + 2 >= cap) break;
            if (n) text[n++] = (w % 17 == 0) ? '.' : ' ';
            if (w % 17 == 0 && n) text[n++] = ' ';
            memcpy(text + n, word, l);
            n += l;
        }
        text[n] = '\0';
        sqlite3_bind_int64(sc, 1, c + 1);
        sqlite3_bind_int64(sc, 2, doc);
        sqlite3_bind_int64(sc, 3, c % 10);
        sqlite3_bind_text(sc, 4, text, (int)n, SQLITE_STATIC);
        sqlite3_bind_int64(sc, 5, (int64_t)n);
        sqlite3_bind_int(sc, 6, p->words_per_chunk);
        if (rc == PF_OK && sqlite3_step(sc) != SQLITE_DONE) rc = pf_error_set(err, PF_ERR_IO, "bench: %s", sqlite3_errmsg(db));
        sqlite3_reset(sc);
    }
    sqlite3_exec(db, rc == PF_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (rc == PF_OK) sqlite3_exec(db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')", NULL, NULL, NULL);
    sqlite3_finalize(sd);
    sqlite3_finalize(sc);
    free(text);
    return rc;
}

/* Queries: 2-8 words; a third drawn like the text (stopwords included), the rest content words
 * of any frequency (uniform in log-rank), like the questions people type. */
static char **make_queries(const pf_search_bench_params *p, const zipf *z) {
    char **q = calloc((size_t)p->n_queries, sizeof *q);
    if (!q) return NULL;
    rng r = {p->seed * 97 + 12345};
    for (int i = 0; i < p->n_queries; i++) {
        q[i] = malloc(8 * 64 + 1);
        if (!q[i]) return q;
        q[i][0] = '\0';
        int nw = 2 + (int)(next_u64(&r) % 7);
        for (int w = 0; w < nw; w++) {
            int rank = (next_u64(&r) % 3 == 0) ? zipf_draw(z, &r)
                                               : N_STOP + (int)exp(next_unit(&r) * log((double)(p->vocab - N_STOP)));
            if (rank >= p->vocab) rank = p->vocab - 1;
            char word[64];
            word_of(rank, word);
            if (w) strcat(q[i], " ");
            strcat(q[i], word);
        }
    }
    return q;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void percentiles(double *ms, int n, double out[4]) {
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += ms[i];
    out[0] = ms[(n - 1) * 50 / 100];
    out[1] = ms[(n - 1) * 90 / 100];
    out[2] = ms[(n - 1) * 99 / 100];
    out[3] = sum / n;
}

/* Times every query once after one untimed warm-up pass over the first 20. */
static int time_mode(pf_retriever *r, char **qs, const pf_search_bench_params *p, pf_search_mode mode, double out[4],
                     double *mean_hits, pf_error *err) {
    pf_search_params sp = pf_search_default_params();
    sp.mode = mode;
    sp.k = p->k;
    sp.query_prefix = "";
    double *ms = malloc((size_t)p->n_queries * sizeof *ms);
    if (!ms) return pf_error_set(err, PF_ERR_NOMEM, "bench: out of memory");
    int rc = PF_OK;
    double hits = 0;
    for (int pass = 0; pass < 2 && rc == PF_OK; pass++) {
        int n = pass ? p->n_queries : (p->n_queries < 20 ? p->n_queries : 20);
        for (int i = 0; i < n && rc == PF_OK; i++) {
            pf_search_results res;
            double t0 = now_s();
            rc = pf_retriever_search(r, qs[i], &sp, &res, err);
            if (pass) { ms[i] = (now_s() - t0) * 1e3; hits += res.n; }
            pf_search_results_free(&res);
        }
    }
    if (rc == PF_OK) percentiles(ms, p->n_queries, out);
    if (mean_hits) *mean_hits = hits / p->n_queries;
    free(ms);
    return rc;
}

/* Random unit vectors for every chunk, into an HNSW index (saved in dir for reuse). */
static int build_index(const char *dir, int32_t dim, int64_t n, uint64_t seed, pf_hnsw **out, double *secs,
                       pf_error *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, PF_KB_INDEX_NAME);
    uint64_t gen = 0;
    if (pf_hnsw_open(path, out, &gen, NULL) == PF_OK) {
        if (pf_hnsw_get_params(*out).dim == dim && pf_hnsw_count(*out) == n) { *secs = 0; return PF_OK; }
        pf_hnsw_free(*out);
    }
    double t0 = now_s();
    pf_hnsw_params hp = pf_hnsw_default_params(dim, PF_METRIC_COSINE);
    int rc = pf_hnsw_create(&hp, out, err);
    if (rc) return rc;
    pf_hnsw_reserve(*out, n, err);
    float *v = malloc((size_t)dim * sizeof *v);
    if (!v) return pf_error_set(err, PF_ERR_NOMEM, "bench: out of memory");
    rng r = {seed * 7919 + 3};
    for (int64_t i = 0; i < n && rc == PF_OK; i++) {
        for (int32_t d = 0; d < dim; d++) v[d] = (float)(next_unit(&r) * 2.0 - 1.0);
        rc = pf_hnsw_add(*out, i + 1, v, dim, err);
    }
    free(v);
    if (rc == PF_OK) rc = pf_hnsw_save(*out, path, 0, err);
    *secs = now_s() - t0;
    return rc;
}

int pf_search_bench(const pf_search_bench_params *prm, pf_search_bench_result *res, pf_error *err) {
    pf_search_bench_params p = prm ? *prm : pf_search_bench_default_params();
    memset(res, 0, sizeof *res);
    if (p.n_chunks <= 0 || p.words_per_chunk <= 0 || p.vocab <= N_STOP + 1 || p.n_queries <= 0 || p.k <= 0)
        return pf_error_set(err, PF_ERR_ARG, "bench: chunks, words, vocab (> 34), queries and k must be positive");
    char tmp[] = "/tmp/pf_bench_search_XXXXXX", path[1024];
    const char *dir = p.dir;
    if (!dir && !(dir = mkdtemp(tmp))) return pf_error_set(err, PF_ERR_IO, "bench: cannot create a temporary directory");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, PF_KB_DB_NAME);
    zipf z = {0};
    if (zipf_init(&z, p.vocab)) return pf_error_set(err, PF_ERR_NOMEM, "bench: out of memory");
    bool reuse = access(path, R_OK) == 0;
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db) == SQLITE_OK ? PF_OK : pf_error_set(err, PF_ERR_IO, "bench: cannot open %s", path);
    if (rc == PF_OK) sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
    if (rc == PF_OK && reuse) {
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks", -1, &st, NULL);
        if (!st || sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 0) != p.n_chunks)
            rc = pf_error_set(err, PF_ERR_ARG, "bench: %s holds a different KB; give an empty directory", dir);
        sqlite3_finalize(st);
        if (rc == PF_OK) say(&p, "reusing the synthetic KB in %s", dir);
    }
    if (rc == PF_OK && !reuse) {
        say(&p, "building %lld synthetic chunks of %d words", (long long)p.n_chunks, (int)p.words_per_chunk);
        double t0 = now_s();
        rc = build_db(db, &p, &z, err);
        res->build_s = now_s() - t0;
    }
    res->n_chunks = p.n_chunks;
    struct stat sb;
    if (stat(path, &sb) == 0) res->db_bytes = (double)sb.st_size;
    char **qs = rc == PF_OK ? make_queries(&p, &z) : NULL;
    if (rc == PF_OK && !qs) rc = pf_error_set(err, PF_ERR_NOMEM, "bench: out of memory");

    pf_retriever *r = NULL;
    pf_embedder *e = NULL;
    pf_hnsw *h = NULL;
    if (rc == PF_OK) rc = pf_retriever_open(db, NULL, NULL, &r, err);
    if (rc == PF_OK) {
        say(&p, "timing %d bm25 queries", (int)p.n_queries);
        rc = time_mode(r, qs, &p, PF_SEARCH_BM25, res->bm25_ms, &res->mean_hits, err);
    }
    pf_retriever_free(r);
    r = NULL;
    if (rc == PF_OK && p.embed_model) {
        rc = pf_embedder_load(p.embed_model, p.n_threads, &e, err);
        if (rc == PF_OK) {
            say(&p, "indexing %lld random vectors of dimension %lld", (long long)p.n_chunks, (long long)pf_embedder_dim(e));
            rc = build_index(dir, (int32_t)pf_embedder_dim(e), p.n_chunks, p.seed, &h, &res->index_s, err);
        }
        if (rc == PF_OK) rc = pf_retriever_open(db, e, h, &r, err);
        if (rc == PF_OK) {
            say(&p, "timing %d dense and hybrid queries", (int)p.n_queries);
            rc = time_mode(r, qs, &p, PF_SEARCH_DENSE, res->dense_ms, NULL, err);
        }
        if (rc == PF_OK) rc = time_mode(r, qs, &p, PF_SEARCH_HYBRID, res->hybrid_ms, NULL, err);
        double *ms = rc == PF_OK ? malloc((size_t)p.n_queries * sizeof *ms) : NULL;
        float *v = ms ? malloc((size_t)pf_embedder_dim(e) * sizeof *v) : NULL;
        for (int i = 0; v && i < p.n_queries && rc == PF_OK; i++) {
            const char *t = qs[i];
            double t0 = now_s();
            if (pf_embed(e, &t, 1, v, err) < 0) rc = err ? err->code : PF_ERR_IO;
            ms[i] = (now_s() - t0) * 1e3;
        }
        if (v && rc == PF_OK) percentiles(ms, p.n_queries, res->embed_ms);
        free(ms);
        free(v);
        res->hybrid = rc == PF_OK;
    }
    pf_retriever_free(r);
    pf_hnsw_free(h);
    pf_embedder_free(e);
    for (int i = 0; qs && i < p.n_queries; i++) free(qs[i]);
    free(qs);
    free(z.cdf);
    sqlite3_close(db);
    if (!p.dir) { /* the temporary KB goes */
        static const char *const files[] = {PF_KB_DB_NAME, PF_KB_DB_NAME "-wal", PF_KB_DB_NAME "-shm", PF_KB_INDEX_NAME};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            unlink(path);
        }
        if (rmdir(dir) != 0 && rc == PF_OK) rc = pf_error_set(err, PF_ERR_IO, "bench: cannot remove %s", dir);
    }
    return rc;
}
