/* safetensors reader: [u64 little-endian header length N][N bytes of JSON][data]. The JSON maps
 * each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * data section), plus an optional "__metadata__" object. Files are mapped read-only; tensors point
 * into the mapping. Everything is checked before use, because a truncated download or a hostile
 * file must give an error naming the file and the key, not a crash. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/convert_internal.h"

#define ST_MAX_HEADER (100u << 20) /* the format's own limit is 100 MB */

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
} st_file;

struct pf_st_set {
    st_file *files;
    int n_files;
    pf_st_tensor *t;
    int64_t n, cap;
};

void pf_st_close(pf_st_set *s) {
    if (s == NULL) return;
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    for (int64_t i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->files);
    free(s->t);
    free(s);
}

int64_t pf_st_count(const pf_st_set *s) { return s ? s->n : 0; }
const pf_st_tensor *pf_st_at(const pf_st_set *s, int64_t i) { return s && i >= 0 && i < s->n ? &s->t[i] : NULL; }

const pf_st_tensor *pf_st_find(const pf_st_set *s, const char *name) {
    for (int64_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

static int dtype_of(const char *s, pf_type *t, size_t *size) {
    if (!strcmp(s, "F32")) *t = PF_TYPE_F32, *size = 4;
    else if (!strcmp(s, "F16")) *t = PF_TYPE_F16, *size = 2;
    else if (!strcmp(s, "BF16")) *t = PF_TYPE_BF16, *size = 2;
    else return -1;
    return 0;
}

/* A JSON number that is a non-negative integer representable exactly; -1 otherwise. */
static int64_t json_uint(const cJSON *v) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15 || v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    return (int64_t)v->valuedouble;
}

static int add_tensor(pf_st_set *s, const char *path, const char *key, const cJSON *e, const uint8_t *data,
                      size_t data_size, pf_error *err) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(e, "shape"),
                *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: tensor '%s' needs dtype, shape and data_offsets", path, key);
    pf_st_tensor t = {0};
    size_t esize = 0;
    if (dtype_of(dt->valuestring, &t.type, &esize) != 0)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "safetensors %s: tensor '%s' has dtype %s (supported: F32, F16, BF16)",
                            path, key, dt->valuestring);
    const int nd = cJSON_GetArraySize(sh);
    if (nd > 4) return pf_error_set(err, PF_ERR_UNSUPPORTED, "safetensors %s: tensor '%s' has %d dimensions (max 4)", path, key, nd);
    int64_t nel = 1;
    for (int d = 0; d < nd; d++) {
        int64_t v = json_uint(cJSON_GetArrayItem(sh, d));
        if (v < 0 || (v > 0 && nel > INT64_MAX / 8 / v))
            return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: tensor '%s' shape[%d] is not a valid size", path, key, d);
        t.shape[d] = v;
        nel *= v;
    }
    t.n_dims = nd;
    int64_t b = cJSON_GetArraySize(off) == 2 ? json_uint(cJSON_GetArrayItem(off, 0)) : -1;
    int64_t en = cJSON_GetArraySize(off) == 2 ? json_uint(cJSON_GetArrayItem(off, 1)) : -1;
    if (b < 0 || en < b || (uint64_t)en > data_size)
        return pf_error_set(err, PF_ERR_FORMAT,
                            "safetensors %s: tensor '%s' data_offsets outside the %zu data bytes (file truncated?)", path,
                            key, data_size);
    if ((uint64_t)(en - b) != (uint64_t)nel * esize)
        return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: tensor '%s' has %lld bytes but its shape and %s need %llu",
                            path, key, (long long)(en - b), dt->valuestring, (unsigned long long)nel * esize);
    if (pf_st_find(s, key))
        return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: tensor '%s' appears twice (also in %s)", path, key,
                            pf_st_find(s, key)->file);
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        pf_st_tensor *nt = realloc(s->t, (size_t)cap * sizeof *nt);
        if (!nt) return pf_error_set(err, PF_ERR_NOMEM, "safetensors %s: out of memory", path);
        s->t = nt, s->cap = cap;
    }
    t.name = strdup(key);
    if (!t.name) return pf_error_set(err, PF_ERR_NOMEM, "safetensors %s: out of memory", path);
    t.data = data + b;
    t.nbytes = (size_t)(en - b);
    t.file = s->files[s->n_files - 1].path;
    s->t[s->n++] = t;
    return PF_OK;
}

