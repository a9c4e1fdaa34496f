/* Ingestion set-up and clean-up around the per-file work: choosing the embedding model (and
 * re-embedding on a change), pruning vanished files, and embedding chunks that lack a vector of
 * the current model (after a model change, or a killed run). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kb/kb_ingest.h"

static void note(const kb_report *rep, const char *msg) { kb_report_event(rep, PF_INGEST_NOTE, NULL, msg); }

int kb_ingest_model(pf_kb *kb, const pf_ingest_params *p, int n_threads, const kb_report *rep, pf_error *err) {
    if (!p->embed_model) {
        pf_embedder *e;
        return pf_kb_embedder(kb, n_threads, &e, err); /* the configured one, if any */
    }
    char *abs = kb_abs_path(p->embed_model), *id = NULL, *cur = NULL, *cur_path = NULL;
    pf_embedder *e = NULL;
    pf_error e2 = {0};
    int rc = abs ? PF_OK : pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    if (!rc && (rc = pf_embedder_load(abs, n_threads, &e, &e2)))
        pf_error_set(err, rc, "--embed-model %s: %s", p->embed_model, e2.msg);
    if (!rc) rc = kb_model_id(abs, pf_embedder_name(e), &id, err);
    if (!rc) rc = kb_meta_str(kb, "embed_model_id", &cur, err);
    if (!rc) rc = kb_meta_str(kb, "embed_model", &cur_path, err);
    if (rc) goto done;
    bool same = cur && !strcmp(cur, id);
    char stamp[64], *cur_stamp = NULL;
    kb_file_stamp(abs, stamp, sizeof stamp);
    if ((rc = kb_meta_str(kb, "embed_model_stat", &cur_stamp, err))) goto done;
    bool stamp_same = cur_stamp && !strcmp(cur_stamp, stamp);
    free(cur_stamp);
    if (!same || !cur_path || strcmp(cur_path, abs) || !stamp_same) {
        int64_t removed = 0;
        if ((rc = kb_begin(kb, err))) goto done;
        if (!same) {
            rc = kb_exec(kb, "DELETE FROM embeddings", err);
            removed = sqlite3_changes(kb->db);
            if (!rc) rc = kb_meta_set(kb, "embed_model_id", id, err);
            if (!rc) rc = kb_meta_set(kb, "embed_name", pf_embedder_name(e), err);
            if (!rc) rc = kb_meta_set_int(kb, "embed_dim", pf_embedder_dim(e), err);
            if (!rc) rc = kb_meta_set_int(kb, "embed_max_tokens", pf_embedder_max_tokens(e), err);
            if (!rc) rc = kb_bump_generation(kb, NULL, err);
        }
        if (!rc) rc = kb_meta_set(kb, "embed_model", abs, err);
        if (!rc) rc = kb_meta_set(kb, "embed_model_stat", stamp, err);
        if (!rc) rc = kb_commit(kb, err);
        if (rc) {
            kb_rollback(kb);
            goto done;
        }
        char msg[1400];
        msg[0] = 0;
        if (!cur)
            snprintf(msg, sizeof msg, "embedding model: %s (dim %lld, %lld tokens)", id, (long long)pf_embedder_dim(e),
                     (long long)pf_embedder_max_tokens(e));
        else if (!same)
            snprintf(msg, sizeof msg, "embedding model changed from %s to %s: %lld vectors dropped, every chunk is re-embedded",
                     cur, id, (long long)removed);
        else if (!cur_path || strcmp(cur_path, abs))
            snprintf(msg, sizeof msg, "embedding model moved: %s", abs);
        if (msg[0]) note(rep, msg);
    }
    pf_embedder_free(kb->emb);
    free(kb->emb_id);
    kb->emb = e;
    kb->emb_id = id;
    e = NULL;
    id = NULL;
    if (!same) { /* another dimension or model: the index is rebuilt on next use */
        pf_hnsw_free(kb->index);
        kb->index = NULL;
        kb->index_dirty = false;
    }
done:
    pf_embedder_free(e);
    free(abs);
    free(id);
    free(cur);
    free(cur_path);
    return rc;
}

