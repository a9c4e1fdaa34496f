/* The worker side of ingestion: for one file, read its bytes, hash them, decide whether it
 * changed, extract, chunk and (when the KB has a model) embed. Runs on worker threads: touches
 * no SQLite, only the read-only snapshot of the sources table; pf_embed calls are serialized. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kb/kb_ingest.h"

void kb_result_free(kb_result *r) {
    free(r->reason);
    for (int64_t d = 0; r->chunks && d < r->xr.n_docs; d++) free(r->chunks[d]);
    free(r->chunks);
    free(r->n_chunks);
    free(r->vecs);
    pf_xresult_free(&r->xr);
    memset(r, 0, sizeof *r);
}

static void fail(kb_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(kb_result *r, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->reason = kb_strdup(msg);
    r->outcome = KB_R_FAILED;
}

/* The whole file (the extractors work on memory; the bytes are hashed on the way). */
static int read_all(const char *path, unsigned char **data, size_t *size, kb_result *r) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fail(r, "cannot read: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if ((int64_t)sb.st_size > PF_EXTRACT_MAX_INPUT_BYTES) {
        fail(r, "%lld bytes: larger than the input cap of %lld MiB", (long long)sb.st_size,
             (long long)(PF_EXTRACT_MAX_INPUT_BYTES >> 20));
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    unsigned char *buf = malloc(n ? n : 1);
    int e = 0;
    while (buf && got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) e = errno;
        if (k <= 0) break; /* an error, or the file shrank while being read: what is there counts */
        got += (size_t)k;
    }
    close(fd);
    if (!buf || e) {
        free(buf);
        fail(r, "cannot read: %s", buf ? strerror(e) : "out of memory");
        return -1;
    }
    *data = buf;
    *size = got;
    return 0;
}

static const kb_source_snap *snap_find(const kb_job *j, const char *path) {
    int64_t lo = 0, hi = j->n_snap;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(j->snap[mid].path, path);
        if (!c) return &j->snap[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void embed_chunks(kb_job *j, kb_result *r) {
    int64_t n = r->total_chunks, k = 0;
    char **texts = calloc((size_t)n, sizeof *texts);
    r->vecs = malloc((size_t)(n * j->dim) * sizeof *r->vecs);
    bool ok = texts && r->vecs;
    for (int64_t d = 0; ok && d < r->xr.n_docs; d++)
        for (int64_t c = 0; ok && c < r->n_chunks[d]; c++, k++) {
            const pf_chunk *ch = &r->chunks[d][c];
            ok = (texts[k] = pf_chunk_embed_text(ch->heading, r->xr.docs[d].text + ch->start,
                                                 (size_t)(ch->end - ch->start))) != NULL;
        }
    if (!ok) {
        fail(r, "out of memory preparing texts to embed");
    } else {
        pf_error e = {0};
        pthread_mutex_lock(&j->emb_mu);
        double t0 = now_s();
        int64_t rc = pf_embed(j->emb, (const char *const *)texts, n, r->vecs, &e);
        j->embed_seconds += now_s() - t0;
        pthread_mutex_unlock(&j->emb_mu);
        if (rc < 0) fail(r, "embedding failed: %s", e.msg);
    }
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
}

static void process(kb_job *j, const kb_file *f, kb_result *r) {
    unsigned char *data = NULL;
    size_t size = 0;
    if (read_all(f->path, &data, &size, r)) return;
    kb_sha256_buf(data, size, r->sha256);
    const kb_source_snap *s = snap_find(j, f->path);
    r->known = s != NULL;
    if (s && !strcmp(s->sha256, r->sha256) && !strcmp(s->config, j->config)) {
        free(data);
        r->outcome = KB_R_UNCHANGED;
        return;
    }
    pf_error e = {0};
    int rc = pf_extract_memory(f->type, f->path, data, size, &r->xr, &e);
    free(data);
    if (rc) {
        fail(r, "%s", e.msg);
        return;
    }
    int64_t nd = r->xr.n_docs;
    r->chunks = calloc((size_t)(nd ? nd : 1), sizeof *r->chunks);
    r->n_chunks = calloc((size_t)(nd ? nd : 1), sizeof *r->n_chunks);
    if (!r->chunks || !r->n_chunks) {
        fail(r, "out of memory");
        return;
    }
    for (int64_t d = 0; d < nd; d++) {
        const pf_xdoc *x = &r->xr.docs[d];
        if ((rc = pf_chunk_text(x->text, x->len, x->sections, x->n_sections, &j->cp, &r->chunks[d], &r->n_chunks[d], &e))) {
            fail(r, "chunking failed: %s", e.msg);
            return;
        }
        r->total_chunks += r->n_chunks[d];
    }
    if (j->emb && r->total_chunks) embed_chunks(j, r);
    if (r->outcome != KB_R_FAILED) r->outcome = KB_R_NEW;
}

void *kb_worker(void *arg) {
    kb_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->stop && j->next < j->files->n && j->next >= j->committed + j->window)
            pthread_cond_wait(&j->cv_work, &j->mu);
        if (j->stop || j->next >= j->files->n) {
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
        int64_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        kb_result r = {0};
        process(j, &j->files->v[i], &r);
        pthread_mutex_lock(&j->mu);
        j->results[i] = r;
        pthread_cond_broadcast(&j->cv_done);
        pthread_mutex_unlock(&j->mu);
    }
}