int pf_st_open_file(pf_st_set **set, const char *path, pf_error *err) {
    if (set == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_st_open_file: NULL argument");
    if (*set == NULL && (*set = calloc(1, sizeof **set)) == NULL) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    pf_st_set *s = *set;
    st_file *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
    if (!nf) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    s->files = nf;
    st_file *f = &s->files[s->n_files];
    memset(f, 0, sizeof *f);
    if ((f->path = strdup(path)) == NULL) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    s->n_files++;

    int fd = open(path, O_RDONLY);
    if (fd < 0) return pf_error_set(err, PF_ERR_IO, "safetensors %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pf_error_set(err, PF_ERR_IO, "safetensors %s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: %zu bytes, too short for the header length", path, f->size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return pf_error_set(err, PF_ERR_IO, "safetensors %s: mmap failed: %s", path, strerror(errno));
    }
    const uint8_t *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > f->size - 8)
        return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: header length %llu does not fit the %zu-byte file", path,
                            (unsigned long long)hlen, f->size);
    const char *jend = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &jend, 0);
    if (!cJSON_IsObject(root)) {
        size_t at = jend ? (size_t)(jend - (const char *)p) : 8;
        cJSON_Delete(root);
        return pf_error_set(err, PF_ERR_FORMAT, "safetensors %s: header is not a JSON object (error near byte %zu)", path, at);
    }
    const uint8_t *data = p + 8 + hlen;
    const size_t data_size = f->size - 8 - (size_t)hlen;
    int rc = PF_OK;
    for (const cJSON *e = root->child; e && rc == PF_OK; e = e->next) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) continue;
        rc = add_tensor(s, path, e->string, e, data, data_size, err);
    }
    cJSON_Delete(root);
    return rc;
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    if (buf) buf[n] = 0, *len = n;
    return buf;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int pf_st_open_dir(const char *dir, pf_st_set **out, pf_error *err) {
    if (out == NULL || dir == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_st_open_dir: NULL argument");
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    char **names = NULL;
    int n_names = 0, rc = PF_OK;
    size_t len = 0;
    char *idx = read_text(path, &len);
    if (idx) {
        /* the shards, each once, in the order of first mention */
        cJSON *root = cJSON_ParseWithLength(idx, len);
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
        if (!cJSON_IsObject(wm)) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: no \"weight_map\" object", path);
        for (const cJSON *e = wm ? wm->child : NULL; e && rc == PF_OK; e = e->next) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
                rc = pf_error_set(err, PF_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name in the directory", path,
                                  e->string ? e->string : "?");
                break;
            }
            int seen = 0;
            for (int i = 0; i < n_names && !seen; i++) seen = !strcmp(names[i], e->valuestring);
            if (seen) continue;
            char **nn = realloc(names, (size_t)(n_names + 1) * sizeof *nn);
            if (!nn || !(nn[n_names] = strdup(e->valuestring))) {
                if (nn) names = nn;
                rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn, n_names++;
        }
        cJSON_Delete(root);
        free(idx);
    } else {
        DIR *d = opendir(dir);
        if (!d) return pf_error_set(err, PF_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
        struct dirent *de;
        while ((de = readdir(d)) != NULL && rc == PF_OK) {
            size_t l = strlen(de->d_name);
            if (l <= 12 || strcmp(de->d_name + l - 12, ".safetensors") != 0) continue;
            char **nn = realloc(names, (size_t)(n_names + 1) * sizeof *nn);
            if (!nn || !(nn[n_names] = strdup(de->d_name))) {
                if (nn) names = nn;
                rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn, n_names++;
        }
        closedir(d);
        if (n_names > 1) qsort(names, (size_t)n_names, sizeof *names, cmp_str);
        if (rc == PF_OK && n_names == 0)
            rc = pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no *.safetensors file and no model.safetensors.index.json", dir);
    }
    pf_st_set *s = NULL;
    for (int i = 0; i < n_names && rc == PF_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = pf_st_open_file(&s, path, err);
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    if (rc != PF_OK) {
        pf_st_close(s);
        return rc;
    }
    *out = s;
    return PF_OK;
}
