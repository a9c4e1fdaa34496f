/* GGUF writer: collects key/values (deep-copied) and tensors (by reference), then writes the file
 * in one pass with the reference writer's layout, so read -> re-add -> write is byte-identical:
 * header, tensor infos, zero padding to the alignment (only when there are tensors), then each
 * tensor's bytes in insertion order followed by zero padding to the alignment. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf_internal.h"

typedef struct {
    char *key;
    pf_gguf_value *val; /* one malloc block holding the whole tree */
} wkv;

typedef struct {
    char *name;
    pf_type type;
    uint32_t n_dims;
    int64_t ne[PFG_MAX_DIMS];
    const void *data; /* NULL: supplied by the fill callback at write time */
    size_t nbytes;
} wtensor;

struct pf_gguf_writer {
    uint32_t version;
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

/* Grows *arr (of *cap elements of `elem` bytes) so that it holds at least n + 1. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return PF_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = nc <= SIZE_MAX / elem ? realloc(*arr, nc * elem) : NULL;
    if (p == NULL) return PF_ERR_NOMEM;
    *arr = p;
    *cap = nc;
    return PF_OK;
}

int pf_gguf_writer_create(pf_gguf_writer **out, pf_error *err) {
    if (out == NULL) return pf_error_set(err, PF_ERR_ARG, "gguf writer: NULL out");
    *out = calloc(1, sizeof **out);
    if (*out == NULL) return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: out of memory");
    (*out)->version = 3;
    return PF_OK;
}

void pf_gguf_writer_free(pf_gguf_writer *w) {
    if (w == NULL) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

int pf_gguf_writer_set_version(pf_gguf_writer *w, uint32_t version, pf_error *err) {
    if (w == NULL || (version != 2 && version != 3))
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: version %" PRIu32 " is not 2 or 3", version);
    w->version = version;
    return PF_OK;
}

/* ---- deep copy of values ---- */

#define VALUE_ALIGN _Alignof(pf_gguf_value)

static size_t round_up(size_t n) { return (n + VALUE_ALIGN - 1) / VALUE_ALIGN * VALUE_ALIGN; }

static int add_size(size_t *acc, size_t n) {
    if (n > SIZE_MAX - VALUE_ALIGN || *acc > SIZE_MAX - round_up(n)) return PF_ERR_NOMEM;
    *acc += round_up(n);
    return PF_OK;
}

static bool scalar_in_range(const pf_gguf_value *v) {
    switch (v->type) {
    case PF_GGUF_UINT8: return v->v.u <= UINT8_MAX;
    case PF_GGUF_UINT16: return v->v.u <= UINT16_MAX;
    case PF_GGUF_UINT32: return v->v.u <= UINT32_MAX;
    case PF_GGUF_BOOL: return v->v.u <= 1;
    case PF_GGUF_INT8: return v->v.i >= INT8_MIN && v->v.i <= INT8_MAX;
    case PF_GGUF_INT16: return v->v.i >= INT16_MIN && v->v.i <= INT16_MAX;
    case PF_GGUF_INT32: return v->v.i >= INT32_MIN && v->v.i <= INT32_MAX;
    default: return true;
    }
}

/* Validates `v` and adds the bytes its deep copy needs beyond the root struct to *extra.
 * Refuses what the reader would refuse (deep nesting, unknown types) so written files read back. */
static int measure(const pf_gguf_value *v, int depth, size_t *extra, const char *key, pf_error *err) {
    if ((unsigned)v->type >= PF_GGUF_TYPE_COUNT)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': unknown value type %d", key, (int)v->type);
    if (v->type == PF_GGUF_STRING) {
        if (v->v.str.ptr == NULL && v->v.str.len > 0)
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': NULL string", key);
        if (v->v.str.len >= SIZE_MAX || add_size(extra, (size_t)v->v.str.len + 1))
            return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: key '%s': string too large", key);
        return PF_OK;
    }
    if (v->type != PF_GGUF_ARRAY) {
        if (!scalar_in_range(v))
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': value out of range for %s", key,
                                pf_gguf_type_name(v->type));
        return PF_OK;
    }
    pf_gguf_type et = v->v.arr.type;
    uint64_t n = v->v.arr.n;
    if (depth > PFG_MAX_DEPTH)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': arrays nested deeper than %d", key, PFG_MAX_DEPTH);
    if ((unsigned)et >= PF_GGUF_TYPE_COUNT)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': unknown array element type %d", key, (int)et);
    size_t sz = pf_gguf_type_size(et);
    if (sz) {
        if (n > 0 && v->v.arr.data == NULL)
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': NULL array data", key);
        if (n > SIZE_MAX / sz || add_size(extra, (size_t)n * sz))
            return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: key '%s': array too large", key);
        return PF_OK;
    }
    if (n > 0 && v->v.arr.items == NULL)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': NULL array items", key);
    if (n > SIZE_MAX / sizeof(pf_gguf_value) || add_size(extra, (size_t)n * sizeof(pf_gguf_value)))
        return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: key '%s': array too large", key);
    for (uint64_t k = 0; k < n; k++) {
        if (v->v.arr.items[k].type != et)
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': array item %" PRIu64 " has type %s, not %s",
                                key, k, pf_gguf_type_name(v->v.arr.items[k].type), pf_gguf_type_name(et));
        int rc = measure(&v->v.arr.items[k], depth + 1, extra, key, err);
        if (rc) return rc;
    }
    return PF_OK;
}

