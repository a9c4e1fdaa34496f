/* Retrieval quality on the Vaswani/NPL collection (../shared/ir/vaswani: 11,429 physics abstracts,
 * 93 queries, human relevance judgments).
 *
 * Each abstract becomes one document (key = its DOCNO) with one chunk in a fresh KB; the 93
 * queries run in batch through pf_retriever_search and are scored with nDCG@10 and recall@100.
 * The yardstick is a textbook Okapi BM25 (k1 = 1.2, b = 0.75, Porter stemming, the index's
 * tokenization) computed here by src/ir/okapi.c, in four variants (classic RSJ or Lucene IDF,
 * with or without English stopwords); phiforge's BM25 must reach the best of them.
 *
 * Then hybrid retrieval with the tiny random-weight embedder: a mechanics check (every query
 * gives a valid, fused ranking), figures reported, no quality bar. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ir/ir.h"
#include "kb/kb_schema.h"
#include "kb/retrieve.h"
#include "testing.h"

#define VAS "../shared/ir/vaswani"
#define K_EVAL 100

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct figures { double ndcg, recall; } figures;

/* A KB in dir with the schema, one document + one chunk per abstract (chunk id = doc id = i+1). */
static sqlite3 *make_kb(pf_test *t, const char *dir, const pf_ir_docs *docs) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, PF_KB_DB_NAME);
    sqlite3 *db = NULL;
    CHECK(t, sqlite3_open(path, &db) == SQLITE_OK, "open %s", path);
    char *msg = NULL;
    int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;", NULL, NULL, NULL);
    rc |= sqlite3_exec(db, PF_KB_SCHEMA_V1, NULL, NULL, &msg);
    CHECK(t, rc == SQLITE_OK, "schema: %s", msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_stmt *sd = NULL, *sc = NULL;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO documents(id, doc_key, source, title, doc_type, sha256, mtime, size, text_len, "
                       "ingested_at) VALUES (?1, ?2, ?3, NULL, 'txt', '', 0, ?4, ?4, 0)",
                       -1, &sd, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO chunks(id, doc_id, ordinal, text, start_char, end_char, page, heading, n_tokens) "
                       "VALUES (?1, ?1, 0, ?2, 0, ?3, NULL, NULL, 0)",
                       -1, &sc, NULL);
    bool ok = sd && sc;
    for (size_t i = 0; ok && i < docs->n; i++) {
        int64_t len = (int64_t)strlen(docs->v[i].text);
        sqlite3_bind_int64(sd, 1, (int64_t)i + 1);
        sqlite3_bind_text(sd, 2, docs->v[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(sd, 3, VAS "/doc-text.trec", -1, SQLITE_STATIC);
        sqlite3_bind_int64(sd, 4, len);
        sqlite3_bind_int64(sc, 1, (int64_t)i + 1);
        sqlite3_bind_text(sc, 2, docs->v[i].text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sc, 3, len);
        ok = sqlite3_step(sd) == SQLITE_DONE && sqlite3_step(sc) == SQLITE_DONE;
        sqlite3_reset(sd);
        sqlite3_reset(sc);
    }
    CHECK(t, ok, "inserting documents: %s", sqlite3_errmsg(db));
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(sd);
    sqlite3_finalize(sc);
    return db;
}

/* Baseline figures of one Okapi variant. */
static figures okapi_run(const pf_ir_docs *docs, const pf_ir_docs *topics, const pf_ir_qrels *qr,
                         const pf_ir_bm25_params *prm) {
    figures f = {0, 0};
    pf_error err = {0};
    pf_ir_bm25 *ix = NULL;
    if (pf_ir_bm25_new(prm, &ix, &err)) return f;
    for (size_t i = 0; i < docs->n; i++) pf_ir_bm25_add(ix, docs->v[i].text, &err);
    uint32_t hit[K_EVAL];
    const char *ids[K_EVAL];
    for (size_t q = 0; q < topics->n; q++) {
        size_t n = 0;
        pf_ir_bm25_search(ix, topics->v[q].text, K_EVAL, hit, NULL, &n, &err);
        for (size_t i = 0; i < n; i++) ids[i] = docs->v[hit[i]].id;
        f.ndcg += pf_ir_ndcg(qr, topics->v[q].id, ids, n, 10);
        f.recall += pf_ir_recall(qr, topics->v[q].id, ids, n, K_EVAL);
    }
    pf_ir_bm25_free(ix);
    f.ndcg /= (double)topics->n;
    f.recall /= (double)topics->n;
    return f;
}

/* FTS5's built-in ranking over the MATCH expressions phiforge builds (chunk id = doc index + 1). */
static figures fts5_builtin_run(sqlite3 *db, const pf_ir_docs *docs, const pf_ir_docs *topics, const pf_ir_qrels *qr) {
    figures f = {0, 0};
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts) LIMIT 100",
                       -1, &st, NULL);
    const char *ids[K_EVAL];
    for (size_t q = 0; st && q < topics->n; q++) {
        char *m = pf_fts_query(topics->v[q].text, true);
        size_t n = 0;
        sqlite3_bind_text(st, 1, m ? m : "", -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW && n < K_EVAL) {
            int64_t id = sqlite3_column_int64(st, 0);
            if (id >= 1 && (size_t)id <= docs->n) ids[n++] = docs->v[id - 1].id;
        }
        sqlite3_reset(st);
        free(m);
        f.ndcg += pf_ir_ndcg(qr, topics->v[q].id, ids, n, 10);
        f.recall += pf_ir_recall(qr, topics->v[q].id, ids, n, K_EVAL);
    }
    sqlite3_finalize(st);
    f.ndcg /= (double)topics->n;
    f.recall /= (double)topics->n;
    return f;
}

