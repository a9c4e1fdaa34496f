/* safetensors, read and written by hand (format: huggingface/safetensors README):
 *   8 bytes   N, the header length, u64 little-endian
 *   N bytes   JSON object: "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
 *             per tensor, optional "__metadata__": {string: string}; padded with spaces
 *   rest      data area; offsets are relative to its start, row-major little-endian
 * Reading trusts nothing: the header length must fit the file, the JSON must parse, every
 * tensor needs a known dtype, 1-4 non-negative dims, offsets inside the data area whose length
 * matches the shape, and no two tensors may overlap. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lora/lora_internal.h"

#define ST_MAX_HEADER (100u << 20) /* the reference reader's limit */

static const char *const dtype_names[3] = {"F32", "F16", "BF16"};
static const size_t dtype_size[3] = {4, 2, 2};

void st_free(st_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t), free(f->buf);
    memset(f, 0, sizeof *f);
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static bool get_u53(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    const double d = v->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_begin(const void *x, const void *y) {
    const st_tensor *a = x, *b = y;
    return a->data < b->data ? -1 : a->data > b->data;
}

static int parse_entry(const char *name, const cJSON *e, const uint8_t *data, size_t data_size, st_tensor *t,
                       pf_error *err) {
    if (!cJSON_IsObject(e)) return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: not an object", name, e->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: dtype missing or not a string", name, e->string);
    int d = -1;
    for (int k = 0; k < 3; k++)
        if (!strcmp(dt->valuestring, dtype_names[k])) d = k;
    if (d < 0)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s (F32, F16 or BF16 expected)", name, e->string,
                            dt->valuestring);
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) < 1 || cJSON_GetArraySize(sh) > 4)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: shape must be an array of 1 to 4 dims", name, e->string);
    t->dtype = (st_dtype)d;
    t->n_dims = cJSON_GetArraySize(sh);
    uint64_t count = 1;
    int k = 0;
    for (const cJSON *v = sh->child; v; v = v->next, k++) {
        uint64_t x;
        if (!get_u53(v, &x)) return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", name, e->string, k);
        t->shape[k] = (int64_t)x;
        if (x && count > (UINT64_MAX / 4) / x) return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: shape too large", name, e->string);
        count *= x;
    }
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !get_u53(off->child, &b) || !get_u53(off->child->next, &en))
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: data_offsets must be [begin, end]", name, e->string);
    if (b > en || en > data_size)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] outside the data area (%zu bytes)",
                            name, e->string, (unsigned long long)b, (unsigned long long)en, data_size);
    if (en - b != count * dtype_size[d])
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: %llu bytes for %llu elements of %s", name, e->string,
                            (unsigned long long)(en - b), (unsigned long long)count, dtype_names[d]);
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    if (!(t->name = strdup(e->string))) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
    return PF_OK;
}

int st_parse(const char *name, uint8_t *buf, size_t size, st_file *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    out->buf = buf, out->size = size;
    if (size < 8) return st_free(out), pf_error_set(err, PF_ERR_FORMAT, "%s: %zu bytes: too short for a safetensors file", name, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    if (n < 2 || n > ST_MAX_HEADER || n > size - 8)
        return st_free(out), pf_error_set(err, PF_ERR_FORMAT, "%s: header length %llu does not fit the file (%zu bytes)", name,
                                           (unsigned long long)n, size);
    if (buf[8] != '{') return st_free(out), pf_error_set(err, PF_ERR_FORMAT, "%s: header does not start with '{'", name);
    const char *end = NULL;
    cJSON *h = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)n, &end, 0);
    if (!h || !cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return st_free(out), pf_error_set(err, PF_ERR_FORMAT, "%s: header is not a JSON object (near byte %ld)", name,
                                           end ? (long)(end - (const char *)buf) : 8L);
    }
    for (const char *r = end; r < (const char *)buf + 8 + n; r++)
        if (*r != ' ' && *r != '\0') {
            cJSON_Delete(h);
            return st_free(out), pf_error_set(err, PF_ERR_FORMAT, "%s: data after the header JSON", name);
        }
    const uint8_t *data = buf + 8 + n;
    const size_t data_size = size - 8 - (size_t)n;
    int count = cJSON_GetArraySize(h), rc = PF_OK;
    out->t = calloc((size_t)count + 1, sizeof *out->t);
    if (!out->t) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
    for (const cJSON *e = h->child; e && rc == PF_OK; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: __metadata__ is not an object", name);
            continue;
        }
        for (int64_t i = 0; i < out->n && rc == PF_OK; i++)
            if (!strcmp(out->t[i].name, e->string)) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: duplicate key", name, e->string);
        if (rc == PF_OK) rc = parse_entry(name, e, data, data_size, &out->t[out->n], err);
        if (rc == PF_OK) out->n++;
    }
    cJSON_Delete(h);
    if (rc == PF_OK && out->n > 1) { /* no overlap: sort a copy by begin */
        st_tensor *s = malloc((size_t)out->n * sizeof *s);
        if (!s) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
        else {
            memcpy(s, out->t, (size_t)out->n * sizeof *s);
            qsort(s, (size_t)out->n, sizeof *s, cmp_begin);
            for (int64_t i = 1; i < out->n && rc == PF_OK; i++)
                if (s[i].data < s[i - 1].data + s[i - 1].nbytes)
                    rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: data overlaps tensor %s", name, s[i].name, s[i - 1].name);
            free(s);
        }
    }
    if (rc != PF_OK) st_free(out);
    return rc;
}

