/* Knowledge-base store and ingestion: SHA-256 vectors, the schema and its migrations (fresh,
 * empty v0 file, a synthetic v2 step, rollback of a failing step, refusal of a newer version
 * and of a foreign database), ingestion of a mixed folder (JSONL ids as keys, malformed files
 * reported and skipped, hidden files and symlink loops), incremental runs (unchanged skipped,
 * changed replaced, prune, duplicate keys), embeddings with the vector index kept fresh (and
 * rebuilt when missing or stale, re-embedded on a model change), and kb stats/list/rm through
 * the binary. */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kb/kb_internal.h"
#include "testing.h"

/* ---- helpers ---- */
static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void write_file(const char *dir, const char *name, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int64_t sql_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *sql_text(sqlite3 *db, const char *sql, char *buf, size_t cap) {
    sqlite3_stmt *st;
    buf[0] = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

/* PRAGMA integrity_check, the FTS5 index against its content table, and no orphan rows. */
static void check_consistent(pf_test *t, pf_kb *kb, const char *when) {
    sqlite3 *db = pf_kb_db(kb);
    char buf[256];
    CHECK(t, !strcmp(sql_text(db, "PRAGMA integrity_check", buf, sizeof buf), "ok"), "%s: integrity_check: %s", when, buf);
    CHECK(t, sqlite3_exec(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)", NULL, NULL, NULL) == SQLITE_OK,
          "%s: FTS integrity-check: %s", when, sqlite3_errmsg(db));
    CHECK(t, sql_int(db, "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)") == 0, "%s: orphan chunks", when);
    CHECK(t, sql_int(db, "SELECT count(*) FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)") == 0, "%s: orphan vectors", when);
    CHECK(t, sql_int(db, "SELECT count(*) FROM documents WHERE source NOT IN (SELECT path FROM sources)") == 0, "%s: docs without source", when);
    CHECK(t, sql_int(db, "SELECT count(*) FROM sources s WHERE n_docs != (SELECT count(*) FROM documents WHERE source = s.path)") == 0,
          "%s: sources.n_docs disagrees", when);
}

typedef struct events {
    int added, updated, unchanged, failed, warnings, pruned, notes;
    char failed_paths[2048], warning_text[4096], note_text[2048];
} events;

static void on_event(void *user, const pf_ingest_event *ev) {
    events *e = user;
    size_t l;
    switch (ev->kind) {
    case PF_INGEST_ADDED: e->added++; break;
    case PF_INGEST_UPDATED: e->updated++; break;
    case PF_INGEST_UNCHANGED: e->unchanged++; break;
    case PF_INGEST_PRUNED: e->pruned++; break;
    case PF_INGEST_FAILED:
        e->failed++;
        l = strlen(e->failed_paths);
        snprintf(e->failed_paths + l, sizeof e->failed_paths - l, "%s: %s\n", ev->path, ev->msg ? ev->msg : "");
        break;
    case PF_INGEST_WARNING:
        e->warnings++;
        l = strlen(e->warning_text);
        snprintf(e->warning_text + l, sizeof e->warning_text - l, "%s\n", ev->msg ? ev->msg : "");
        break;
    case PF_INGEST_NOTE:
        e->notes++;
        l = strlen(e->note_text);
        snprintf(e->note_text + l, sizeof e->note_text - l, "%s\n", ev->msg);
        break;
    default: break;
    }
}

static int ingest(pf_kb *kb, const char *path, const char *model, int32_t tokens, bool prune, events *ev,
                  pf_ingest_stats *st) {
    pf_ingest_params p = pf_ingest_default_params();
    p.embed_model = model;
    p.chunk_tokens = tokens;
    p.prune = prune;
    p.n_threads = 2;
    p.on_event = on_event;
    p.user = ev;
    memset(ev, 0, sizeof *ev);
    pf_error err = {0};
    const char *paths[1] = {path};
    int rc = pf_kb_ingest(kb, paths, path ? 1 : 0, &p, st, &err);
    if (rc) fprintf(stderr, "ingest: %s\n", err.msg);
    return rc;
}

/* ---- SHA-256 ---- */
static void test_sha256(pf_test *t) {
    char hex[65];
    kb_sha256_buf("", 0, hex);
    CHECK(t, !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256(''): %s", hex);
    kb_sha256_buf("abc", 3, hex);
    CHECK(t, !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc): %s", hex);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    kb_sha256_buf(m, strlen(m), hex);
    CHECK(t, !strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256(448 bits): %s", hex);
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    kb_sha256 s;
    kb_sha256_init(&s);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 997 + 1) /* odd pieces */
        kb_sha256_update(&s, a + off, off + step > 1000000 ? 1000000 - off : step);
    kb_sha256_hex(&s, hex);
    CHECK(t, !strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1M a): %s", hex);
    free(a);
}

/* ---- schema and migrations ---- */
static int step_v2(pf_kb *kb, pf_error *err) { return kb_exec(kb, "CREATE TABLE extra(x INTEGER)", err); }
static int step_v2_fails(pf_kb *kb, pf_error *err) {
    kb_exec(kb, "CREATE TABLE extra(x INTEGER)", err);
    return pf_error_set(err, PF_ERR_FORMAT, "step failed on purpose");
}

static void test_schema(pf_test *t, const char *tmp) {
    char dir[512], path[600];
    pf_error err = {0};
    pf_kb *kb = NULL;
    snprintf(dir, sizeof dir, "%s/schema", tmp);
    CHECK(t, pf_kb_open(dir, false, &kb, &err) == PF_ERR_NOT_FOUND && strstr(err.msg, dir), "missing KB: %s", err.msg);
    CHECK(t, pf_kb_open(dir, true, &kb, &err) == PF_OK, "create: %s", err.msg);
    if (!kb) return;
    sqlite3 *db = pf_kb_db(kb);
    char buf[64];
    CHECK(t, !strcmp(sql_text(db, "PRAGMA journal_mode", buf, sizeof buf), "wal"), "journal_mode %s", buf);
    CHECK(t, sql_int(db, "PRAGMA foreign_keys") == 1, "foreign keys off");
    CHECK(t, pf_kb_meta_get(kb, "schema_version", buf, sizeof buf, &err) == PF_OK && !strcmp(buf, "1"), "version %s", buf);
    CHECK(t, sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('documents','chunks','chunks_fts','embeddings','sources','meta')") == 6,
          "tables missing");
    CHECK(t, pf_kb_meta_get(kb, "nope", buf, sizeof buf, &err) == PF_ERR_NOT_FOUND, "absent meta key");
    /* A synthetic future step: v1 -> v2 in one transaction, and a failing one rolled back. */
    kb_migrate_fn steps[2] = {NULL, step_v2_fails};
    CHECK(t, kb_migrate(kb, steps, 2, &err) == PF_ERR_FORMAT, "failing step must fail");
    CHECK(t, sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'extra'") == 0, "failed step not rolled back");
    CHECK(t, kb_meta_int(kb, "schema_version", 0) == 1, "version changed by a failed step");
    steps[1] = step_v2;
    CHECK(t, kb_migrate(kb, steps, 2, &err) == PF_OK, "v2 step: %s", err.msg);
    CHECK(t, sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'extra'") == 1, "v2 table missing");
    CHECK(t, kb_meta_int(kb, "schema_version", 0) == 2, "version after v2 step");
    pf_kb_close(kb);
    /* This build knows version 1: the v2 KB is refused, naming both versions. */
    kb = NULL;
    CHECK(t, pf_kb_open(dir, false, &kb, &err) == PF_ERR_UNSUPPORTED && strstr(err.msg, "version 2") && strstr(err.msg, "(1)"),
          "newer version: %s", err.msg);
    pf_kb_close(kb);
    /* An empty database file is version 0 and is migrated. */
    snprintf(dir, sizeof dir, "%s/empty", tmp);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/kb.sqlite", dir);
    sqlite3 *raw = NULL;
    sqlite3_open(path, &raw);
    sqlite3_close(raw);
    kb = NULL;
    CHECK(t, pf_kb_open(dir, false, &kb, &err) == PF_OK && kb_meta_int(kb, "schema_version", 0) == 1, "v0 file: %s", err.msg);
    pf_kb_close(kb);
    /* Someone else's database. */
    snprintf(dir, sizeof dir, "%s/foreign", tmp);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/kb.sqlite", dir);
    sqlite3_open(path, &raw);
    sqlite3_exec(raw, "CREATE TABLE foo(x)", NULL, NULL, NULL);
    sqlite3_close(raw);
    kb = NULL;
    CHECK(t, pf_kb_open(dir, false, &kb, &err) == PF_ERR_FORMAT && strstr(err.msg, "not a phiforge"), "foreign db: %s", err.msg);
    pf_kb_close(kb);
    write_file(tmp, "plainfile", "x");
    snprintf(dir, sizeof dir, "%s/plainfile", tmp);
    CHECK(t, pf_kb_open(dir, true, &kb, &err) == PF_ERR_ARG, "a file as KB dir: %s", err.msg);
}

/* ---- ingestion (lexical) ---- */
static void make_corpus(const char *docs) {
    char p[600];
    mkdir(docs, 0777);
    snprintf(p, sizeof p, "%s/sub", docs);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/.git", docs);
    mkdir(p, 0777);
    write_file(docs, "guide.md", "# Guide\n\nThe quokka pump needs care.\n\n## Filters\n\nReplace the filter every month. Wear gloves.\n");
    write_file(docs, "notes.txt", "Plain notes about valves.\n\nSecond paragraph on torque.\n");
    write_file(docs, "recs.jsonl", "{\"id\":\"r1\",\"title\":\"First\",\"text\":\"record one talks about seals\"}\n"
                                   "{\"_id\":\"r2\",\"text\":\"record two talks about bearings\"}\n"
                                   "this line is not json\n");
    write_file(docs, "sub/page.html", "<html><head><title>Page</title><script>var x;</script></head>"
                                      "<body><h1>Pressure</h1><p>Keep the pressure at 3 bar.</p></body></html>");
    write_file(docs, "sub/broken.pdf", "this is not a pdf at all");
    write_file(docs, "sub/image.png", "\x89PNG");
    write_file(docs, ".git/secret.txt", "hidden text never ingested");
    write_file(docs, ".hidden.txt", "hidden file never ingested");
    snprintf(p, sizeof p, "%s/sub/loop", docs);
    symlink("..", p); /* a cycle: sub/loop -> docs */
}

static void test_ingest(pf_test *t, const char *tmp) {
    char docs[512], dir[512], p[700];
    snprintf(docs, sizeof docs, "%s/docs", tmp);
    snprintf(dir, sizeof dir, "%s/kb", tmp);
    make_corpus(docs);
    pf_error err = {0};
    pf_kb *kb = NULL;
    if (pf_kb_open(dir, true, &kb, &err)) { CHECK(t, 0, "open: %s", err.msg); return; }
    events ev;
    pf_ingest_stats st;
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK, "first ingest");
    CHECK(t, st.files == 5 && st.added == 4 && st.failed == 1 && st.skipped == 1 && st.unchanged == 0,
          "files %lld added %lld failed %lld skipped %lld", (long long)st.files, (long long)st.added, (long long)st.failed,
          (long long)st.skipped);
    CHECK(t, ev.failed == 1 && strstr(ev.failed_paths, "sub/broken.pdf") && strstr(ev.failed_paths, "not a PDF"),
          "malformed file reported: %s", ev.failed_paths);
    CHECK(t, ev.warnings >= 1 && strstr(ev.warning_text, "recs.jsonl:3"), "bad JSONL line warned: %s", ev.warning_text);
    CHECK(t, st.docs == 5 && st.chunks >= 5, "docs %lld chunks %lld", (long long)st.docs, (long long)st.chunks);
    pf_kb_doc d;
    CHECK(t, pf_kb_doc_find(kb, "r1", &d, &err) == PF_OK && !strcmp(d.doc_type, "jsonl") && d.title && !strcmp(d.title, "First") &&
                 strstr(d.source, "recs.jsonl") && d.n_chunks == 1,
          "JSONL id as key: %s", err.msg);
    pf_kb_doc_clear(&d);
    CHECK(t, pf_kb_doc_find(kb, "r2", &d, &err) == PF_OK, "_id as key: %s", err.msg);
    pf_kb_doc_clear(&d);
    sqlite3 *db = pf_kb_db(kb);
    CHECK(t, sql_int(db, "SELECT count(*) FROM documents WHERE source LIKE '%hidden%' OR source LIKE '%.git%'") == 0, "hidden ingested");
    CHECK(t, sql_int(db, "SELECT count(*) FROM documents WHERE source LIKE '%loop%'") == 0, "file reached through the loop");
    CHECK(t, sql_int(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'quokka'") == 1, "FTS finds quokka");
    CHECK(t, sql_int(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'var'") == 0, "HTML script text indexed");
    /* Every chunk's offsets map back to the re-extracted text. */
    snprintf(p, sizeof p, "%s/guide.md", docs);
    char *abs = kb_abs_path(p);
    CHECK(t, pf_kb_doc_find(kb, abs, &d, &err) == PF_OK && d.title && !strcmp(d.title, "Guide"), "file doc key: %s", err.msg);
    pf_xresult xr;
    int mism = 0;
    int64_t n_ch = 0;
    if (pf_extract_file(p, &xr, &err) == PF_OK && xr.n_docs == 1) {
        sqlite3_stmt *q;
        sqlite3_prepare_v2(db, "SELECT id FROM chunks WHERE doc_id = ?1 ORDER BY ordinal", -1, &q, NULL);
        sqlite3_bind_int64(q, 1, d.id);
        while (sqlite3_step(q) == SQLITE_ROW) {
            pf_kb_chunk c;
            if (pf_kb_chunk_get(kb, sqlite3_column_int64(q, 0), &c, &err)) { mism++; continue; }
            n_ch++;
            if (c.end > xr.docs[0].len || (int64_t)strlen(c.text) != c.end - c.start ||
                memcmp(c.text, xr.docs[0].text + c.start, (size_t)(c.end - c.start)) || strcmp(c.doc_key, abs) || !c.heading)
                mism++;
            pf_kb_chunk_clear(&c);
        }
        sqlite3_finalize(q);
        pf_xresult_free(&xr);
    }
    CHECK(t, n_ch >= 2 && mism == 0, "chunk offsets: %lld chunks, %d mismatches", (long long)n_ch, mism);
    pf_kb_chunk c;
    CHECK(t, pf_kb_chunk_get(kb, 999999, &c, &err) == PF_ERR_NOT_FOUND, "missing chunk");
    pf_kb_doc_clear(&d);
    check_consistent(t, kb, "first ingest");

    /* Unchanged: nothing re-extracted. */
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK && st.unchanged == 4 && st.added == 0 && st.updated == 0 &&
                 st.chunks == 0 && st.failed == 1,
          "second run: unchanged %lld added %lld updated %lld", (long long)st.unchanged, (long long)st.added, (long long)st.updated);
    /* Changed: replaced in one transaction, old text gone from the index. */
    write_file(docs, "guide.md", "# Guide\n\nThe zanzibar pump needs care.\n");
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK && st.updated == 1 && st.unchanged == 3, "changed: updated %lld",
          (long long)st.updated);
    CHECK(t, sql_int(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'quokka'") == 0, "stale chunk left");
    CHECK(t, sql_int(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'zanzibar'") == 1, "new chunk missing");
    CHECK(t, sql_int(db, "SELECT count(*) FROM documents") == 5, "documents after update");
    /* A second file claiming an existing record id: warned and skipped. */
    write_file(docs, "dup.jsonl", "{\"id\":\"r1\",\"text\":\"impostor\"}\n{\"id\":\"r9\",\"text\":\"fresh record\"}\n");
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK && st.added == 1 && st.docs == 1 &&
                 strstr(ev.warning_text, "'r1' already comes from"),
          "duplicate key: %s", ev.warning_text);
    CHECK(t, pf_kb_doc_find(kb, "r1", &d, &err) == PF_OK && strstr(d.source, "recs.jsonl"), "r1 kept its source");
    pf_kb_doc_clear(&d);
    /* Prune. */
    snprintf(p, sizeof p, "%s/notes.txt", docs);
    unlink(p);
    CHECK(t, ingest(kb, NULL, NULL, 0, true, &ev, &st) == PF_OK && st.pruned == 1 && ev.pruned == 1, "prune: %lld", (long long)st.pruned);
    CHECK(t, sql_int(db, "SELECT count(*) FROM documents WHERE source LIKE '%notes.txt'") == 0, "pruned docs left");
    CHECK(t, sql_int(db, "SELECT count(*) FROM sources WHERE path LIKE '%notes.txt'") == 0, "pruned source left");
    /* Remove by key and by (relative) source. */
    const char *keys[3] = {"r2", "nothing-here", NULL};
    snprintf(p, sizeof p, "%s/dup.jsonl", docs);
    keys[2] = p;
    int64_t removed[3], total = 0;
    CHECK(t, pf_kb_remove(kb, keys, 3, removed, &total, &err) == PF_OK && removed[0] == 1 && removed[1] == 0 && removed[2] == 1 && total == 2,
          "remove: %lld %lld %lld (%s)", (long long)removed[0], (long long)removed[1], (long long)removed[2], err.msg);
    CHECK(t, sql_int(db, "SELECT count(*) FROM sources WHERE path LIKE '%dup.jsonl'") == 0, "source of removed file kept");
    CHECK(t, sql_int(db, "SELECT count(*) FROM sources WHERE path LIKE '%recs.jsonl'") == 1, "partly removed source forgotten");
    check_consistent(t, kb, "after remove");
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK && st.added == 1 && st.unchanged == 3, "re-add: added %lld",
          (long long)st.added);
    /* Another chunk size: every walked file is re-chunked. */
    CHECK(t, ingest(kb, docs, NULL, 32, false, &ev, &st) == PF_OK && st.updated == 4 && kb_meta_int(kb, "chunk_tokens", 0) == 32,
          "new chunk size: updated %lld", (long long)st.updated);
    CHECK(t, sql_int(db, "SELECT max(n_tokens) FROM chunks") <= 32, "chunk above 32 tokens");
    pf_kb_stats s;
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.documents == 5 && s.index_state == PF_KB_INDEX_NONE && s.n_types >= 3,
          "stats: %lld docs", (long long)s.documents);
    check_consistent(t, kb, "end of lexical");
    free(abs);
    pf_kb_close(kb);
}

/* The extractor's sample documents (every format, and broken ones): good files stored, each bad
 * one reported by name with a reason, PDF pages kept on chunks. */
static void test_fixtures(pf_test *t, const char *tmp) {
    if (access("tests/data/docs/manual.pdf", R_OK) != 0) {
        fprintf(stderr, "test_kb: tests/data/docs missing, fixture ingest skipped\n");
        return;
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kbf", tmp);
    pf_error err = {0};
    pf_kb *kb = NULL;
    if (pf_kb_open(dir, true, &kb, &err)) { CHECK(t, 0, "open: %s", err.msg); return; }
    events ev;
    pf_ingest_stats st;
    CHECK(t, ingest(kb, "tests/data/docs", NULL, 0, false, &ev, &st) == PF_OK, "fixture ingest");
    CHECK(t, st.added >= 8 && st.failed >= 3 && st.added + st.failed == st.files, "fixtures: %lld files, %lld added, %lld failed",
          (long long)st.files, (long long)st.added, (long long)st.failed);
    int named = 0;
    char copy[sizeof ev.failed_paths], *save = NULL;
    memcpy(copy, ev.failed_paths, sizeof copy);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        named += strstr(line, "/tests/data/docs/") != NULL && strchr(line, ':') != NULL;
    CHECK(t, named == ev.failed && strstr(ev.failed_paths, "fake.pdf"), "failures name their files:\n%s", ev.failed_paths);
    sqlite3 *db = pf_kb_db(kb);
    CHECK(t, sql_int(db, "SELECT count(DISTINCT c.page) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                         "WHERE d.source LIKE '%manual.pdf' AND c.page > 0") >= 2, "PDF pages on chunks");
    CHECK(t, sql_int(db, "SELECT count(DISTINCT doc_type) FROM documents") >= 7, "document types: %lld",
          (long long)sql_int(db, "SELECT count(DISTINCT doc_type) FROM documents"));
    check_consistent(t, kb, "fixtures");
    pf_kb_close(kb);
}

/* ---- embeddings and the vector index ---- */
static int64_t index_count(pf_test *t, pf_kb *kb) {
    pf_hnsw *h = NULL;
    pf_error err = {0};
    int rc = pf_kb_vector_index(kb, &h, &err);
    CHECK(t, rc == PF_OK && h, "vector index: %s", err.msg);
    return h ? pf_hnsw_count(h) : -1;
}

static void test_embed(pf_test *t, const char *tmp) {
    char cls[256], mean[256], docs[512], dir[512], idx[600];
    if (!pf_test_data_path(cls, sizeof cls, "embed", "bert-tiny-cls.gguf") ||
        !pf_test_data_path(mean, sizeof mean, "embed", "bert-tiny-mean.gguf")) {
        fprintf(stderr, "test_kb: tiny embedding models missing, dense part skipped\n");
        return;
    }
    snprintf(docs, sizeof docs, "%s/docs", tmp);
    snprintf(dir, sizeof dir, "%s/kbe", tmp);
    snprintf(idx, sizeof idx, "%s/vectors.hnsw", dir);
    pf_error err = {0};
    pf_kb *kb = NULL;
    events ev;
    pf_ingest_stats st;
    /* First a lexical KB; configuring a model later embeds what is there. */
    if (pf_kb_open(dir, true, &kb, &err)) { CHECK(t, 0, "open: %s", err.msg); return; }
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK && st.added == 4, "lexical first");
    pf_hnsw *h = (pf_hnsw *)1;
    CHECK(t, pf_kb_vector_index(kb, &h, &err) == PF_OK && h == NULL, "no index without a model");
    CHECK(t, ingest(kb, docs, cls, 0, false, &ev, &st) == PF_OK && strstr(ev.note_text, "embedding model"), "model set: %s", ev.note_text);
    sqlite3 *db = pf_kb_db(kb);
    int64_t n_chunks = sql_int(db, "SELECT count(*) FROM chunks");
    CHECK(t, st.updated == 4 && sql_int(db, "SELECT count(*) FROM embeddings") == n_chunks && n_chunks > 0,
          "every chunk embedded: %lld of %lld", (long long)sql_int(db, "SELECT count(*) FROM embeddings"), (long long)n_chunks);
    CHECK(t, kb_meta_int(kb, "embed_dim", 0) > 0 && sql_int(db, "SELECT count(DISTINCT model) FROM embeddings") == 1, "meta/model");
    CHECK(t, index_count(t, kb) == n_chunks, "index holds every chunk");
    pf_kb_stats s;
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.index_state == PF_KB_INDEX_FRESH && s.embedded == n_chunks &&
                 s.index_vectors == n_chunks,
          "stats: state %d embedded %lld", s.index_state, (long long)s.embedded);
    /* A chunk's own embedding text finds it first. */
    pf_embedder *e = NULL;
    CHECK(t, pf_kb_embedder(kb, 1, &e, &err) == PF_OK && e, "embedder: %s", err.msg);
    int64_t cid = sql_int(db, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.doc_key = 'r1'");
    pf_kb_chunk c;
    if (e && pf_kb_chunk_get(kb, cid, &c, &err) == PF_OK) {
        char *txt = pf_chunk_embed_text(c.heading, c.text, strlen(c.text));
        int64_t dim = pf_embedder_dim(e), label = -1;
        float *q = malloc((size_t)dim * sizeof *q);
        pf_embed(e, (const char *const *)&txt, 1, q, &err);
        pf_kb_vector_index(kb, &h, &err);
        if (h) pf_hnsw_search(h, q, (int32_t)dim, 1, 16, &label, NULL, &err);
        CHECK(t, label == cid, "self search: %lld, want %lld", (long long)label, (long long)cid);
        free(q);
        free(txt);
        pf_kb_chunk_clear(&c);
    }
    /* Lexical unchanged run reuses the recorded model; a changed file updates the index in step. */
    write_file(docs, "guide.md", "# Guide\n\nThe pump needs care. Check it weekly.\n\n## Seals\n\nSeals wear out.\n");
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_OK && st.updated == 1 && st.embedded == st.chunks && st.chunks > 0,
          "update with the recorded model: embedded %lld chunks %lld", (long long)st.embedded, (long long)st.chunks);
    n_chunks = sql_int(db, "SELECT count(*) FROM chunks");
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.index_state == PF_KB_INDEX_FRESH && s.index_vectors == n_chunks,
          "index after update: %s, %lld of %lld", pf_kb_index_state_str(s.index_state), (long long)s.index_vectors, (long long)n_chunks);
    const char *key[1] = {"r1"};
    CHECK(t, pf_kb_remove(kb, key, 1, NULL, NULL, &err) == PF_OK, "rm: %s", err.msg);
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.index_state == PF_KB_INDEX_FRESH && s.index_vectors == n_chunks - 1,
          "index after rm: %lld", (long long)s.index_vectors);
    pf_kb_close(kb);
    /* Missing index: rebuilt from SQLite. Stale generation: rebuilt too. */
    unlink(idx);
    kb = NULL;
    pf_kb_open(dir, false, &kb, &err);
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.index_state == PF_KB_INDEX_MISSING, "missing state");
    CHECK(t, index_count(t, kb) == n_chunks - 1 && access(idx, F_OK) == 0, "rebuilt and saved");
    sqlite3_exec(pf_kb_db(kb), "UPDATE meta SET value = value + 7 WHERE key = 'vector_generation'", NULL, NULL, NULL);
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.index_state == PF_KB_INDEX_STALE, "stale state");
    CHECK(t, index_count(t, kb) == n_chunks - 1, "stale index rebuilt");
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.index_state == PF_KB_INDEX_FRESH, "fresh after rebuild");
    /* Another model: every chunk re-embedded, old vectors gone. */
    CHECK(t, ingest(kb, NULL, mean, 0, false, &ev, &st) == PF_OK && strstr(ev.note_text, "changed from") &&
                 st.embedded == n_chunks - 1,
          "model change: embedded %lld: %s", (long long)st.embedded, ev.note_text);
    db = pf_kb_db(kb);
    CHECK(t, sql_int(db, "SELECT count(DISTINCT model) FROM embeddings") == 1 && sql_int(db, "SELECT count(*) FROM embeddings") == n_chunks - 1,
          "one model's vectors after the change");
    char buf[256], id[256];
    sql_text(db, "SELECT value FROM meta WHERE key = 'embed_model_id'", id, sizeof id);
    CHECK(t, !strcmp(sql_text(db, "SELECT model FROM embeddings LIMIT 1", buf, sizeof buf), id), "vectors of %s, meta %s", buf, id);
    CHECK(t, index_count(t, kb) == n_chunks - 1, "index after model change");
    check_consistent(t, kb, "embeddings");
    pf_kb_close(kb);

    /* The model file at the recorded path replaced by another model: refused until re-embedded. */
    char copy[600], cmd[1400];
    snprintf(copy, sizeof copy, "%s/model.gguf", tmp);
    snprintf(dir, sizeof dir, "%s/kbm", tmp);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", cls, copy);
    CHECK(t, system(cmd) == 0, "copy model");
    kb = NULL;
    pf_kb_open(dir, true, &kb, &err);
    CHECK(t, ingest(kb, docs, copy, 0, false, &ev, &st) == PF_OK && st.embedded > 0, "ingest with the copied model");
    pf_kb_close(kb);
    snprintf(cmd, sizeof cmd, "sleep 0.01; cp '%s' '%s'", mean, copy);
    CHECK(t, system(cmd) == 0, "replace model");
    kb = NULL;
    pf_kb_open(dir, false, &kb, &err);
    CHECK(t, pf_kb_embedder(kb, 1, &e, &err) == PF_ERR_FORMAT && strstr(err.msg, "no longer the model"), "swapped model: %s", err.msg);
    CHECK(t, ingest(kb, docs, NULL, 0, false, &ev, &st) == PF_ERR_FORMAT, "ingest with a swapped model must fail");
    CHECK(t, ingest(kb, docs, copy, 0, false, &ev, &st) == PF_OK && strstr(ev.note_text, "changed from"), "re-embed: %s", ev.note_text);
    CHECK(t, pf_kb_get_stats(kb, &s, &err) == PF_OK && s.embedded == s.chunks && s.index_state == PF_KB_INDEX_FRESH,
          "after re-embedding: %lld of %lld", (long long)s.embedded, (long long)s.chunks);
    pf_kb_close(kb);
}

static void test_cli(pf_test *t, const char *tmp) {
    if (access("build/phiforge", X_OK) != 0) {
        CHECK(t, 0, "build/phiforge missing (run make)");
        return;
    }
    static char out[1 << 16];
    char cmd[2048], bad[512];
    snprintf(bad, sizeof bad, "%s/bad", tmp);
    mkdir(bad, 0777);
    write_file(bad, "a.pdf", "garbage");
    write_file(bad, "b.docx", "garbage");
    snprintf(cmd, sizeof cmd, "build/phiforge ingest --kb %s/kbc %s 2>%s/err.txt", tmp, bad, tmp);
    int rc = pf_test_run(cmd, out, sizeof out);
    snprintf(cmd, sizeof cmd, "%s/err.txt", tmp);
    char *err = pf_test_read_file(cmd, NULL);
    CHECK(t, rc != 0 && err && strstr(err, "a.pdf") && strstr(err, "b.docx"), "all-bad folder: exit %d, stderr %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s/docs2", tmp);
    make_corpus(cmd);
    snprintf(cmd, sizeof cmd, "build/phiforge ingest --kb %s/kbc %s/docs2 %s 2>/dev/null", tmp, tmp, bad);
    rc = pf_test_run(cmd, out, sizeof out);
    CHECK(t, rc == 0 && strstr(out, "4 added") && strstr(out, "3 failed") && strstr(out, "MB/s") && strstr(out, "chunks/s"),
          "mixed folder: exit %d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "build/phiforge kb stats --kb %s/kbc --json", tmp);
    rc = pf_test_run(cmd, out, sizeof out);
    cJSON *j = cJSON_Parse(out);
    const cJSON *docs = cJSON_GetObjectItemCaseSensitive(j, "documents");
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "index"), "state");
    CHECK(t, rc == 0 && cJSON_IsNumber(docs) && docs->valueint == 5 && cJSON_IsString(idx) && !strcmp(idx->valuestring, "none") &&
                 cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "by_type"), "jsonl"),
          "stats --json: %s", out);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "build/phiforge kb stats --kb %s/kbc", tmp);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 0 && strstr(out, "documents       5") && strstr(out, "lexical"), "stats: %s", out);
    snprintf(cmd, sizeof cmd, "build/phiforge kb list --kb %s/kbc --json", tmp);
    rc = pf_test_run(cmd, out, sizeof out);
    j = cJSON_Parse(out);
    bool r1 = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "key");
        if (cJSON_IsString(k) && !strcmp(k->valuestring, "r1"))
            r1 = cJSON_GetObjectItemCaseSensitive(it, "chunks")->valueint == 1 &&
                 strstr(cJSON_GetObjectItemCaseSensitive(it, "source")->valuestring, "recs.jsonl") &&
                 !strcmp(cJSON_GetObjectItemCaseSensitive(it, "type")->valuestring, "jsonl");
    }
    CHECK(t, rc == 0 && cJSON_GetArraySize(j) == 5 && r1, "list --json: %s", out);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "build/phiforge kb list --kb %s/kbc", tmp);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 0 && strstr(out, "r2") && strstr(out, "guide.md"), "list: %s", out);
    snprintf(cmd, sizeof cmd, "build/phiforge kb rm --kb %s/kbc r1 %s/docs2/sub/page.html", tmp, tmp);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 0 && strstr(out, "removed 1 document: r1") && strstr(out, "page.html"), "rm: %s", out);
    snprintf(cmd, sizeof cmd, "build/phiforge kb rm --kb %s/kbc no-such-key 2>/dev/null", tmp);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1, "rm of an unknown key must fail");
    snprintf(cmd, sizeof cmd, "build/phiforge kb list --kb %s/kbc --json", tmp);
    pf_test_run(cmd, out, sizeof out);
    j = cJSON_Parse(out);
    CHECK(t, cJSON_GetArraySize(j) == 3, "list after rm: %s", out);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "build/phiforge kb stats --kb %s/none 2>/dev/null", tmp);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1, "stats of a missing KB must fail");
    CHECK(t, pf_test_run("build/phiforge kb frobnicate --kb x 2>/dev/null", out, sizeof out) == 1, "unknown subcommand");
}

int main(void) {
    pf_test t = {0};
    char tmp[] = "/tmp/pf_test_kb_XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    test_sha256(&t);
    test_schema(&t, tmp);
    test_ingest(&t, tmp);
    test_fixtures(&t, tmp);
    test_embed(&t, tmp);
    test_cli(&t, tmp);
    rm_rf(tmp);
    return TEST_REPORT(&t);
}