/* Runs every topic through the retriever; checks each ranking's mechanics on the way. */
static figures phiforge_run(pf_test *t, pf_retriever *r, const pf_search_params *p, const pf_ir_docs *topics,
                            const pf_ir_qrels *qr, const char *label, double *secs) {
    figures f = {0, 0};
    const char *ids[K_EVAL];
    int bad = 0, fused = 0;
    double t0 = now_s();
    for (size_t q = 0; q < topics->n; q++) {
        pf_search_results res;
        pf_error err = {0};
        int rc = pf_retriever_search(r, topics->v[q].text, p, &res, &err);
        if (rc != PF_OK) { CHECK(t, rc == PF_OK, "%s query %s: %s", label, topics->v[q].id, err.msg); continue; }
        if (res.mode != p->mode || res.n <= 0 || res.n > p->k) bad++;
        for (int32_t i = 0; i < res.n && i < K_EVAL; i++) {
            ids[i] = res.hits[i].doc_key;
            if (i && res.hits[i].score > res.hits[i - 1].score) bad++;
            for (int32_t j = 0; j < i; j++) bad += res.hits[j].chunk_id == res.hits[i].chunk_id;
            fused += res.hits[i].bm25_rank && res.hits[i].dense_rank;
        }
        f.ndcg += pf_ir_ndcg(qr, topics->v[q].id, ids, (size_t)res.n, 10);
        f.recall += pf_ir_recall(qr, topics->v[q].id, ids, (size_t)res.n, K_EVAL);
        pf_search_results_free(&res);
    }
    *secs = now_s() - t0;
    CHECK(t, bad == 0, "%s: %d malformed rankings (wrong mode, empty, unsorted or repeated chunks)", label, bad);
    if (p->mode == PF_SEARCH_HYBRID) CHECK(t, fused > 0, "hybrid: no hit came from both lists");
    f.ndcg /= (double)topics->n;
    f.recall /= (double)topics->n;
    return f;
}

/* Under AddressSanitizer the tiny model embeds ~300 abstracts/s (release: ~1,000/s), so there the
 * dense side covers every 4th abstract: it is a mechanics check either way, and the test stays
 * under a minute. */
#if defined(__SANITIZE_ADDRESS__)
#define EMBED_STRIDE 4
#else
#define EMBED_STRIDE 1
#endif

/* Embeds the abstracts with the tiny embedder (also stored in the embeddings table, as a KB
 * would hold them), builds an HNSW index and runs the topics in hybrid and dense mode. */