/* Copies src into *dst, carving strings, scalar data and item arrays from *bump. */
static void copy_value(pf_gguf_value *dst, const pf_gguf_value *src, char **bump) {
    *dst = *src;
    if (src->type == PF_GGUF_STRING) {
        char *s = *bump;
        *bump += round_up((size_t)src->v.str.len + 1);
        if (src->v.str.len) memcpy(s, src->v.str.ptr, (size_t)src->v.str.len);
        s[src->v.str.len] = '\0';
        dst->v.str.ptr = s;
    } else if (src->type == PF_GGUF_ARRAY) {
        size_t sz = pf_gguf_type_size(src->v.arr.type), n = (size_t)src->v.arr.n;
        if (sz) {
            dst->v.arr.data = n ? memcpy(*bump, src->v.arr.data, n * sz) : NULL;
            dst->v.arr.items = NULL;
            *bump += round_up(n * sz);
            return;
        }
        pf_gguf_value *items = (pf_gguf_value *)(void *)*bump;
        *bump += round_up(n * sizeof *items);
        for (size_t k = 0; k < n; k++) copy_value(&items[k], &src->v.arr.items[k], bump);
        dst->v.arr.items = n ? items : NULL;
        dst->v.arr.data = NULL;
    }
}

static int clone_value(const pf_gguf_value *v, const char *key, pf_gguf_value **out, pf_error *err) {
    size_t extra = 0;
    int rc = measure(v, 1, &extra, key, err);
    if (rc) return rc;
    pf_gguf_value *root = extra <= SIZE_MAX - sizeof *root ? malloc(sizeof *root + extra) : NULL;
    if (root == NULL) return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: key '%s': out of memory", key);
    char *bump = (char *)(root + 1);
    copy_value(root, v, &bump);
    *out = root;
    return PF_OK;
}

/* ---- key/values ---- */

static int64_t find_kv(const pf_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) return (int64_t)i;
    return -1;
}

int pf_gguf_writer_set(pf_gguf_writer *w, const char *key, const pf_gguf_value *v, pf_error *err) {
    if (w == NULL || key == NULL || v == NULL) return pf_error_set(err, PF_ERR_ARG, "gguf writer: set: NULL argument");
    if (strcmp(key, PFG_ALIGNMENT_KEY) == 0 && (v->type != PF_GGUF_UINT32 || !pfg_is_pow2(v->v.u)))
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: " PFG_ALIGNMENT_KEY " must be a power-of-two UINT32");
    pf_gguf_value *copy = NULL;
    int rc = clone_value(v, key, &copy, err);
    if (rc) return rc;
    int64_t i = find_kv(w, key);
    if (i >= 0) { /* replace in place: the key keeps its position */
        free(w->kv[i].val);
        w->kv[i].val = copy;
        return PF_OK;
    }
    char *k = strdup(key);
    if (k == NULL || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        free(copy);
        return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: key '%s': out of memory", key);
    }
    w->kv[w->n_kv++] = (wkv){k, copy};
    return PF_OK;
}

