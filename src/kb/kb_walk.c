/* Walking the paths given to ingest: folders recursively in name order, hidden entries skipped
 * (dot files and dot folders, e.g. .git, unless named explicitly), symlinks followed but every
 * directory entered once (by device and inode), so a link cycle ends the descent. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kb/kb_ingest.h"

void kb_report_event(const kb_report *r, pf_ingest_event_kind kind, const char *path, const char *msg) {
    if (r->stats) {
        if (kind == PF_INGEST_FAILED) r->stats->failed++;
        if (kind == PF_INGEST_WARNING) r->stats->warnings++;
    }
    if (!r->fn) return;
    pf_ingest_event ev = {.kind = kind, .path = path, .msg = msg};
    r->fn(r->user, &ev);
}

typedef struct dir_set { /* (dev, ino) of directories entered: open addressing */
    uint64_t *key;       /* pairs; dev = ino = 0 marks an empty slot */
    size_t cap, n;
} dir_set;

/* true when newly inserted; false when present (or out of memory: -1 in *oom). */
static bool dir_set_add(dir_set *s, uint64_t dev, uint64_t ino, bool *oom) {
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint64_t *k = calloc(cap * 2, sizeof *k);
        if (!k) return *oom = true, false;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->key[2 * i] && !s->key[2 * i + 1]) continue;
            size_t h = (size_t)((s->key[2 * i] * 0x9E3779B97F4A7C15ull) ^ s->key[2 * i + 1]) & (cap - 1);
            while (k[2 * h] || k[2 * h + 1]) h = (h + 1) & (cap - 1);
            k[2 * h] = s->key[2 * i], k[2 * h + 1] = s->key[2 * i + 1];
        }
        free(s->key);
        s->key = k;
        s->cap = cap;
    }
    dev += 1; /* keep (0, 0) free as the empty marker */
    size_t h = (size_t)((dev * 0x9E3779B97F4A7C15ull) ^ ino) & (s->cap - 1);
    while (s->key[2 * h] || s->key[2 * h + 1]) {
        if (s->key[2 * h] == dev && s->key[2 * h + 1] == ino) return false;
        h = (h + 1) & (s->cap - 1);
    }
    s->key[2 * h] = dev, s->key[2 * h + 1] = ino;
    s->n++;
    return true;
}

typedef struct walker {
    kb_files *out;
    const kb_report *rep;
    dir_set dirs;
    bool oom;
} walker;

static int add_file(walker *w, const char *path, const struct stat *sb, const char *type) {
    kb_files *f = w->out;
    if (f->n == f->cap) {
        int64_t cap = f->cap ? 2 * f->cap : 256;
        kb_file *v = realloc(f->v, (size_t)cap * sizeof *v);
        if (!v) return PF_ERR_NOMEM;
        f->v = v;
        f->cap = cap;
    }
    char *abs = kb_abs_path(path);
    if (!abs) return PF_ERR_NOMEM;
    f->v[f->n++] = (kb_file){abs, type, (int64_t)sb->st_size, (int64_t)sb->st_mtime};
    return PF_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk_dir(walker *w, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        kb_report_event(w->rep, PF_INGEST_FAILED, dir, strerror(errno));
        return PF_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = PF_OK;
    while ((de = readdir(d)) != NULL && !rc) {
        if (de->d_name[0] == '.') continue; /* hidden, ".", ".." */
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { rc = PF_ERR_NOMEM; break; }
            names = nn;
        }
        if (!(names[n] = kb_join(dir, de->d_name))) rc = PF_ERR_NOMEM;
        else n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !rc; i++) {
        struct stat sb;
        if (stat(names[i], &sb) != 0) { /* a dangling link, or removed meanwhile */
            kb_report_event(w->rep, PF_INGEST_FAILED, names[i], strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            if (dir_set_add(&w->dirs, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, &w->oom)) rc = walk_dir(w, names[i]);
            else if (w->oom) rc = PF_ERR_NOMEM;
        } else if (S_ISREG(sb.st_mode)) {
            const char *type = pf_extract_type_of(names[i]);
            if (type) rc = add_file(w, names[i], &sb, type);
            else if (w->rep->stats) w->rep->stats->skipped++;
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int cmp_file(const void *a, const void *b) { return strcmp(((const kb_file *)a)->path, ((const kb_file *)b)->path); }

int kb_walk(const char *const *paths, int64_t n, kb_files *out, const kb_report *rep, pf_error *err) {
    memset(out, 0, sizeof *out);
    walker w = {out, rep, {0}, false};
    int rc = PF_OK;
    for (int64_t i = 0; i < n && !rc; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0) {
            kb_report_event(rep, PF_INGEST_FAILED, paths[i], strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            if (dir_set_add(&w.dirs, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, &w.oom)) rc = walk_dir(&w, paths[i]);
            else if (w.oom) rc = PF_ERR_NOMEM;
        } else if (S_ISREG(sb.st_mode)) {
            const char *type = pf_extract_type_of(paths[i]);
            if (type) rc = add_file(&w, paths[i], &sb, type);
            else
                kb_report_event(rep, PF_INGEST_FAILED, paths[i],
                                "unsupported file type (supported: .txt .md .html .pdf .docx .csv .tsv .json .jsonl)");
        } else {
            kb_report_event(rep, PF_INGEST_FAILED, paths[i], "not a regular file or folder");
        }
    }
    free(w.dirs.key);
    if (!rc && out->n > 1) { /* sorted by path, each file once (links and overlapping arguments) */
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_file);
        int64_t k = 1;
        for (int64_t i = 1; i < out->n; i++) {
            if (!strcmp(out->v[i].path, out->v[k - 1].path)) free(out->v[i].path);
            else out->v[k++] = out->v[i];
        }
        out->n = k;
    }
    if (rc) {
        kb_files_free(out);
        return pf_error_set(err, PF_ERR_NOMEM, "ingest: out of memory while listing files");
    }
    return PF_OK;
}

void kb_files_free(kb_files *f) {
    for (int64_t i = 0; i < f->n; i++) free(f->v[i].path);
    free(f->v);
    memset(f, 0, sizeof *f);
}
