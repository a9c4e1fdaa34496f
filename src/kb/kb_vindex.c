/* The derived state of a KB: its embedding model and the vector index. SQLite is the source of
 * truth; vectors.hnsw carries the meta.vector_generation it was built from and is rebuilt from
 * the embeddings table whenever that differs (a killed ingest, another process's writes). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kb/kb_internal.h"

int kb_model_id(const char *path, const char *name, char **out, pf_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: cannot open the embedding model: %s", path, strerror(errno));
    kb_sha256 s;
    kb_sha256_init(&s);
    static const size_t CH = 1 << 20;
    unsigned char *buf = malloc(CH);
    size_t n;
    while (buf && (n = fread(buf, 1, CH, f)) > 0) kb_sha256_update(&s, buf, n);
    int bad = !buf || ferror(f);
    fclose(f);
    free(buf);
    if (bad) return pf_error_set(err, PF_ERR_IO, "%s: cannot read the embedding model", path);
    char hex[65];
    kb_sha256_hex(&s, hex);
    size_t len = strlen(name) + 32;
    if (!(*out = malloc(len))) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    snprintf(*out, len, "%s sha256:%.16s", name, hex);
    return PF_OK;
}

void kb_file_stamp(const char *path, char *buf, size_t cap) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(buf, cap, "%s", "");
        return;
    }
    snprintf(buf, cap, "%lld:%lld", (long long)sb.st_size,
             (long long)sb.st_mtim.tv_sec * 1000000000LL + (long long)sb.st_mtim.tv_nsec);
}

int pf_kb_embedder(pf_kb *kb, int n_threads, pf_embedder **out, pf_error *err) {
    if (!kb || !out) return pf_error_set(err, PF_ERR_ARG, "pf_kb_embedder: invalid argument");
    *out = kb->emb;
    if (kb->emb) return PF_OK;
    char *path = NULL, *want = NULL, *id = NULL, *stamp = NULL;
    int rc = kb_meta_str(kb, "embed_model", &path, err);
    if (!rc && path) rc = kb_meta_str(kb, "embed_model_id", &want, err);
    if (!rc && path) rc = kb_meta_str(kb, "embed_model_stat", &stamp, err);
    if (rc || !path) goto done;
    pf_embedder *e = NULL;
    pf_error e2 = {0};
    if ((rc = pf_embedder_load(path, n_threads, &e, &e2))) {
        rc = pf_error_set(err, rc, "%s: the knowledge base's embedding model cannot be loaded: %s", kb->dir, e2.msg);
        goto done;
    }
    /* Hashing a large model costs a second or more per open: only when the file's size or
     * modification time changed since it was recorded. */
    char now[64];
    kb_file_stamp(path, now, sizeof now);
    if (want && stamp && *now && !strcmp(now, stamp)) id = kb_strdup(want);
    else if ((rc = kb_model_id(path, pf_embedder_name(e), &id, err))) {
        pf_embedder_free(e);
        goto done;
    }
    if (!id) {
        pf_embedder_free(e);
        rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (want && strcmp(want, id)) {
        rc = pf_error_set(err, PF_ERR_FORMAT,
                          "%s: %s is no longer the model this knowledge base was embedded with (%s, now %s); "
                          "ingest with --embed-model %s to re-embed",
                          kb->dir, path, want, id, path);
        pf_embedder_free(e);
        goto done;
    }
    kb->emb = e;
    kb->emb_id = id;
    id = NULL;
    *out = e;
done:
    free(path);
    free(want);
    free(stamp);
    free(id);
    return rc;
}

/* Builds an index from the embeddings of `model` (inside the caller's read transaction). */
static int rebuild(pf_kb *kb, const char *model, int32_t dim, pf_hnsw **out, pf_error *err) {
    pf_hnsw_params hp = pf_hnsw_default_params(dim, PF_METRIC_COSINE);
    pf_hnsw *h = NULL;
    sqlite3_stmt *st = NULL;
    float *v = malloc((size_t)dim * sizeof *v);
    int rc = v ? pf_hnsw_create(&hp, &h, err) : pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    if (!rc) rc = kb_prepare(kb, "SELECT count(*) FROM embeddings WHERE model = ?1", &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
            rc = pf_hnsw_reserve(h, sqlite3_column_int64(st, 0), err);
        sqlite3_finalize(st);
        st = NULL;
    }
    if (!rc) rc = kb_prepare(kb, "SELECT chunk_id, vector FROM embeddings WHERE model = ?1 ORDER BY chunk_id", &st, err);
    if (!rc) sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    int s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        if (sqlite3_column_bytes(st, 1) != dim * 4 || !blob) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: embedding of chunk %lld has %d bytes, expected %d (dim %d)",
                              kb->db_path, (long long)id, sqlite3_column_bytes(st, 1), dim * 4, dim);
            break;
        }
        memcpy(v, blob, (size_t)dim * 4); /* blobs are not aligned for float */
        rc = pf_hnsw_add(h, id, v, dim, err);
    }
    if (!rc && s != SQLITE_DONE) rc = kb_sql_fail(kb, err, "reading embeddings");
    sqlite3_finalize(st);
    free(v);
    if (rc) {
        pf_hnsw_free(h);
        return rc;
    }
    *out = h;
    return PF_OK;
}

