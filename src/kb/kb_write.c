/* Deleting documents: by source (ingestion replacing or pruning a file) and by key or source
 * (kb rm). Chunks, FTS rows and embeddings follow through ON DELETE CASCADE and the FTS
 * trigger; the vector index is updated in step or left stale for a rebuild. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/kb_internal.h"

int kb_ids_push(kb_ids *ids, int64_t id) {
    if (ids->n == ids->cap) {
        int64_t cap = ids->cap ? 2 * ids->cap : 64;
        int64_t *v = realloc(ids->v, (size_t)cap * sizeof *v);
        if (!v) return PF_ERR_NOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return PF_OK;
}

void kb_ids_free(kb_ids *ids) {
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

/* Appends the ids of the embedded chunks of the documents `where` selects (?1, ?2 bound). */
static int embedded_chunks(pf_kb *kb, const char *where, const char *a, const char *b, kb_ids *gone, pf_error *err) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT e.chunk_id FROM embeddings e JOIN chunks c ON c.id = e.chunk_id "
             "JOIN documents d ON d.id = c.doc_id WHERE %s",
             where);
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, sql, &st, err), s = SQLITE_DONE;
    if (rc) return rc;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW)
        if (kb_ids_push(gone, sqlite3_column_int64(st, 0))) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    if (!rc && s != SQLITE_DONE) rc = kb_sql_fail(kb, err, "listing embedded chunks");
    sqlite3_finalize(st);
    return rc;
}

int kb_delete_source_docs(pf_kb *kb, const char *source, kb_ids *gone, int64_t *n_docs, pf_error *err) {
    int rc = gone ? embedded_chunks(kb, "d.source = ?1", source, NULL, gone, err) : PF_OK;
    sqlite3_stmt *st;
    if (rc || (rc = kb_prepare(kb, "DELETE FROM documents WHERE source = ?1", &st, err))) return rc;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = kb_sql_fail(kb, err, "deleting documents");
    else if (n_docs) *n_docs = sqlite3_changes(kb->db);
    sqlite3_finalize(st);
    return rc;
}

/* Deletes the documents matching key (as doc_key or source, raw or absolute) and then the
 * source rows left without documents. */
static int remove_one(pf_kb *kb, const char *key, const char *abs, kb_ids *gone, int64_t *count, pf_error *err) {
    static const char *where = "d.doc_key = ?1 OR d.source = ?1 OR d.source = ?2";
    int rc = embedded_chunks(kb, where, key, abs, gone, err);
    sqlite3_stmt *st = NULL;
    const char *sql[] = {
        /* sources of the matching documents, remembered before they go */
        "CREATE TEMP TABLE IF NOT EXISTS rm_sources(path TEXT PRIMARY KEY)",
        "INSERT OR IGNORE INTO temp.rm_sources SELECT source FROM documents WHERE doc_key = ?1 OR source = ?1 OR source = ?2",
        "INSERT OR IGNORE INTO temp.rm_sources VALUES (?2)",
        "DELETE FROM documents WHERE doc_key = ?1 OR source = ?1 OR source = ?2",
        "DELETE FROM sources WHERE path IN (SELECT path FROM temp.rm_sources) "
        "AND NOT EXISTS (SELECT 1 FROM documents WHERE source = sources.path)",
        "UPDATE sources SET n_docs = (SELECT count(*) FROM documents WHERE source = sources.path) "
        "WHERE path IN (SELECT path FROM temp.rm_sources)",
        "DELETE FROM temp.rm_sources",
    };
    for (size_t k = 0; k < sizeof sql / sizeof sql[0] && !rc; k++) {
        if ((rc = kb_prepare(kb, sql[k], &st, err))) break;
        if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_text(st, 2, abs, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) rc = kb_sql_fail(kb, err, "removing documents");
        else if (k == 3) *count = sqlite3_changes(kb->db);
        sqlite3_finalize(st);
    }
    return rc;
}

int pf_kb_remove(pf_kb *kb, const char *const *keys, int64_t n, int64_t *removed, int64_t *n_total, pf_error *err) {
    if (!kb || (n && !keys)) return pf_error_set(err, PF_ERR_ARG, "pf_kb_remove: invalid argument");
    if (n_total) *n_total = 0;
    pf_hnsw *h = NULL;
    int rc = pf_kb_vector_index(kb, &h, err); /* loaded first so it can be updated in place */
    if (rc || (rc = kb_begin(kb, err))) return rc;
    uint64_t g0 = (uint64_t)kb_meta_int(kb, "vector_generation", 0), g1 = g0;
    kb_ids gone = {0};
    for (int64_t i = 0; i < n && !rc; i++) {
        char *abs = kb_abs_path(keys[i]);
        int64_t c = 0;
        rc = abs ? remove_one(kb, keys[i], abs, &gone, &c, err) : pf_error_set(err, PF_ERR_NOMEM, "out of memory");
        free(abs);
        if (removed) removed[i] = c;
        if (n_total) *n_total += c;
    }
    if (!rc && gone.n) rc = kb_bump_generation(kb, &g1, err);
    if (!rc) rc = kb_commit(kb, err);
    if (rc) {
        kb_rollback(kb);
        kb_ids_free(&gone);
        return rc;
    }
    if (gone.n) kb_index_apply(kb, g0, g1, &gone, NULL, NULL, 0, 0);
    kb_ids_free(&gone);
    return kb_index_flush(kb, err);
}
