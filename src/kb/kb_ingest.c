/* pf_kb_ingest: walk, then workers (read, hash, extract, chunk, embed) feeding one writer that
 * commits files in path order, one transaction each; then prune, embed what lacks vectors and
 * save the vector index. At most `window` files are in flight, so memory stays bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kb/kb_ingest.h"

pf_ingest_params pf_ingest_default_params(void) {
    pf_ingest_params p;
    memset(&p, 0, sizeof p);
    p.chunk_overlap = -1;
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int load_snapshot(pf_kb *kb, kb_source_snap **out, int64_t *n_out, pf_error *err) {
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, "SELECT path, sha256, config FROM sources ORDER BY path", &st, err);
    kb_source_snap *v = NULL;
    int64_t n = 0, cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            kb_source_snap *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) { rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory"); break; }
            v = nv;
        }
        kb_source_snap *s = &v[n++];
        s->path = kb_strdup((const char *)sqlite3_column_text(st, 0));
        s->sha256 = kb_strdup((const char *)sqlite3_column_text(st, 1));
        s->config = kb_strdup((const char *)sqlite3_column_text(st, 2));
        if (!s->path || !s->sha256 || !s->config) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(st);
    *out = v;
    *n_out = n;
    return rc;
}

static void free_snapshot(kb_source_snap *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(v[i].path), free(v[i].sha256), free(v[i].config);
    free(v);
}

/* Chunk size and overlap: explicit values, else the KB's, else the defaults; recorded in meta. */
static int chunk_settings(pf_kb *kb, const pf_ingest_params *p, const char *tokenizer, int32_t *tokens,
                          int32_t *overlap, pf_error *err) {
    int64_t t = p->chunk_tokens > 0 ? p->chunk_tokens : kb_meta_int(kb, "chunk_tokens", PF_CHUNK_DEFAULT_TOKENS);
    int64_t o = p->chunk_overlap >= 0 ? p->chunk_overlap : kb_meta_int(kb, "chunk_overlap", PF_CHUNK_DEFAULT_OVERLAP);
    if (t < 16 || t > 1000000) return pf_error_set(err, PF_ERR_ARG, "chunk tokens must be 16..1000000 (got %lld)", (long long)t);
    if (o >= t) {
        if (p->chunk_overlap >= 0)
            return pf_error_set(err, PF_ERR_ARG, "chunk overlap (%lld) must be smaller than chunk tokens (%lld)",
                                (long long)o, (long long)t);
        o = t / 4; /* a smaller size given without an overlap: keep the default's proportion */
    }
    *tokens = (int32_t)t;
    *overlap = (int32_t)o;
    char *cur = NULL;
    int rc = kb_meta_str(kb, "chunk_tokenizer", &cur, err);
    bool same = !rc && cur && !strcmp(cur, tokenizer) && kb_meta_int(kb, "chunk_tokens", -1) == t &&
                kb_meta_int(kb, "chunk_overlap", -1) == o;
    free(cur);
    if (rc || same) return rc;
    if ((rc = kb_begin(kb, err))) return rc;
    rc = kb_meta_set_int(kb, "chunk_tokens", t, err);
    if (!rc) rc = kb_meta_set_int(kb, "chunk_overlap", o, err);
    if (!rc) rc = kb_meta_set(kb, "chunk_tokenizer", tokenizer, err);
    if (!rc) rc = kb_commit(kb, err);
    if (rc) kb_rollback(kb);
    return rc;
}

static int load_phi3(const pf_ingest_params *p, pf_tokenizer **tok, pf_error *err) {
    char path[4096];
    int rc = PF_OK;
    if (p->vocab_path) snprintf(path, sizeof path, "%s", p->vocab_path);
    else if ((rc = pf_init_find_vocab(path, sizeof path, err))) return rc;
    pf_gguf *g = NULL;
    if (!(rc = pf_gguf_open(path, &g, err))) rc = pf_tokenizer_load(g, tok, err);
    pf_gguf_close(g);
    return rc;
}