static void hybrid_check(pf_test *t, sqlite3 *db, const pf_ir_docs *docs, const pf_ir_docs *topics,
                         const pf_ir_qrels *qr) {
    char path[512];
    if (!pf_test_data_path(path, sizeof path, "embed", "bert-tiny-cls.gguf")) {
        printf("SKIP hybrid: bert-tiny-cls.gguf not found\n");
        return;
    }
    pf_error err = {0};
    pf_embedder *e = NULL;
    int rc = pf_embedder_load(path, 0, &e, &err);
    CHECK(t, rc == PF_OK, "embedder: %s", err.msg);
    if (rc) return;
    int32_t dim = (int32_t)pf_embedder_dim(e);
    pf_hnsw *h = NULL;
    pf_hnsw_params hp = pf_hnsw_default_params(dim, PF_METRIC_COSINE);
    rc = pf_hnsw_create(&hp, &h, &err);
    CHECK(t, rc == PF_OK, "hnsw: %s", err.msg);
    double t0 = now_s(), t_model = 0;
    enum { B = 256 };
    float *vec = malloc((size_t)B * (size_t)dim * sizeof *vec);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "INSERT INTO embeddings(chunk_id, model, dim, vector) VALUES (?1, 'bert-tiny-cls', ?2, ?3)",
                       -1, &st, NULL);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    size_t n_embedded = 0;
    for (size_t i = 0; rc == PF_OK && i < docs->n; i += (size_t)B * EMBED_STRIDE) {
        const char *texts[B];
        int64_t ids[B], n = 0;
        for (size_t j = i; j < docs->n && j < i + (size_t)B * EMBED_STRIDE; j += EMBED_STRIDE) {
            ids[n] = (int64_t)j + 1;
            texts[n++] = docs->v[j].text;
        }
        n_embedded += (size_t)n;
        double te = now_s();
        int64_t cut = pf_embed(e, texts, n, vec, &err);
        t_model += now_s() - te;
        if (cut < 0) { rc = (int)cut; break; }
        for (int64_t j = 0; j < n && rc == PF_OK; j++) {
            int64_t id = ids[j];
            rc = pf_hnsw_add(h, id, vec + j * dim, dim, &err);
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int(st, 2, dim);
            sqlite3_bind_blob(st, 3, vec + j * dim, dim * (int)sizeof(float), SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) rc = PF_ERR_IO;
            sqlite3_reset(st);
        }
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
    free(vec);
    double t_embed = now_s() - t0;
    CHECK(t, rc == PF_OK, "embedding + indexing: %s", err.msg);
    pf_retriever *r = NULL;
    if (rc == PF_OK) rc = pf_retriever_open(db, e, h, &r, &err);
    CHECK(t, rc == PF_OK, "retriever: %s", err.msg);
    if (r) {
        pf_search_params p = pf_search_default_params();
        p.k = K_EVAL;
        p.depth = K_EVAL;
        double secs = 0;
        figures f = phiforge_run(t, r, &p, topics, qr, "hybrid", &secs);
        printf("phiforge hybrid (bm25 + bert-tiny-cls, random weights; RRF k 60): nDCG@10 %.4f  recall@100 %.4f"
               "  (%.1f ms/query)\n", f.ndcg, f.recall, secs * 1000.0 / topics->n);
        p.mode = PF_SEARCH_DENSE;
        f = phiforge_run(t, r, &p, topics, qr, "dense", &secs);
        printf("phiforge dense  (bert-tiny-cls, random weights)                 : nDCG@10 %.4f  recall@100 %.4f"
               "  (%.1f ms/query)\n", f.ndcg, f.recall, secs * 1000.0 / topics->n);
        printf("timing: embedding + indexing %zu abstracts %.1f s (of which the model %.1f s)%s\n", n_embedded, t_embed,
               t_model, EMBED_STRIDE > 1 ? " [sanitizer build: every 4th abstract]" : "");
    }
    pf_retriever_free(r);
    pf_hnsw_free(h);
    pf_embedder_free(e);
}