int pf_gguf_writer_set_u32(pf_gguf_writer *w, const char *key, uint32_t v, pf_error *err) {
    pf_gguf_value x = {.type = PF_GGUF_UINT32, .v.u = v};
    return pf_gguf_writer_set(w, key, &x, err);
}

int pf_gguf_writer_set_i32(pf_gguf_writer *w, const char *key, int32_t v, pf_error *err) {
    pf_gguf_value x = {.type = PF_GGUF_INT32, .v.i = v};
    return pf_gguf_writer_set(w, key, &x, err);
}

int pf_gguf_writer_set_f32(pf_gguf_writer *w, const char *key, float v, pf_error *err) {
    pf_gguf_value x = {.type = PF_GGUF_FLOAT32, .v.f = v};
    return pf_gguf_writer_set(w, key, &x, err);
}

int pf_gguf_writer_set_bool(pf_gguf_writer *w, const char *key, bool v, pf_error *err) {
    pf_gguf_value x = {.type = PF_GGUF_BOOL, .v.u = v ? 1 : 0};
    return pf_gguf_writer_set(w, key, &x, err);
}

int pf_gguf_writer_set_str(pf_gguf_writer *w, const char *key, const char *v, pf_error *err) {
    if (v == NULL) return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': NULL string", key ? key : "(null)");
    pf_gguf_value x = {.type = PF_GGUF_STRING, .v.str = {v, strlen(v)}};
    return pf_gguf_writer_set(w, key, &x, err);
}

int pf_gguf_writer_set_arr_str(pf_gguf_writer *w, const char *key, const char *const *v, uint64_t n, pf_error *err) {
    if (n > 0 && v == NULL)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': NULL array", key ? key : "(null)");
    pf_gguf_value *items = n ? malloc(n <= SIZE_MAX / sizeof *items ? (size_t)n * sizeof *items : SIZE_MAX) : NULL;
    if (n && items == NULL) return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: out of memory");
    for (uint64_t k = 0; k < n; k++) {
        if (v[k] == NULL) {
            free(items);
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': string %" PRIu64 " is NULL",
                                key ? key : "(null)", k);
        }
        items[k] = (pf_gguf_value){.type = PF_GGUF_STRING, .v.str = {v[k], strlen(v[k])}};
    }
    pf_gguf_value x = {.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_STRING, .n = n, .items = items}};
    int rc = pf_gguf_writer_set(w, key, &x, err);
    free(items);
    return rc;
}

int pf_gguf_writer_set_arr(pf_gguf_writer *w, const char *key, pf_gguf_type elem_type, const void *data, uint64_t n,
                           pf_error *err) {
    if (pf_gguf_type_size(elem_type) == 0)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: key '%s': set_arr needs a scalar element type, got %s",
                            key ? key : "(null)", pf_gguf_type_name(elem_type));
    pf_gguf_value x = {.type = PF_GGUF_ARRAY, .v.arr = {.type = elem_type, .n = n, .data = data}};
    return pf_gguf_writer_set(w, key, &x, err);
}

int pf_gguf_writer_remove(pf_gguf_writer *w, const char *key) {
    if (w == NULL || key == NULL) return PF_ERR_ARG;
    int64_t i = find_kv(w, key);
    if (i < 0) return PF_ERR_NOT_FOUND;
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - (size_t)i - 1) * sizeof *w->kv);
    w->n_kv--;
    return PF_OK;
}

int pf_gguf_writer_copy_kvs(pf_gguf_writer *w, const pf_gguf *src, pf_error *err) {
    if (w == NULL || src == NULL) return pf_error_set(err, PF_ERR_ARG, "gguf writer: copy_kvs: NULL argument");
    for (int64_t i = 0; i < pf_gguf_n_kv(src); i++) {
        int rc = pf_gguf_writer_set(w, pf_gguf_key(src, i), pf_gguf_value_at(src, i), err);
        if (rc) return rc;
    }
    return PF_OK;
}

/* ---- tensors ---- */

