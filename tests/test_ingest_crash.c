/* kill -9 at any moment leaves a consistent knowledge base, and a re-run finishes the job: the
 * binary ingests a folder of many small files and is SIGKILLed at spread-out moments (from the
 * first millisecond, during schema creation, to the end). After every kill the database passes
 * PRAGMA integrity_check and FTS5's integrity-check and has no orphan rows; the run that follows
 * completes, and the final content (documents, chunks with offsets and headings, sources,
 * vectors) equals that of an uninterrupted ingest. Done for a first ingest, for an update with
 * changed, deleted and new files (--prune), and with the tiny embedding model (then the vector
 * index must also be fresh and hold every chunk). */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kb/kb_internal.h"
#include "testing.h"

static const char *BIN = "build/phiforge";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *W[] = {"pump", "filter", "valve", "pressure", "maintenance", "replace", "monthly", "gloves", "seal",
                          "inspect", "torque", "operator", "safety", "bearing", "motor", "coolant", "alarm", "reset"};

static void words(char *buf, size_t cap, pf_test_rng *r, int n) {
    size_t o = strlen(buf);
    for (int i = 0; i < n && o + 32 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s%s", i ? " " : "", W[pf_test_next(r) % 18], i % 11 == 10 ? "." : "");
    if (o + 4 < cap) snprintf(buf + o, cap - o, ".\n\n");
}

/* File i of the corpus, version v (a changed file gets another version). */
static void make_file(const char *dir, int i, int v) {
    pf_test_rng r = {(uint64_t)(i * 7919 + v * 104729 + 1)};
    char path[600], text[8192] = "";
    int kind = i % 5;
    if (kind == 4) { /* JSONL: records with ids */
        snprintf(path, sizeof path, "%s/f%03d.jsonl", dir, i);
        for (int k = 0; k < 3; k++) {
            char body[1024] = "";
            words(body, sizeof body, &r, 20 + (int)(pf_test_next(&r) % 40));
            body[strlen(body) - 3] = 0;
            size_t o = strlen(text);
            snprintf(text + o, sizeof text - o, "{\"id\":\"f%03d-%d\",\"title\":\"Record %d\",\"text\":\"%s (v%d)\"}\n", i, k, k,
                     body, v);
        }
    } else if (kind == 3) { /* Markdown with headings */
        snprintf(path, sizeof path, "%s/sub%d/f%03d.md", dir, i % 3, i);
        snprintf(text, sizeof text, "# Unit %d v%d\n\n", i, v);
        for (int h = 0; h < 3; h++) {
            size_t o = strlen(text);
            snprintf(text + o, sizeof text - o, "## Part %d\n\n", h);
            words(text, sizeof text, &r, 30 + (int)(pf_test_next(&r) % 120));
        }
    } else {
        snprintf(path, sizeof path, "%s/f%03d.txt", dir, i);
        snprintf(text, sizeof text, "Note %d version %d.\n\n", i, v);
        for (int p = 0; p < 1 + (int)(pf_test_next(&r) % 5); p++) words(text, sizeof text, &r, 20 + (int)(pf_test_next(&r) % 150));
    }
    write_file(path, text);
}

static void file_path(const char *dir, int i, char *path, size_t cap) {
    int kind = i % 5;
    if (kind == 4) snprintf(path, cap, "%s/f%03d.jsonl", dir, i);
    else if (kind == 3) snprintf(path, cap, "%s/sub%d/f%03d.md", dir, i % 3, i);
    else snprintf(path, cap, "%s/f%03d.txt", dir, i);
}

/* Starts `phiforge ingest --kb KB DOCS [extra...]` with output discarded. */
static pid_t spawn(const char *kb, const char *docs, const char *model, bool prune) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    const char *argv[12] = {BIN, "ingest", "--kb", kb, "-t", "2"};
    int a = 6;
    if (model) argv[a++] = "--embed-model", argv[a++] = model;
    if (prune) argv[a++] = "--prune";
    argv[a++] = docs;
    argv[a] = NULL;
    execv(BIN, (char *const *)argv);
    _exit(127);
}