static void progress(const kb_report *rep, int64_t done, int64_t total, double bdone, double btotal, const char *path) {
    if (!rep->fn) return;
    pf_ingest_event ev = {.kind = PF_INGEST_PROGRESS, .path = path, .files_done = done, .files_total = total,
                          .bytes_done = bdone, .bytes_total = btotal};
    rep->fn(rep->user, &ev);
}

/* Writes results in file order as workers finish them. A KB-level failure stops everything. */
static int write_all(pf_kb *kb, kb_job *j, const kb_report *rep, pf_ingest_stats *st, pf_error *err) {
    kb_writer w;
    int rc = kb_writer_open(&w, kb, j->emb ? kb->emb_id : NULL, j->dim, j->config, err);
    double btotal = 0, bdone = 0, t_tx = now_s();
    for (int64_t i = 0; i < j->files->n; i++) btotal += (double)j->files->v[i].size;
    for (int64_t i = 0; i < j->files->n && !rc; i++) {
        const kb_file *f = &j->files->v[i];
        /* Group commit: a transaction holds at most 256 files or 1 s of work. */
        if (w.in_tx && (w.tx_files >= 256 || now_s() - t_tx >= 1.0) && (rc = kb_writer_commit(&w, err))) break;
        if (!w.in_tx) t_tx = now_s();
        pthread_mutex_lock(&j->mu);
        while (j->results[i].outcome == KB_R_PENDING) pthread_cond_wait(&j->cv_done, &j->mu);
        pthread_mutex_unlock(&j->mu);
        kb_result *r = &j->results[i];
        for (int64_t k = 0; k < r->xr.n_warnings; k++) kb_report_event(rep, PF_INGEST_WARNING, f->path, r->xr.warnings[k]);
        if (r->outcome == KB_R_FAILED) {
            kb_report_event(rep, PF_INGEST_FAILED, f->path, r->reason ? r->reason : "out of memory");
        } else if (r->outcome == KB_R_UNCHANGED) {
            st->unchanged++;
            kb_report_event(rep, PF_INGEST_UNCHANGED, f->path, NULL);
        } else {
            int64_t nd = 0, nc = 0;
            if ((rc = kb_write_file(&w, f, r, rep, &nd, &nc, err))) break;
            bool upd = r->known;
            upd ? st->updated++ : st->added++;
            st->docs += nd;
            st->chunks += nc;
            st->bytes += (double)f->size;
            if (r->vecs) st->embedded += nc;
            for (int64_t d = 0; d < r->xr.n_docs; d++)
                for (int64_t c = 0; c < r->n_chunks[d]; c++) st->tokens += r->chunks[d][c].n_tokens;
            if (rep->fn) {
                pf_ingest_event ev = {.kind = upd ? PF_INGEST_UPDATED : PF_INGEST_ADDED, .path = f->path,
                                      .n_docs = nd, .n_chunks = nc};
                rep->fn(rep->user, &ev);
            }
        }
        bdone += (double)f->size;
        progress(rep, i + 1, j->files->n, bdone, btotal, f->path);
        kb_result_free(r);
        pthread_mutex_lock(&j->mu);
        j->committed = i + 1;
        pthread_cond_broadcast(&j->cv_work);
        pthread_mutex_unlock(&j->mu);
    }
    if (!rc) rc = kb_writer_commit(&w, err);
    kb_writer_close(&w);
    return rc;
}

static int run_files(pf_kb *kb, const kb_files *files, kb_job *j, int n_threads, const kb_report *rep,
                     pf_ingest_stats *st, pf_error *err) {
    int n_workers = n_threads < files->n ? n_threads : (int)files->n;
    if (n_workers < 1) return PF_OK;
    j->files = files;
    j->results = calloc((size_t)files->n, sizeof *j->results);
    pthread_t *th = calloc((size_t)n_workers, sizeof *th);
    if (!j->results || !th) {
        free(j->results);
        free(th);
        return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    }
    j->window = 2 * (int64_t)n_workers + 2;
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->emb_mu, NULL);
    pthread_cond_init(&j->cv_work, NULL);
    pthread_cond_init(&j->cv_done, NULL);
    int started = 0, rc = PF_OK;
    for (; started < n_workers; started++)
        if (pthread_create(&th[started], NULL, kb_worker, j) != 0) break;
    if (!started) rc = pf_error_set(err, PF_ERR_NOMEM, "ingest: cannot start worker threads");
    else rc = write_all(kb, j, rep, st, err);
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_broadcast(&j->cv_work);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int64_t i = 0; i < files->n; i++) kb_result_free(&j->results[i]);
    free(j->results);
    free(th);
    pthread_mutex_destroy(&j->mu);
    pthread_mutex_destroy(&j->emb_mu);
    pthread_cond_destroy(&j->cv_work);
    pthread_cond_destroy(&j->cv_done);
    return rc;
}