int pf_gguf_writer_add_tensor(pf_gguf_writer *w, const char *name, pf_type type, uint32_t n_dims, const int64_t *ne,
                              const void *data, pf_error *err) {
    if (w == NULL || name == NULL || ne == NULL)
        return pf_error_set(err, PF_ERR_ARG, "gguf writer: add_tensor: NULL argument");
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: tensor '%s' added twice", name);
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data};
    if (n_dims >= 1 && n_dims <= PFG_MAX_DIMS) memcpy(t.ne, ne, n_dims * sizeof *ne);
    char why[160];
    int rc = pfg_tensor_nbytes((uint32_t)type, n_dims, t.ne, &t.nbytes, why, sizeof why);
    if (rc) return pf_error_set(err, PF_ERR_ARG, "gguf writer: tensor '%s': %s", name, why);
    if ((t.name = strdup(name)) == NULL || grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        free(t.name);
        return pf_error_set(err, PF_ERR_NOMEM, "gguf writer: tensor '%s': out of memory", name);
    }
    w->t[w->n_t++] = t;
    return PF_OK;
}

/* ---- serialization of the header into memory ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > b->cap - b->n) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->n < n && nc <= SIZE_MAX / 2) nc *= 2;
        uint8_t *p = nc - b->n >= n ? realloc(b->p, nc) : NULL;
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(buf *b, uint64_t v, size_t n) {
    uint8_t bytes[8];
    for (size_t i = 0; i < n; i++) bytes[i] = (uint8_t)(v >> (8 * i));
    put(b, bytes, n);
}

static void put_str(buf *b, const char *s, uint64_t len) {
    put_le(b, len, 8);
    put(b, s, (size_t)len);
}

/* The payload of a value of type v->type (the caller writes the type where the format has one). */
static void put_payload(buf *b, const pf_gguf_value *v) {
    size_t sz = pf_gguf_type_size(v->type);
    switch (v->type) {
    case PF_GGUF_STRING: put_str(b, v->v.str.ptr, v->v.str.len); return;
    case PF_GGUF_ARRAY: {
        put_le(b, (uint64_t)v->v.arr.type, 4);
        put_le(b, v->v.arr.n, 8);
        size_t esz = pf_gguf_type_size(v->v.arr.type);
        if (esz)
            put(b, v->v.arr.data, (size_t)v->v.arr.n * esz); /* already packed little-endian */
        else
            for (uint64_t k = 0; k < v->v.arr.n; k++) put_payload(b, &v->v.arr.items[k]);
        return;
    }
    case PF_GGUF_FLOAT32: {
        float f = (float)v->v.f;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_le(b, bits, 4);
        return;
    }
    case PF_GGUF_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &v->v.f, 8);
        put_le(b, bits, 8);
        return;
    }
    case PF_GGUF_INT8:
    case PF_GGUF_INT16:
    case PF_GGUF_INT32:
    case PF_GGUF_INT64:
        put_le(b, (uint64_t)v->v.i, sz); /* two's complement truncation */
        return;
    default: put_le(b, v->v.u, sz); return;
    }
}

static void put_zeros(buf *b, size_t n) {
    static const uint8_t zeros[64];
    for (; n > sizeof zeros; n -= sizeof zeros) put(b, zeros, sizeof zeros);
    put(b, zeros, n);
}

static size_t writer_alignment(const pf_gguf_writer *w) {
    int64_t i = find_kv(w, PFG_ALIGNMENT_KEY);
    return i >= 0 ? (size_t)w->kv[i].val->v.u : PFG_DEFAULT_ALIGNMENT; /* validated by set */
}

static int build_header(const pf_gguf_writer *w, size_t align, buf *b, pf_error *err) {
    put(b, PFG_MAGIC, 4);
    put_le(b, w->version, 4);
    put_le(b, (uint64_t)w->n_t, 8);
    put_le(b, (uint64_t)w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(b, w->kv[i].key, strlen(w->kv[i].key));
        put_le(b, (uint64_t)w->kv[i].val->type, 4);
        put_payload(b, w->kv[i].val);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(b, t->name, strlen(t->name));
        put_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) put_le(b, (uint64_t)t->ne[d], 8);
        put_le(b, (uint64_t)t->type, 4);
        put_le(b, offset, 8);
        if (t->nbytes > SIZE_MAX - align || offset > UINT64_MAX - pfg_pad(t->nbytes, align))
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: tensor data exceeds 2^64 bytes");
        offset += pfg_pad(t->nbytes, align);
    }
    if (w->n_t > 0) put_zeros(b, pfg_pad(b->n, align) - b->n); /* vocab-only files end unpadded */
    return b->oom ? pf_error_set(err, PF_ERR_NOMEM, "gguf writer: out of memory for the header") : PF_OK;
}