int kb_index_flush(pf_kb *kb, pf_error *err) {
    if (!kb->index || !kb->index_dirty) return PF_OK;
    /* Our own temporary name: two processes rebuilding at once never share a file. */
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.%ld", PF_KB_INDEX_NAME, (long)getpid());
    char *path = kb_join(kb->dir, tmp);
    if (!path) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    int rc = pf_hnsw_save(kb->index, path, kb->index_gen, err);
    if (!rc && rename(path, kb->index_path) != 0)
        rc = pf_error_set(err, PF_ERR_IO, "%s: cannot rename to %s: %s", path, kb->index_path, strerror(errno));
    if (rc) unlink(path);
    free(path);
    if (!rc) kb->index_dirty = false;
    return rc;
}

/* Removes temporary index files left by killed processes (vectors.hnsw.<pid>[.tmp]). */
static void cleanup_tmp(pf_kb *kb) {
    DIR *d = opendir(kb->dir);
    if (!d) return;
    struct dirent *de;
    size_t pl = strlen(PF_KB_INDEX_NAME);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, PF_KB_INDEX_NAME ".", pl + 1)) continue;
        char *end;
        long pid = strtol(de->d_name + pl + 1, &end, 10);
        if (end == de->d_name + pl + 1 || (*end && strcmp(end, ".tmp"))) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *p = kb_join(kb->dir, de->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
}

int pf_kb_vector_index(pf_kb *kb, pf_hnsw **out, pf_error *err) {
    if (!kb || !out) return pf_error_set(err, PF_ERR_ARG, "pf_kb_vector_index: invalid argument");
    *out = NULL;
    char *model = NULL;
    /* One read transaction: the generation and the embeddings read belong to one state. */
    int rc = kb_exec(kb, "BEGIN", err);
    if (rc) return rc;
    if ((rc = kb_meta_str(kb, "embed_model_id", &model, err)) || !model) goto done;
    uint64_t gen = (uint64_t)kb_meta_int(kb, "vector_generation", 0);
    int32_t dim = (int32_t)kb_meta_int(kb, "embed_dim", 0);
    if (kb->index && kb->index_gen == gen) goto done;
    pf_hnsw_free(kb->index);
    kb->index = NULL;
    kb->index_dirty = false;
    pf_hnsw *h = NULL;
    uint64_t fgen = 0;
    if (pf_hnsw_open(kb->index_path, &h, &fgen, NULL) == PF_OK) {
        if (fgen == gen && pf_hnsw_get_params(h).dim == dim) {
            kb->index = h;
            kb->index_gen = gen;
            goto done;
        }
        pf_hnsw_free(h);
    }
    if (dim <= 0) {
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: meta.embed_dim is missing or invalid", kb->db_path);
        goto done;
    }
    if ((rc = rebuild(kb, model, dim, &h, err))) goto done;
    kb->index = h;
    kb->index_gen = gen;
    kb->index_dirty = true;
done:
    free(model);
    if (rc) {
        kb_rollback(kb);
        return rc;
    }
    if ((rc = kb_commit(kb, err))) return rc;
    cleanup_tmp(kb);
    if (kb->index_dirty && (rc = kb_index_flush(kb, err))) return rc;
    *out = kb->index;
    return PF_OK;
}

void kb_index_forget(pf_kb *kb, const kb_ids *gone) {
    for (int64_t i = 0; kb->index && gone && i < gone->n; i++)
        if (pf_hnsw_contains(kb->index, gone->v[i])) pf_hnsw_remove(kb->index, gone->v[i], NULL);
}

void kb_index_apply(pf_kb *kb, uint64_t gen_before, uint64_t gen_after, const kb_ids *gone, const int64_t *ids,
                    const float *vecs, int64_t n, int64_t dim) {
    if (!kb->index) return;
    bool ok = kb->index_gen == gen_before && (n == 0 || pf_hnsw_get_params(kb->index).dim == dim);
    if (ok) kb_index_forget(kb, gone);
    for (int64_t i = 0; ok && i < n; i++) ok = pf_hnsw_add(kb->index, ids[i], vecs + i * dim, (int32_t)dim, NULL) == PF_OK;
    if (!ok) { /* out of step: the next pf_kb_vector_index rebuilds it */
        pf_hnsw_free(kb->index);
        kb->index = NULL;
        kb->index_dirty = false;
        return;
    }
    kb->index_gen = gen_after;
    kb->index_dirty = true;
}