int pf_kb_ingest(pf_kb *kb, const char *const *paths, int64_t n_paths, const pf_ingest_params *pp,
                 pf_ingest_stats *stats, pf_error *err) {
    if (!kb || (n_paths && !paths) || n_paths < 0) return pf_error_set(err, PF_ERR_ARG, "pf_kb_ingest: invalid argument");
    pf_ingest_params p = pp ? *pp : pf_ingest_default_params();
    pf_ingest_stats local;
    pf_ingest_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    double t0 = now_s();
    int n_threads = p.n_threads > 0 ? p.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
    kb_report rep = {p.on_event, p.user, st};
    pf_tokenizer *phi3 = NULL;
    kb_files files = {0};
    kb_source_snap *snap = NULL;
    int64_t n_snap = 0;
    char config[512];
    kb_job j;
    memset(&j, 0, sizeof j);
    /* Checkpoints (each two fsyncs) every 64 MB of WAL rather than every 4 MB: per-file commits
     * stay cheap; and a larger page cache for the FTS5 segment merges. Restored at the end. */
    kb_exec(kb, "PRAGMA wal_autocheckpoint=16384; PRAGMA cache_size=-65536", NULL);
    int rc = kb_ingest_model(kb, &p, n_threads, &rep, err);
    if (rc) goto done;
    pf_hnsw *h = NULL;
    if (kb->emb && (rc = pf_kb_vector_index(kb, &h, err))) goto done; /* loaded, so updates are incremental */
    const pf_tokenizer *tok = kb->emb ? pf_embedder_tokenizer(kb->emb) : NULL;
    if (!tok && (rc = load_phi3(&p, &phi3, err))) goto done;
    if (!tok) tok = phi3;
    const char *tok_name = kb->emb ? kb->emb_id : "phi3";
    int32_t ct = 0, co = 0;
    if ((rc = chunk_settings(kb, &p, tok_name, &ct, &co, err))) goto done;
    snprintf(config, sizeof config, "tokens=%d overlap=%d tokenizer=%s", ct, co, tok_name);
    j.cp = pf_chunk_default_params(tok);
    j.cp.target_tokens = ct;
    j.cp.overlap_tokens = co;
    j.cp.max_input_tokens = kb->emb ? (int32_t)pf_embedder_max_tokens(kb->emb) - 2 : 0;
    j.config = config;
    j.emb = kb->emb;
    j.dim = kb->emb ? pf_embedder_dim(kb->emb) : 0;
    if ((rc = kb_walk(paths, n_paths, &files, &rep, err))) goto done;
    st->files = files.n;
    if ((rc = load_snapshot(kb, &snap, &n_snap, err))) goto done;
    j.snap = snap;
    j.n_snap = n_snap;
    if ((rc = run_files(kb, &files, &j, n_threads, &rep, st, err))) goto done;
    if (p.prune && (rc = kb_ingest_prune(kb, &rep, err))) goto done;
    if ((rc = kb_ingest_fill(kb, &rep, &st->embed_seconds, err))) goto done;
    rc = kb_index_flush(kb, err);
done:
    kb_exec(kb, "PRAGMA wal_autocheckpoint=1000; PRAGMA cache_size=-2000", NULL);
    sqlite3_wal_checkpoint_v2(kb->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL); /* best effort */
    st->embed_seconds += j.embed_seconds;
    st->seconds = now_s() - t0;
    free_snapshot(snap, n_snap);
    kb_files_free(&files);
    pf_tokenizer_free(phi3);
    return rc;
}