/* ---- the file ---- */

static int write_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[4096];
    for (size_t k; n > 0; n -= k) {
        k = n < sizeof zeros ? n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return -1;
    }
    return 0;
}

/* Writes every tensor's bytes (from its pointer or the fill callback) plus padding. */
static int write_tensors(const pf_gguf_writer *w, FILE *f, const char *tmp, size_t align, pf_gguf_fill_fn fill,
                         void *fill_ctx, pf_error *err) {
    void *scratch = NULL;
    size_t scratch_cap = 0;
    int rc = PF_OK;
    for (size_t i = 0; i < w->n_t && rc == PF_OK; i++) {
        const wtensor *t = &w->t[i];
        const void *src = t->data;
        if (src == NULL && t->nbytes > 0) {
            if (t->nbytes > scratch_cap) {
                free(scratch);
                scratch_cap = 0;
                if ((scratch = malloc(t->nbytes)) == NULL) {
                    rc = pf_error_set(err, PF_ERR_NOMEM, "gguf writer: tensor '%s': out of memory (%zu bytes)", t->name,
                                      t->nbytes);
                    break;
                }
                scratch_cap = t->nbytes;
            }
            memset(scratch, 0, t->nbytes); /* never write stale bytes if the callback skips some */
            pf_error_clear(err);
            if ((rc = fill(fill_ctx, (int64_t)i, scratch, t->nbytes, err)) != PF_OK) {
                if (err && err->code == PF_OK)
                    pf_error_set(err, rc, "gguf writer: fill callback failed for tensor '%s'", t->name);
                break;
            }
            src = scratch;
        }
        if ((t->nbytes && fwrite(src, 1, t->nbytes, f) != t->nbytes) ||
            write_zeros(f, pfg_pad(t->nbytes, align) - t->nbytes))
            rc = pf_error_set(err, PF_ERR_IO, "gguf writer: %s: write failed", tmp);
    }
    free(scratch);
    return rc;
}

int pf_gguf_writer_write(pf_gguf_writer *w, const char *path, pf_gguf_fill_fn fill, void *fill_ctx, pf_error *err) {
    if (w == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "gguf writer: write: NULL argument");
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].data == NULL && w->t[i].nbytes > 0 && fill == NULL)
            return pf_error_set(err, PF_ERR_ARG, "gguf writer: tensor '%s' has no data and no fill callback",
                                w->t[i].name);
    size_t align = writer_alignment(w);
    buf b = {0};
    int rc = build_header(w, align, &b, err);
    size_t plen = strlen(path);
    char *tmp = rc ? NULL : malloc(plen + 5);
    if (rc == PF_OK && tmp == NULL) rc = pf_error_set(err, PF_ERR_NOMEM, "gguf writer: out of memory");
    FILE *f = NULL;
    bool created = false;
    if (rc == PF_OK) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", 5);
        if ((f = fopen(tmp, "wb")) == NULL)
            rc = pf_error_set(err, PF_ERR_IO, "gguf writer: cannot create %s: %s", tmp, strerror(errno));
        created = f != NULL;
    }
    if (rc == PF_OK && fwrite(b.p, 1, b.n, f) != b.n)
        rc = pf_error_set(err, PF_ERR_IO, "gguf writer: %s: write failed", tmp);
    if (rc == PF_OK) rc = write_tensors(w, f, tmp, align, fill, fill_ctx, err);
    /* Durable before visible: flush and fsync the temporary, then atomically rename it. */
    if (rc == PF_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = pf_error_set(err, PF_ERR_IO, "gguf writer: %s: flush/fsync failed", tmp);
    if (f && fclose(f) != 0 && rc == PF_OK) rc = pf_error_set(err, PF_ERR_IO, "gguf writer: %s: close failed", tmp);
    if (rc == PF_OK && rename(tmp, path) != 0)
        rc = pf_error_set(err, PF_ERR_IO, "gguf writer: cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != PF_OK && created) unlink(tmp);
    if (rc == PF_OK) pf_error_clear(err);
    free(tmp);
    free(b.p);
    return rc;
}