int kb_ingest_prune(pf_kb *kb, const kb_report *rep, pf_error *err) {
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, "SELECT path FROM sources ORDER BY path", &st, err);
    if (rc) return rc;
    char **paths = NULL;
    int64_t n = 0, cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        struct stat sb;
        if (stat(path, &sb) == 0 || (errno != ENOENT && errno != ENOTDIR)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **np = realloc(paths, (size_t)cap * sizeof *np);
            if (!np) { rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory"); break; }
            paths = np;
        }
        if (!(paths[n] = kb_strdup(path))) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
        else n++;
    }
    sqlite3_finalize(st);
    for (int64_t i = 0; i < n && !rc; i++) { /* one transaction per vanished file */
        kb_ids gone = {0};
        int64_t nd = 0;
        sqlite3_stmt *del = NULL;
        if ((rc = kb_begin(kb, err))) break;
        uint64_t g0 = (uint64_t)kb_meta_int(kb, "vector_generation", 0), g1 = g0;
        rc = kb_delete_source_docs(kb, paths[i], &gone, &nd, err);
        if (!rc) rc = kb_prepare(kb, "DELETE FROM sources WHERE path = ?1", &del, err);
        if (!rc) {
            sqlite3_bind_text(del, 1, paths[i], -1, SQLITE_STATIC);
            if (sqlite3_step(del) != SQLITE_DONE) rc = kb_sql_fail(kb, err, "deleting a source");
        }
        sqlite3_finalize(del);
        if (!rc && gone.n) rc = kb_bump_generation(kb, &g1, err);
        if (!rc) rc = kb_commit(kb, err);
        if (rc) kb_rollback(kb);
        else {
            if (gone.n) kb_index_apply(kb, g0, g1, &gone, NULL, NULL, 0, 0);
            if (rep->stats) rep->stats->pruned++;
            if (rep->fn) {
                pf_ingest_event ev = {.kind = PF_INGEST_PRUNED, .path = paths[i], .n_docs = nd};
                rep->fn(rep->user, &ev);
            }
        }
        kb_ids_free(&gone);
    }
    for (int64_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    return rc;
}

/* Embeds, in batches of one transaction each, every chunk without a vector of the current model. */
int kb_ingest_fill(pf_kb *kb, const kb_report *rep, double *seconds, pf_error *err) {
    if (!kb->emb) return PF_OK;
    static const char *missing = "FROM chunks c WHERE NOT EXISTS "
                                 "(SELECT 1 FROM embeddings e WHERE e.chunk_id = c.id AND e.model = ?1)";
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) %s", missing);
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, sql, &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, kb->emb_id, -1, SQLITE_STATIC);
    int64_t total = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (!total) return PF_OK;
    char msg[600];
    snprintf(msg, sizeof msg, "embedding %lld stored chunks that have no vector of %s", (long long)total, kb->emb_id);
    note(rep, msg);
    enum { B = 256 };
    int64_t dim = pf_embedder_dim(kb->emb), ids[B];
    char *texts[B];
    float *vecs = malloc((size_t)(B * dim) * sizeof *vecs);
    if (!vecs) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    snprintf(sql, sizeof sql, "SELECT c.id, c.text, c.heading %s ORDER BY c.id LIMIT %d", missing, B);
    sqlite3_stmt *ins = NULL;
    rc = kb_prepare(kb, "INSERT OR REPLACE INTO embeddings(chunk_id, model, dim, vector) VALUES (?1, ?2, ?3, ?4)", &ins, err);
    for (int64_t done = 0; !rc && done < total;) {
        int64_t n = 0;
        if ((rc = kb_prepare(kb, sql, &st, err))) break;
        sqlite3_bind_text(st, 1, kb->emb_id, -1, SQLITE_STATIC);
        while (n < B && sqlite3_step(st) == SQLITE_ROW) {
            ids[n] = sqlite3_column_int64(st, 0);
            const char *h = (const char *)sqlite3_column_text(st, 2);
            texts[n] = pf_chunk_embed_text(h, (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
            if (!texts[n]) { rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory"); break; }
            n++;
        }
        sqlite3_finalize(st);
        if (!rc && n == 0) break; /* someone else embedded or deleted the rest */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int64_t er = rc ? 0 : pf_embed(kb->emb, (const char *const *)texts, n, vecs, err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        *seconds += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        for (int64_t i = 0; i < n; i++) free(texts[i]);
        if (!rc && er < 0) rc = (int)er;
        if (rc || (rc = kb_begin(kb, err))) break;
        uint64_t g0 = (uint64_t)kb_meta_int(kb, "vector_generation", 0), g1 = g0;
        for (int64_t i = 0; i < n && !rc; i++) {
            sqlite3_bind_int64(ins, 1, ids[i]);
            sqlite3_bind_text(ins, 2, kb->emb_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 3, dim);
            sqlite3_bind_blob(ins, 4, vecs + i * dim, (int)(dim * 4), SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) rc = kb_sql_fail(kb, err, "inserting an embedding");
            sqlite3_reset(ins);
        }
        if (!rc) rc = kb_bump_generation(kb, &g1, err);
        if (!rc) rc = kb_commit(kb, err);
        if (rc) {
            kb_rollback(kb);
            break;
        }
        kb_index_apply(kb, g0, g1, NULL, ids, vecs, n, dim);
        if (rep->stats) rep->stats->embedded += n;
        done += n;
    }
    sqlite3_finalize(ins);
    free(vecs);
    return rc;
}