int st_read(const char *path, st_file *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    uint8_t *buf = NULL;
    int rc = PF_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) rc = pf_error_set(err, PF_ERR_IO, "%s: not a regular file", path);
    else if (!(buf = malloc((size_t)st.st_size + 1))) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    else if (st.st_size && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = pf_error_set(err, PF_ERR_IO, "%s: read failed", path);
    fclose(f);
    if (rc != PF_OK) return free(buf), rc;
    return st_parse(path, buf, (size_t)st.st_size, out, err);
}

void st_to_f32(const st_tensor *t, float *dst) {
    const size_t n = t->nbytes / dtype_size[t->dtype];
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = t->data + i * dtype_size[t->dtype];
        if (t->dtype == ST_F32) memcpy(&dst[i], p, 4);
        else {
            const uint16_t h = (uint16_t)(p[0] | p[1] << 8);
            dst[i] = t->dtype == ST_F16 ? pf_fp16_to_fp32(h) : pf_bf16_to_fp32(h);
        }
    }
}

/* ---- writing ------------------------------------------------------------------------------- */

static int cmp_out(const void *x, const void *y) { return strcmp(((const st_out *)x)->name, ((const st_out *)y)->name); }

/* Appends s to the growing header buffer. */
typedef struct hbuf { char *p; size_t n, cap; bool oom; } hbuf;
static void hput(hbuf *h, const char *s, size_t n) {
    if (h->oom) return;
    if (h->n + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        while (cap < h->n + n + 1) cap *= 2;
        char *p = realloc(h->p, cap);
        if (!p) { h->oom = true; return; }
        h->p = p, h->cap = cap;
    }
    memcpy(h->p + h->n, s, n);
    h->n += n;
}
static void hputs(hbuf *h, const char *s) { hput(h, s, strlen(s)); }
static void hstr(hbuf *h, const char *s) { /* JSON string literal */
    hputs(h, "\"");
    for (; *s; s++) {
        char e[8];
        if (*s == '"' || *s == '\\') e[0] = '\\', e[1] = *s, e[2] = 0;
        else if ((unsigned char)*s < 0x20) snprintf(e, sizeof e, "\\u%04x", (unsigned char)*s);
        else e[0] = *s, e[1] = 0;
        hputs(h, e);
    }
    hputs(h, "\"");
}

int st_write_f32(const char *path, st_out *t, int64_t n, pf_error *err) {
    qsort(t, (size_t)n, sizeof *t, cmp_out);
    hbuf h = {0};
    char num[64];
    uint64_t off = 0;
    hputs(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int64_t i = 0; i < n; i++) {
        uint64_t count = 1;
        hputs(&h, ",");
        hstr(&h, t[i].name);
        hputs(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t[i].n_dims; k++) {
            snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
            hputs(&h, num);
            count *= (uint64_t)t[i].shape[k];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + count * 4));
        hputs(&h, num);
        off += count * 4;
    }
    hputs(&h, "}");
    while (h.n % 8) hputs(&h, " "); /* the data area starts 8-byte aligned */
    if (h.oom) return free(h.p), pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return free(h.p), pf_error_set(err, PF_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return free(h.p), pf_error_set(err, PF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    bool ok = fwrite(len, 1, 8, f) == 8 && fwrite(h.p, 1, h.n, f) == h.n;
    for (int64_t i = 0; ok && i < n; i++) {
        size_t count = 1;
        for (int k = 0; k < t[i].n_dims; k++) count *= (size_t)t[i].shape[k];
        ok = fwrite(t[i].data, sizeof(float), count, f) == count; /* x86-64: already little-endian */
    }
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    free(h.p);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return pf_error_set(err, PF_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return PF_OK;
}