static int run_to_end(const char *kb, const char *docs, const char *model, bool prune, double *secs) {
    double t0 = now_s();
    pid_t pid = spawn(kb, docs, model, prune);
    int st = 0;
    waitpid(pid, &st, 0);
    if (secs) *secs = now_s() - t0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int64_t q_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Integrity of a KB left by a killed process (opened raw: WAL recovery is SQLite's own). */
static void check_consistent(pf_test *t, const char *kbdir, const char *when) {
    char path[600];
    snprintf(path, sizeof path, "%s/kb.sqlite", kbdir);
    if (access(path, F_OK) != 0) return; /* killed before the file existed */
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        CHECK(t, 0, "%s: cannot open %s", when, path);
        sqlite3_close(db);
        return;
    }
    sqlite3_stmt *st;
    const char *ok = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        ok = (const char *)sqlite3_column_text(st, 0);
    CHECK(t, ok && !strcmp(ok, "ok"), "%s: integrity_check: %s", when, ok ? ok : "(none)");
    sqlite3_finalize(st);
    if (q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'chunks_fts'") == 1) {
        CHECK(t, sqlite3_exec(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)", NULL, NULL, NULL) == SQLITE_OK,
              "%s: FTS5 integrity-check: %s", when, sqlite3_errmsg(db));
        CHECK(t, q_int(db, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)") == 0, "%s: orphan chunks", when);
        CHECK(t, q_int(db, "SELECT count(*) FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)") == 0, "%s: orphan vectors", when);
        CHECK(t, q_int(db, "SELECT count(*) FROM documents WHERE source NOT IN (SELECT path FROM sources)") == 0, "%s: docs without source", when);
        CHECK(t, q_int(db, "SELECT count(*) FROM sources s WHERE n_docs != (SELECT count(*) FROM documents WHERE source = s.path)") == 0,
              "%s: a file half written", when);
        CHECK(t, q_int(db, "SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE doc_id = d.id) AND text_len > 0") == 0,
              "%s: a document without its chunks", when);
    }
    sqlite3_close(db);
}

/* A digest of everything the KB holds that does not depend on ids or times; *n_chunks set. */
static void digest(const char *kbdir, char out[65], int64_t *n_docs, int64_t *n_chunks) {
    char path[600];
    snprintf(path, sizeof path, "%s/kb.sqlite", kbdir);
    sqlite3 *db = NULL;
    kb_sha256 s;
    kb_sha256_init(&s);
    *n_docs = *n_chunks = 0;
    static const char *q[] = {
        "SELECT doc_key, source, title, doc_type, sha256, size, text_len, metadata FROM documents ORDER BY doc_key",
        "SELECT d.doc_key, c.ordinal, c.text, c.start_char, c.end_char, c.page, c.heading, c.n_tokens FROM chunks c "
        "JOIN documents d ON d.id = c.doc_id ORDER BY d.doc_key, c.ordinal",
        "SELECT path, sha256, size, config, n_docs FROM sources ORDER BY path",
        "SELECT key, value FROM meta WHERE key NOT IN ('created_at', 'vector_generation') ORDER BY key"};
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        for (size_t k = 0; k < 4; k++) {
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(db, q[k], -1, &st, NULL) != SQLITE_OK) continue;
            while (sqlite3_step(st) == SQLITE_ROW) {
                if (k == 0) (*n_docs)++;
                if (k == 1) (*n_chunks)++;
                for (int c = 0; c < sqlite3_column_count(st); c++) {
                    const unsigned char *v = sqlite3_column_text(st, c);
                    kb_sha256_update(&s, v ? (const char *)v : "\x01NULL", v ? (size_t)sqlite3_column_bytes(st, c) : 5);
                    kb_sha256_update(&s, "\x1f", 1);
                }
                kb_sha256_update(&s, "\x1e", 1);
            }
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    kb_sha256_hex(&s, out);
}

/* Vectors of both KBs, chunk by chunk in (key, ordinal) order: same count, close values. */
static void compare_vectors(pf_test *t, const char *a, const char *b, const char *when) {
    sqlite3 *db[2] = {NULL, NULL};
    sqlite3_stmt *st[2] = {NULL, NULL};
    const char *dirs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/kb.sqlite", dirs[k]);
        sqlite3_open_v2(path, &db[k], SQLITE_OPEN_READONLY, NULL);
        sqlite3_prepare_v2(db[k], "SELECT e.vector FROM chunks c JOIN documents d ON d.id = c.doc_id LEFT JOIN embeddings e "
                                  "ON e.chunk_id = c.id ORDER BY d.doc_key, c.ordinal", -1, &st[k], NULL);
    }
    int64_t n = 0, bad = 0, missing = 0;
    for (;;) {
        int s0 = sqlite3_step(st[0]), s1 = sqlite3_step(st[1]);
        if (s0 != SQLITE_ROW || s1 != SQLITE_ROW) {
            CHECK(t, s0 == s1, "%s: different chunk counts", when);
            break;
        }
        n++;
        int b0 = sqlite3_column_bytes(st[0], 0), b1 = sqlite3_column_bytes(st[1], 0);
        if (!b0 || !b1) { missing++; continue; }
        if (b0 != b1) { bad++; continue; }
        float x[1024], y[1024];
        int d = b0 / 4 > 1024 ? 1024 : b0 / 4;
        memcpy(x, sqlite3_column_blob(st[0], 0), (size_t)d * 4);
        memcpy(y, sqlite3_column_blob(st[1], 0), (size_t)d * 4);
        double dot = 0;
        for (int i = 0; i < d; i++) dot += (double)x[i] * y[i];
        if (dot < 0.9999) bad++;
    }
    CHECK(t, n > 0 && missing == 0 && bad == 0, "%s: %lld chunks, %lld without a vector, %lld differ", when, (long long)n,
          (long long)missing, (long long)bad);
    for (int k = 0; k < 2; k++) sqlite3_finalize(st[k]), sqlite3_close(db[k]);
}

/* Kills an ingest into `crash` at spread-out moments, checks, then lets one run finish and
 * compares with `ref` (ingested without interruption). */
static void kill_cycle(pf_test *t, const char *ref, const char *crash, const char *docs, const char *model, bool prune,
                       double t_ref, pf_test_rng *r, const char *phase) {
    static const double at[] = {0.0, 0.03, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9};
    int killed = 0;
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        double jitter = (pf_test_uniform(r) + 1.0) * 0.05 * t_ref, delay = at[k] * t_ref + (k ? jitter : 0.001);
        pid_t pid = spawn(crash, docs, model, prune);
        struct timespec ts = {(time_t)delay, (long)((delay - floor(delay)) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        killed += WIFSIGNALED(st);
        char when[96];
        snprintf(when, sizeof when, "%s, kill %zu at %.0f ms", phase, k, delay * 1e3);
        check_consistent(t, crash, when);
    }
    CHECK(t, killed >= 3, "%s: only %d runs were killed mid-way (machine too fast?)", phase, killed);
    int rc = run_to_end(crash, docs, model, prune, NULL);
    CHECK(t, rc == 0, "%s: the re-run exited %d", phase, rc);
    char when[96];
    snprintf(when, sizeof when, "%s, after the re-run", phase);
    check_consistent(t, crash, when);
    char da[65], db[65];
    int64_t nda, nca, ndb, ncb;
    digest(ref, da, &nda, &nca);
    digest(crash, db, &ndb, &ncb);
    CHECK(t, !strcmp(da, db) && nda > 0, "%s: content differs from an uninterrupted ingest (%lld/%lld docs, %lld/%lld chunks)",
          phase, (long long)nda, (long long)ndb, (long long)nca, (long long)ncb);
    fprintf(stderr, "  %s: %d kills, then %lld documents, %lld chunks as the reference\n", phase, killed, (long long)ndb,
            (long long)ncb);
    if (!model) return;
    compare_vectors(t, ref, crash, phase);
    pf_kb *kb = NULL;
    pf_error err = {0};
    pf_kb_stats s;
    if (pf_kb_open(crash, false, &kb, &err) == PF_OK && pf_kb_get_stats(kb, &s, &err) == PF_OK)
        CHECK(t, s.index_state == PF_KB_INDEX_FRESH && s.index_vectors == s.chunks && s.embedded == s.chunks,
              "%s: index %s with %lld vectors, %lld embedded, %lld chunks", phase, pf_kb_index_state_str(s.index_state),
              (long long)s.index_vectors, (long long)s.embedded, (long long)s.chunks);
    else
        CHECK(t, 0, "%s: %s", phase, err.msg);
    pf_kb_close(kb);
}

int main(void) {
    pf_test t = {0};
    if (access(BIN, X_OK) != 0) {
        CHECK(&t, 0, "%s missing (run make)", BIN);
        return TEST_REPORT(&t);
    }
    char tmp[] = "/tmp/pf_test_crash_XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    char docs[256], ref[256], crash[256], path[600];
    snprintf(docs, sizeof docs, "%s/docs", tmp);
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    snprintf(crash, sizeof crash, "%s/crash", tmp);
    mkdir(docs, 0777);
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/sub%d", docs, k);
        mkdir(path, 0777);
    }
    enum { N = 300 };
    for (int i = 0; i < N; i++) make_file(docs, i, 0);
    pf_test_rng r = {0xC0FFEE};
    double t_ref = 0;
    CHECK(&t, run_to_end(ref, docs, NULL, false, &t_ref) == 0, "reference ingest failed");
    fprintf(stderr, "  reference ingest of %d files: %.0f ms\n", N, t_ref * 1e3);
    kill_cycle(&t, ref, crash, docs, NULL, false, t_ref, &r, "first ingest");

    /* Updates: changed, deleted and new files, with --prune. */
    for (int i = 0; i < N; i += 5) make_file(docs, i, 1);
    for (int i = 2; i < N; i += 10) {
        file_path(docs, i, path, sizeof path);
        unlink(path);
    }
    for (int i = N; i < N + 20; i++) make_file(docs, i, 0);
    CHECK(&t, run_to_end(ref, docs, NULL, true, &t_ref) == 0, "reference update failed");
    kill_cycle(&t, ref, crash, docs, NULL, true, t_ref, &r, "update + prune");

    /* With the tiny embedding model: vectors and the derived index survive kills too. */
    char model[256];
    if (pf_test_data_path(model, sizeof model, "embed", "bert-tiny-cls.gguf")) {
        /* A smaller folder: embedding is the slow part, and under the sanitizers slower still. */
        snprintf(docs, sizeof docs, "%s/docs_e", tmp);
        snprintf(ref, sizeof ref, "%s/ref_e", tmp);
        snprintf(crash, sizeof crash, "%s/crash_e", tmp);
        mkdir(docs, 0777);
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/sub%d", docs, k);
            mkdir(path, 0777);
        }
        for (int i = 0; i < 60; i++) make_file(docs, i, 0);
        CHECK(&t, run_to_end(ref, docs, model, false, &t_ref) == 0, "reference ingest with embeddings failed");
        fprintf(stderr, "  reference ingest of 60 files with embeddings: %.0f ms\n", t_ref * 1e3);
        kill_cycle(&t, ref, crash, docs, model, false, t_ref, &r, "embeddings");
    }
    snprintf(path, sizeof path, "rm -rf %s", tmp);
    if (system(path) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return TEST_REPORT(&t);
}