int main(void) {
    pf_test t = {0};
    pf_error err = {0};
    if (access(VAS "/qrels", R_OK) != 0) {
        printf("SKIP: %s not found\n", VAS);
        return TEST_REPORT(&t);
    }
    pf_ir_docs docs, topics;
    pf_ir_qrels qr;
    double t0 = now_s();
    int rc = pf_ir_read_trec_docs(VAS "/doc-text.trec", &docs, &err);
    CHECK(&t, rc == PF_OK, "%s", err.msg);
    rc |= pf_ir_read_trec_topics(VAS "/query-text.trec", &topics, &err);
    CHECK(&t, rc == PF_OK, "%s", err.msg);
    rc |= pf_ir_read_qrels(VAS "/qrels", &qr, &err);
    CHECK(&t, rc == PF_OK, "%s", err.msg);
    if (rc) return TEST_REPORT(&t);
    CHECK(&t, docs.n == 11429 && topics.n == 93 && qr.n == 2083, "collection sizes %zu %zu %zu", docs.n, topics.n, qr.n);

    char dir[] = "/tmp/pf_vaswani_XXXXXX";
    CHECK(&t, mkdtemp(dir) != NULL, "mkdtemp");
    sqlite3 *db = make_kb(&t, dir, &docs);
    double t_ingest = now_s() - t0;

    /* the yardstick */
    t0 = now_s();
    figures best = {0, 0};
    const char *names[4] = {"RSJ idf", "Lucene idf", "RSJ idf + stopwords", "Lucene idf + stopwords"};
    for (int v = 0; v < 4; v++) {
        pf_ir_bm25_params bp = pf_ir_bm25_defaults();
        bp.idf = (v & 1) ? PF_IR_IDF_LUCENE : PF_IR_IDF_RSJ;
        bp.stopwords = v >= 2;
        figures f = okapi_run(&docs, &topics, &qr, &bp);
        printf("okapi bm25 (k1 1.2, b 0.75, porter, %-22s): nDCG@10 %.4f  recall@100 %.4f\n", names[v], f.ndcg, f.recall);
        if (f.ndcg > best.ndcg) best.ndcg = f.ndcg;
        if (f.recall > best.recall) best.recall = f.recall;
    }
    double t_okapi = now_s() - t0;

    pf_retriever *r = NULL;
    rc = pf_retriever_open(db, NULL, NULL, &r, &err);
    CHECK(&t, rc == PF_OK, "retriever: %s", err.msg);
    pf_search_params p = pf_search_default_params();
    p.mode = PF_SEARCH_BM25;
    p.k = K_EVAL;
    p.depth = K_EVAL;
    double secs = 0;
    figures ph = r ? phiforge_run(&t, r, &p, &topics, &qr, "bm25", &secs) : (figures){0, 0};
    printf("phiforge bm25 (FTS5 + pf_bm25 k1 %.1f b %.2f, stopwords)      : nDCG@10 %.4f  recall@100 %.4f"
           "  (%.1f ms/query)\n", p.bm25_k1, p.bm25_b, ph.ndcg, ph.recall, secs * 1000.0 / topics.n);
    CHECK(&t, ph.ndcg >= best.ndcg, "phiforge bm25 nDCG@10 %.4f < textbook baseline %.4f", ph.ndcg, best.ndcg);
    CHECK(&t, ph.recall >= best.recall, "phiforge bm25 recall@100 %.4f < textbook baseline %.4f", ph.recall, best.recall);

    /* what the defaults are worth (reported, not asserted): textbook k1/b in pf_bm25, and FTS5's
     * own bm25() on the same MATCH expressions */
    p.bm25_k1 = 1.2;
    p.bm25_b = 0.75;
    figures f12 = r ? phiforge_run(&t, r, &p, &topics, &qr, "bm25 1.2/0.75", &secs) : (figures){0, 0};
    printf("phiforge bm25 with k1 1.2 b 0.75                              : nDCG@10 %.4f  recall@100 %.4f\n",
           f12.ndcg, f12.recall);
    figures fb = fts5_builtin_run(db, &docs, &topics, &qr);
    printf("FTS5 bm25() (k1 1.2, b 0.75, IDF clamped), same queries       : nDCG@10 %.4f  recall@100 %.4f\n",
           fb.ndcg, fb.recall);
    printf("timing: load + KB %.1f s, baselines %.1f s\n", t_ingest, t_okapi);

    pf_retriever_free(r);
    hybrid_check(&t, db, &docs, &topics, &qr);
    sqlite3_close(db);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(&t, system(cmd) == 0, "cleanup %s", dir);
    pf_ir_docs_free(&docs);
    pf_ir_docs_free(&topics);
    pf_ir_qrels_free(&qr);
    return TEST_REPORT(&t);
}
