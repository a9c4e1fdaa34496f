/* Opening a KB: the directory, the connection's settings, the versioned schema and its
 * migrations, meta values and the small SQL helpers every kb file uses. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kb/kb_internal.h"

char *kb_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

char *kb_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

char *kb_abs_path(const char *path) {
    char buf[PATH_MAX];
    if (realpath(path, buf)) return kb_strdup(buf);
    if (path[0] == '/') return kb_strdup(path);
    if (!getcwd(buf, sizeof buf)) return kb_strdup(path);
    while (path[0] == '.' && path[1] == '/') path += 2;
    return kb_join(buf, path);
}

int kb_sql_fail(pf_kb *kb, pf_error *err, const char *what) {
    return pf_error_set(err, PF_ERR_IO, "%s: %s: %s", kb->db_path, what, sqlite3_errmsg(kb->db));
}

int kb_exec(pf_kb *kb, const char *sql, pf_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(kb->db, sql, NULL, NULL, &msg) == SQLITE_OK) return PF_OK;
    int rc = pf_error_set(err, PF_ERR_IO, "%s: %s (while running \"%.60s\")", kb->db_path, msg ? msg : "error", sql);
    sqlite3_free(msg);
    return rc;
}

int kb_prepare(pf_kb *kb, const char *sql, sqlite3_stmt **st, pf_error *err) {
    if (sqlite3_prepare_v2(kb->db, sql, -1, st, NULL) == SQLITE_OK) return PF_OK;
    *st = NULL;
    return kb_sql_fail(kb, err, "prepare");
}

int kb_begin(pf_kb *kb, pf_error *err) { return kb_exec(kb, "BEGIN IMMEDIATE", err); }
int kb_commit(pf_kb *kb, pf_error *err) { return kb_exec(kb, "COMMIT", err); }
void kb_rollback(pf_kb *kb) {
    if (!sqlite3_get_autocommit(kb->db)) sqlite3_exec(kb->db, "ROLLBACK", NULL, NULL, NULL);
}

int kb_meta_str(pf_kb *kb, const char *key, char **out, pf_error *err) {
    *out = NULL;
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, "SELECT value FROM meta WHERE key = ?1", &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        if (!(*out = kb_strdup((const char *)sqlite3_column_text(st, 0))))
            rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    } else if (s != SQLITE_DONE) {
        rc = kb_sql_fail(kb, err, "reading meta");
    }
    sqlite3_finalize(st);
    return rc;
}

int64_t kb_meta_int(pf_kb *kb, const char *key, int64_t dflt) {
    char *v = NULL;
    if (kb_meta_str(kb, key, &v, NULL) || !v) return dflt;
    char *end;
    long long x = strtoll(v, &end, 10);
    int64_t r = end != v && !*end ? (int64_t)x : dflt;
    free(v);
    return r;
}

int kb_meta_set(pf_kb *kb, const char *key, const char *value, pf_error *err) {
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, value ? "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)" : "DELETE FROM meta WHERE key = ?1",
                        &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (value) sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = kb_sql_fail(kb, err, "writing meta");
    sqlite3_finalize(st);
    return rc;
}

int kb_meta_set_int(pf_kb *kb, const char *key, int64_t value, pf_error *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    return kb_meta_set(kb, key, buf, err);
}

int kb_bump_generation(pf_kb *kb, uint64_t *gen, pf_error *err) {
    uint64_t g = (uint64_t)kb_meta_int(kb, "vector_generation", 0) + 1;
    if (gen) *gen = g;
    return kb_meta_set_int(kb, "vector_generation", (int64_t)g, err);
}

int pf_kb_meta_get(pf_kb *kb, const char *key, char *buf, size_t cap, pf_error *err) {
    if (!kb || !key || !buf || !cap) return pf_error_set(err, PF_ERR_ARG, "pf_kb_meta_get: invalid argument");
    char *v;
    int rc = kb_meta_str(kb, key, &v, err);
    if (rc) return rc;
    if (!v) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no meta value '%s'", kb->db_path, key);
    snprintf(buf, cap, "%s", v);
    free(v);
    return PF_OK;
}

int kb_schema_version(pf_kb *kb, int *version, pf_error *err) {
    sqlite3_stmt *st;
    *version = 0;
    if (sqlite3_prepare_v2(kb->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st, NULL) != SQLITE_OK) {
        /* No meta table: an empty database is version 0, anything else is not ours. */
        int rc = kb_prepare(kb, "SELECT count(*) FROM sqlite_master", &st, err);
        if (rc) return rc;
        int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        if (n == 0) return PF_OK;
        return pf_error_set(err, PF_ERR_FORMAT, "%s: not a phiforge knowledge base (no meta table)", kb->db_path);
    }
    int s = sqlite3_step(st), rc = PF_OK;
    if (s == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        char *end;
        long x = strtol(v ? v : "", &end, 10);
        if (!v || end == v || *end || x < 1 || x > 1000000)
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: meta.schema_version is '%s', not a version number", kb->db_path,
                              v ? v : "NULL");
        else
            *version = (int)x;
    } else {
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: not a phiforge knowledge base (meta has no schema_version)", kb->db_path);
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_migrate(pf_kb *kb, const kb_migrate_fn *steps, int n_steps, pf_error *err) {
    int v, rc = kb_schema_version(kb, &v, err);
    if (rc) return rc;
    if (v > n_steps)
        return pf_error_set(err, PF_ERR_UNSUPPORTED,
                            "%s: knowledge base schema version %d is newer than this phiforge supports (%d): "
                            "use a newer phiforge",
                            kb->db_path, v, n_steps);
    if (v == n_steps) return PF_OK;
    if ((rc = kb_begin(kb, err))) return rc;
    /* Another process may have migrated while we waited for the write lock. */
    if (!(rc = kb_schema_version(kb, &v, err)) && v > n_steps)
        rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: schema version %d is newer than %d", kb->db_path, v, n_steps);
    for (int k = v; k < n_steps && !rc; k++) rc = steps[k](kb, err);
    if (!rc) rc = kb_meta_set_int(kb, "schema_version", n_steps, err);
    if (!rc) rc = kb_commit(kb, err);
    if (rc) kb_rollback(kb);
    return rc;
}

/* 0 -> 1: the first schema on an empty database. */
static int step_create_v1(pf_kb *kb, pf_error *err) {
    int rc = kb_exec(kb, PF_KB_SCHEMA_V1, err);
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    if (!rc) rc = kb_meta_set(kb, "created_at", now, err);
    if (!rc) rc = kb_meta_set(kb, "vector_generation", "0", err);
    return rc;
}

static const kb_migrate_fn kb_steps[PF_KB_SCHEMA_VERSION] = {step_create_v1};

int pf_kb_open(const char *dir, bool create, pf_kb **out, pf_error *err) {
    if (!dir || !*dir || !out) return pf_error_set(err, PF_ERR_ARG, "pf_kb_open: invalid argument");
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (!create)
            return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no knowledge base there (%s)", dir, strerror(errno));
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return pf_error_set(err, PF_ERR_IO, "%s: cannot create the knowledge base directory: %s", dir, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        return pf_error_set(err, PF_ERR_ARG, "%s: a knowledge base is a directory, this is a file", dir);
    }
    pf_kb *kb = calloc(1, sizeof *kb);
    if (!kb || !(kb->dir = kb_strdup(dir)) || !(kb->db_path = kb_join(dir, PF_KB_DB_NAME)) ||
        !(kb->index_path = kb_join(dir, PF_KB_INDEX_NAME))) {
        pf_kb_close(kb);
        return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    }
    if (!create && access(kb->db_path, F_OK) != 0) {
        int rc = pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no knowledge base there (%s missing)", dir, PF_KB_DB_NAME);
        pf_kb_close(kb);
        return rc;
    }
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = PF_OK;
    if (sqlite3_open_v2(kb->db_path, &kb->db, flags, NULL) != SQLITE_OK) {
        rc = pf_error_set(err, PF_ERR_IO, "%s: cannot open: %s", kb->db_path, kb->db ? sqlite3_errmsg(kb->db) : "out of memory");
    } else {
        sqlite3_busy_timeout(kb->db, 10000);
        /* WAL: readers never block the writer; NORMAL sync is durable against a killed
         * process (only an OS crash can lose the last commits, never consistency). */
        rc = kb_exec(kb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err);
        if (!rc) rc = kb_migrate(kb, kb_steps, PF_KB_SCHEMA_VERSION, err);
    }
    if (rc) {
        pf_kb_close(kb);
        return rc;
    }
    *out = kb;
    return PF_OK;
}

void pf_kb_close(pf_kb *kb) {
    if (!kb) return;
    pf_hnsw_free(kb->index);
    pf_embedder_free(kb->emb);
    if (kb->db) sqlite3_close_v2(kb->db);
    free(kb->emb_id);
    free(kb->dir);
    free(kb->db_path);
    free(kb->index_path);
    free(kb);
}

const char *pf_kb_dir(const pf_kb *kb) { return kb ? kb->dir : NULL; }
struct sqlite3 *pf_kb_db(pf_kb *kb) { return kb ? kb->db : NULL; }
