/* GGUF reader: maps the file read-only and validates every byte of the header before exposing it.
 * Input is treated as hostile: every count is checked against the bytes that remain before
 * anything is allocated, every error names the byte offset at fault, and tensor data is never
 * copied (pf_tensor_info.data points into the mapping). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf_internal.h"

/* ---- bump allocator for strings and value arrays: one free() per block at close ---- */

typedef union arena_blk {
    struct {
        union arena_blk *next;
        size_t used, cap;
    } h;
    max_align_t align; /* keeps the bytes after the header maximally aligned */
} arena_blk;

static void *arena_alloc(arena_blk **head, size_t n) {
    const size_t a = _Alignof(max_align_t);
    n = (n + a - 1) / a * a;
    arena_blk *b = *head;
    if (b == NULL || b->h.cap - b->h.used < n) {
        size_t cap = n > ((size_t)1 << 16) ? n : ((size_t)1 << 16);
        if (cap > SIZE_MAX - sizeof *b || (b = malloc(sizeof *b + cap)) == NULL) return NULL;
        b->h.next = *head;
        b->h.used = 0;
        b->h.cap = cap;
        *head = b;
    }
    void *p = (char *)(b + 1) + b->h.used;
    b->h.used += n;
    return p;
}

static void arena_free(arena_blk *b) {
    while (b) {
        arena_blk *next = b->h.next;
        free(b);
        b = next;
    }
}

/* ---- open-addressing name index: duplicate detection at open and O(1) lookups later ---- */

typedef struct {
    const char *name;
    int64_t idx;
} name_slot;
typedef struct {
    name_slot *slot;
    size_t mask;
} name_index;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int index_init(name_index *x, int64_t n) {
    size_t cap = 8;
    while (cap < (size_t)n * 2) cap *= 2; /* n is bounded by the file size, so this ends */
    x->slot = calloc(cap, sizeof *x->slot);
    x->mask = cap - 1;
    return x->slot ? PF_OK : PF_ERR_NOMEM;
}

/* Returns the index already stored under `name`, or inserts (name, idx) and returns -1. */
static int64_t index_insert(name_index *x, const char *name, int64_t idx) {
    for (size_t i = fnv1a(name) & x->mask;; i = (i + 1) & x->mask) {
        if (x->slot[i].name == NULL) {
            x->slot[i].name = name;
            x->slot[i].idx = idx;
            return -1;
        }
        if (strcmp(x->slot[i].name, name) == 0) return x->slot[i].idx;
    }
}

static int64_t index_find(const name_index *x, const char *name) {
    if (x->slot == NULL || name == NULL) return -1;
    for (size_t i = fnv1a(name) & x->mask; x->slot[i].name; i = (i + 1) & x->mask)
        if (strcmp(x->slot[i].name, name) == 0) return x->slot[i].idx;
    return -1;
}

/* ---- the handle ---- */

typedef struct {
    const char *key;
    pf_gguf_value v;
    size_t pos; /* file offset, for messages */
} gguf_kv;

struct pf_gguf {
    const uint8_t *base;
    size_t size;
    bool mapped; /* munmap at close (open) or caller-owned (open_memory) */
    char *path;
    uint32_t version;
    size_t alignment, data_offset;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    pf_tensor_info *tensors;
    name_index key_index, tensor_index;
    arena_blk *arena;
};

/* ---- cursor over the bytes, with the context used in error messages ---- */

typedef struct {
    pf_gguf *g;
    size_t pos;
    char ctx[128]; /* "key 3 'general.name'", "tensor 7 'output.weight'", "" in the preamble */
    pf_error *err;
} reader;

#if defined(__GNUC__)
#define PFG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PFG_PRINTF(a, b)
#endif

/* Every reader error: "gguf PATH: offset N: CONTEXT: what went wrong". */
static int fail(reader *r, int code, size_t at, const char *fmt, ...) PFG_PRINTF(4, 5);
static int fail(reader *r, int code, size_t at, const char *fmt, ...) {
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pf_error_set(r->err, code, "gguf %s: offset %zu: %s%s%s", r->g->path, at, r->ctx, r->ctx[0] ? ": " : "",
                        what);
}

static size_t remaining(const reader *r) { return r->g->size - r->pos; }

static int need(reader *r, size_t n, const char *what) {
    if (remaining(r) < n)
        return fail(r, PF_ERR_FORMAT, r->pos, "truncated: %s needs %zu bytes, %zu remain", what, n, remaining(r));
    return PF_OK;
}

/* Little-endian loads assembled byte by byte: no unaligned access, no host-endian assumption. */
static uint64_t load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_uint(reader *r, size_t n, uint64_t *out, const char *what) {
    int rc = need(r, n, what);
    if (rc) return rc;
    *out = load_le(r->g->base + r->pos, n);
    r->pos += n;
    return PF_OK;
}

static int read_u32(reader *r, uint32_t *out, const char *what) {
    uint64_t v = 0;
    int rc = read_uint(r, 4, &v, what);
    *out = (uint32_t)v;
    return rc;
}

/* u64 length + bytes, copied into the arena with a NUL terminator. `is_name` forbids embedded
 * NULs so that keys and tensor names can be compared as C strings. */
static int read_string(reader *r, const char **out, uint64_t *len_out, const char *what, bool is_name) {
    size_t at = r->pos;
    uint64_t len = 0;
    int rc = read_uint(r, 8, &len, what);
    if (rc) return rc;
    if (len > remaining(r))
        return fail(r, PF_ERR_FORMAT, at, "%s length %" PRIu64 " exceeds remaining %zu bytes", what, len, remaining(r));
    const uint8_t *src = r->g->base + r->pos;
    if (is_name && memchr(src, 0, (size_t)len)) return fail(r, PF_ERR_FORMAT, at, "%s contains a NUL byte", what);
    char *s = arena_alloc(&r->g->arena, (size_t)len + 1);
    if (s == NULL) return fail(r, PF_ERR_NOMEM, at, "out of memory for a %" PRIu64 "-byte %s", len, what);
    if (len) memcpy(s, src, (size_t)len);
    s[len] = '\0';
    r->pos += (size_t)len;
    *out = s;
    if (len_out) *len_out = len;
    return PF_OK;
}

/* ---- values ---- */

static int parse_value(reader *r, pf_gguf_type t, pf_gguf_value *out, int depth);

static int parse_scalar(reader *r, pf_gguf_type t, pf_gguf_value *out) {
    size_t at = r->pos, sz = pf_gguf_type_size(t);
    uint64_t raw = 0;
    int rc = read_uint(r, sz, &raw, pf_gguf_type_name(t));
    if (rc) return rc;
    out->type = t;
    switch (t) {
    case PF_GGUF_INT8: out->v.i = (int8_t)raw; break;
    case PF_GGUF_INT16: out->v.i = (int16_t)raw; break;
    case PF_GGUF_INT32: out->v.i = (int32_t)raw; break;
    case PF_GGUF_INT64: out->v.i = (int64_t)raw; break;
    case PF_GGUF_FLOAT32: {
        uint32_t b = (uint32_t)raw;
        float f;
        memcpy(&f, &b, 4);
        out->v.f = f;
        break;
    }
    case PF_GGUF_FLOAT64: memcpy(&out->v.f, &raw, 8); break;
    case PF_GGUF_BOOL:
        if (raw > 1) return fail(r, PF_ERR_FORMAT, at, "BOOL value %" PRIu64 " is neither 0 nor 1", raw);
        out->v.u = raw;
        break;
    default: out->v.u = raw; break;
    }
    return PF_OK;
}

static int parse_array(reader *r, pf_gguf_value *out, int depth) {
    size_t at = r->pos;
    if (depth > PFG_MAX_DEPTH) return fail(r, PF_ERR_FORMAT, at, "arrays nested deeper than %d levels", PFG_MAX_DEPTH);
    uint32_t et = 0;
    uint64_t n = 0;
    int rc = read_u32(r, &et, "array element type");
    if (rc) return rc;
    if (et >= PF_GGUF_TYPE_COUNT) return fail(r, PF_ERR_UNSUPPORTED, at, "unknown array element type %" PRIu32, et);
    if ((rc = read_uint(r, 8, &n, "array length"))) return rc;
    size_t min = pfg_min_elem_bytes((pf_gguf_type)et);
    if (n > remaining(r) / min)
        return fail(r, PF_ERR_FORMAT, at + 4,
                    "array length %" PRIu64 " of %s needs at least %zu bytes each, %zu remain", n,
                    pf_gguf_type_name((pf_gguf_type)et), min, remaining(r));
    out->type = PF_GGUF_ARRAY;
    out->v.arr.type = (pf_gguf_type)et;
    out->v.arr.n = n;
    out->v.arr.data = NULL;
    out->v.arr.items = NULL;
    if (et != PF_GGUF_STRING && et != PF_GGUF_ARRAY) {
        /* Scalars stay in the mapping, packed little-endian, possibly unaligned. */
        const uint8_t *p = r->g->base + r->pos;
        if (et == PF_GGUF_BOOL)
            for (uint64_t k = 0; k < n; k++)
                if (p[k] > 1)
                    return fail(r, PF_ERR_FORMAT, r->pos + (size_t)k, "BOOL array element %" PRIu64 " is %u", k, p[k]);
        out->v.arr.data = p;
        r->pos += (size_t)n * min;
        return PF_OK;
    }
    /* n <= remaining / 8, so this allocation is bounded by a small multiple of the file size. */
    pf_gguf_value *items = n ? arena_alloc(&r->g->arena, (size_t)n * sizeof *items) : NULL;
    if (n && items == NULL) return fail(r, PF_ERR_NOMEM, at, "out of memory for %" PRIu64 " array items", n);
    for (uint64_t k = 0; k < n; k++)
        if ((rc = parse_value(r, (pf_gguf_type)et, &items[k], depth + 1))) return rc;
    out->v.arr.items = items;
    return PF_OK;
}

static int parse_value(reader *r, pf_gguf_type t, pf_gguf_value *out, int depth) {
    if (t == PF_GGUF_ARRAY) return parse_array(r, out, depth);
    if (t == PF_GGUF_STRING) {
        out->type = t;
        return read_string(r, &out->v.str.ptr, &out->v.str.len, "string", false);
    }
    return parse_scalar(r, t, out);
}

static int parse_kvs(reader *r) {
    pf_gguf *g = r->g;
    int rc = index_init(&g->key_index, g->n_kv);
    if (rc == PF_OK && g->n_kv > 0 && (g->kv = calloc((size_t)g->n_kv, sizeof *g->kv)) == NULL) rc = PF_ERR_NOMEM;
    if (rc) return fail(r, rc, r->pos, "out of memory for %" PRId64 " keys", g->n_kv);
    for (int64_t i = 0; i < g->n_kv; i++) {
        size_t at = g->kv[i].pos = r->pos;
        snprintf(r->ctx, sizeof r->ctx, "key %" PRId64, i);
        if ((rc = read_string(r, &g->kv[i].key, NULL, "key", true))) return rc;
        snprintf(r->ctx, sizeof r->ctx, "key %" PRId64 " '%.64s'", i, g->kv[i].key);
        int64_t dup = index_insert(&g->key_index, g->kv[i].key, i);
        if (dup >= 0) return fail(r, PF_ERR_FORMAT, at, "duplicate key (first defined as key %" PRId64 ")", dup);
        size_t type_at = r->pos;
        uint32_t t = 0;
        if ((rc = read_u32(r, &t, "value type"))) return rc;
        if (t >= PF_GGUF_TYPE_COUNT) return fail(r, PF_ERR_UNSUPPORTED, type_at, "unknown value type %" PRIu32, t);
        if ((rc = parse_value(r, (pf_gguf_type)t, &g->kv[i].v, 1))) return rc;
    }
    r->ctx[0] = '\0';
    return PF_OK;
}

/* general.alignment, if present, must be a nonzero power-of-two UINT32. */
static int resolve_alignment(reader *r) {
    pf_gguf *g = r->g;
    g->alignment = PFG_DEFAULT_ALIGNMENT;
    int64_t i = index_find(&g->key_index, PFG_ALIGNMENT_KEY);
    if (i < 0) return PF_OK;
    const pf_gguf_value *v = &g->kv[i].v;
    snprintf(r->ctx, sizeof r->ctx, "key %" PRId64 " '" PFG_ALIGNMENT_KEY "'", i);
    if (v->type != PF_GGUF_UINT32)
        return fail(r, PF_ERR_FORMAT, g->kv[i].pos, "has type %s, expected UINT32", pf_gguf_type_name(v->type));
    if (!pfg_is_pow2(v->v.u))
        return fail(r, PF_ERR_FORMAT, g->kv[i].pos, "alignment %" PRIu64 " is not a power of two", v->v.u);
    g->alignment = (size_t)v->v.u;
    r->ctx[0] = '\0';
    return PF_OK;
}

/* ---- tensors ---- */

static int parse_tensor_info(reader *r, int64_t i, size_t *offset_pos) {
    pf_gguf *g = r->g;
    pf_tensor_info *t = &g->tensors[i];
    size_t at = r->pos;
    int rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor %" PRId64, i);
    if ((rc = read_string(r, &t->name, NULL, "tensor name", true))) return rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor %" PRId64 " '%.64s'", i, t->name);
    int64_t dup = index_insert(&g->tensor_index, t->name, i);
    if (dup >= 0) return fail(r, PF_ERR_FORMAT, at, "duplicate tensor name (first defined as tensor %" PRId64 ")", dup);
    size_t dims_at = r->pos;
    if ((rc = read_u32(r, &t->n_dims, "n_dims"))) return rc;
    if (t->n_dims < 1 || t->n_dims > PFG_MAX_DIMS)
        return fail(r, PF_ERR_FORMAT, dims_at, "n_dims %" PRIu32 " is not in 1..%d", t->n_dims, PFG_MAX_DIMS);
    for (int d = 0; d < PFG_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne = 0;
        if ((rc = read_uint(r, 8, &ne, "ne"))) return rc;
        t->ne[d] = (int64_t)ne;
    }
    size_t type_at = r->pos;
    uint32_t type = 0;
    if ((rc = read_u32(r, &type, "tensor type"))) return rc;
    *offset_pos = r->pos;
    if ((rc = read_uint(r, 8, &t->offset, "tensor offset"))) return rc;
    char why[160];
    if ((rc = pfg_tensor_nbytes(type, t->n_dims, t->ne, &t->nbytes, why, sizeof why)))
        return fail(r, rc, rc == PF_ERR_UNSUPPORTED ? type_at : dims_at + 4, "%s", why); /* type or ne[] */
    t->type = (pf_type)type;
    return PF_OK;
}

typedef struct {
    uint64_t begin, end;
    int64_t idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Offsets: aligned, inside the file, and no two tensors sharing a byte. */
static int place_tensors(reader *r, const size_t *offset_pos) {
    pf_gguf *g = r->g;
    size_t avail = g->size - g->data_offset; /* caller ensured data_offset <= size */
    for (int64_t i = 0; i < g->n_tensors; i++) {
        pf_tensor_info *t = &g->tensors[i];
        snprintf(r->ctx, sizeof r->ctx, "tensor %" PRId64 " '%.64s'", i, t->name);
        if (t->offset % g->alignment)
            return fail(r, PF_ERR_FORMAT, offset_pos[i],
                        "data offset %" PRIu64 " is not a multiple of the alignment %zu", t->offset, g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return fail(r, PF_ERR_FORMAT, offset_pos[i],
                        "data [%" PRIu64 ", +%zu) runs past the end of the file (data section holds %zu bytes)",
                        t->offset, t->nbytes, avail);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return PF_OK;
    span *s = malloc((size_t)g->n_tensors * sizeof *s);
    if (s == NULL) return fail(r, PF_ERR_NOMEM, r->pos, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++)
        s[i] = (span){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes, i};
    qsort(s, (size_t)g->n_tensors, sizeof *s, span_cmp);
    int rc = PF_OK;
    for (int64_t k = 1; k < g->n_tensors && rc == PF_OK; k++) {
        const span *a = &s[k - 1], *b = &s[k];
        if (b->begin < a->end && b->end > b->begin) {
            snprintf(r->ctx, sizeof r->ctx, "tensor %" PRId64 " '%.64s'", b->idx, g->tensors[b->idx].name);
            rc = fail(r, PF_ERR_FORMAT, offset_pos[b->idx], "data overlaps tensor %" PRId64 " '%.64s'", a->idx,
                      g->tensors[a->idx].name);
        }
        if (a->end > b->end) s[k].end = a->end; /* carry the furthest end seen so far */
    }
    free(s);
    return rc;
}

static int parse_tensors(reader *r) {
    pf_gguf *g = r->g;
    if (g->n_tensors > 0 && (uint64_t)g->n_tensors > remaining(r) / PFG_MIN_TENSOR_BYTES)
        return fail(r, PF_ERR_FORMAT, r->pos, "n_tensors %" PRId64 " needs at least %u bytes each, %zu remain",
                    g->n_tensors, PFG_MIN_TENSOR_BYTES, remaining(r));
    size_t *offset_pos = malloc(((size_t)g->n_tensors + 1) * sizeof *offset_pos);
    int rc = index_init(&g->tensor_index, g->n_tensors);
    if (rc == PF_OK &&
        (offset_pos == NULL || (g->n_tensors && !(g->tensors = calloc((size_t)g->n_tensors, sizeof *g->tensors)))))
        rc = PF_ERR_NOMEM;
    if (rc) rc = fail(r, rc, r->pos, "out of memory for %" PRId64 " tensors", g->n_tensors);
    for (int64_t i = 0; rc == PF_OK && i < g->n_tensors; i++) rc = parse_tensor_info(r, i, &offset_pos[i]);
    if (rc == PF_OK) {
        r->ctx[0] = '\0';
        g->data_offset = pfg_pad(r->pos, g->alignment);
        /* A file without tensors may end right after its header (the padding is optional). */
        if (g->n_tensors > 0 && g->data_offset > g->size)
            rc = fail(r, PF_ERR_FORMAT, r->pos,
                      "header padding to alignment %zu runs past the end of the file (%zu bytes)", g->alignment,
                      g->size);
        else if (g->n_tensors > 0)
            rc = place_tensors(r, offset_pos);
    }
    free(offset_pos);
    return rc;
}

/* ---- preamble and entry points ---- */

static int parse(reader *r) {
    pf_gguf *g = r->g;
    int rc = need(r, 4, "magic");
    if (rc) return rc;
    if (memcmp(g->base, PFG_MAGIC, 4) != 0)
        return fail(r, PF_ERR_FORMAT, 0, "bad magic %02x %02x %02x %02x (expected \"GGUF\")", g->base[0], g->base[1],
                    g->base[2], g->base[3]);
    r->pos = 4;
    if ((rc = read_u32(r, &g->version, "version"))) return rc;
    uint32_t v = g->version, swapped = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
    if (g->version == 1)
        return fail(r, PF_ERR_UNSUPPORTED, 4, "GGUF version 1 (32-bit counts) is not supported; only 2 and 3 are");
    if ((g->version & 0xffffu) == 0 && swapped >= 1 && swapped <= 3)
        return fail(r, PF_ERR_UNSUPPORTED, 4,
                    "big-endian GGUF (version reads as %" PRIu32
                    " byte-swapped); only little-endian files are supported",
                    swapped);
    if (g->version != 2 && g->version != 3)
        return fail(r, PF_ERR_UNSUPPORTED, 4, "unsupported GGUF version %" PRIu32 " (only 2 and 3)", g->version);
    uint64_t nt = 0, nkv = 0;
    if ((rc = read_uint(r, 8, &nt, "n_tensors")) || (rc = read_uint(r, 8, &nkv, "n_kv"))) return rc;
    if ((int64_t)nt < 0) return fail(r, PF_ERR_FORMAT, 8, "n_tensors %" PRId64 " is negative", (int64_t)nt);
    if ((int64_t)nkv < 0) return fail(r, PF_ERR_FORMAT, 16, "n_kv %" PRId64 " is negative", (int64_t)nkv);
    if (nkv > remaining(r) / PFG_MIN_KV_BYTES)
        return fail(r, PF_ERR_FORMAT, 16, "n_kv %" PRIu64 " needs at least %u bytes each, %zu remain", nkv,
                    PFG_MIN_KV_BYTES, remaining(r));
    if (nt > remaining(r) / PFG_MIN_TENSOR_BYTES)
        return fail(r, PF_ERR_FORMAT, 8, "n_tensors %" PRIu64 " needs at least %u bytes each, %zu remain", nt,
                    PFG_MIN_TENSOR_BYTES, remaining(r));
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    if ((rc = parse_kvs(r)) || (rc = resolve_alignment(r))) return rc;
    return parse_tensors(r);
}

/* Takes ownership of nothing: on failure everything allocated here is released. */
static int open_common(const uint8_t *base, size_t size, bool mapped, const char *path, pf_gguf **out, pf_error *err) {
    pf_gguf *g = calloc(1, sizeof *g);
    char *p = g ? strdup(path) : NULL;
    if (p == NULL) {
        free(g);
        return pf_error_set(err, PF_ERR_NOMEM, "gguf %s: out of memory", path);
    }
    g->base = base;
    g->size = size;
    g->path = p;
    reader r = {.g = g, .err = err};
    int rc = parse(&r);
    if (rc) { /* g->mapped is still false: the caller releases its mapping */
        pf_gguf_close(g);
        return rc;
    }
    g->mapped = mapped;
    pf_error_clear(err);
    *out = g;
    return PF_OK;
}

int pf_gguf_open_memory(const void *data, size_t size, pf_gguf **out, pf_error *err) {
    if (out == NULL || (data == NULL && size > 0))
        return pf_error_set(err, PF_ERR_ARG, "gguf: open_memory: NULL %s", out ? "data" : "out");
    *out = NULL;
    return open_common(data, size, false, "<memory>", out, err);
}

int pf_gguf_open(const char *path, pf_gguf **out, pf_error *err) {
    if (out == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "gguf: open: NULL %s", out ? "path" : "out");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int code = errno == ENOENT ? PF_ERR_NOT_FOUND : PF_ERR_IO;
        return pf_error_set(err, code, "gguf %s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    int st_rc = fstat(fd, &st), e = errno;
    if (st_rc != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pf_error_set(err, PF_ERR_IO, "gguf %s: %s", path, st_rc ? strerror(e) : "not a regular file");
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0 && (map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        e = errno;
        close(fd);
        return pf_error_set(err, PF_ERR_IO, "gguf %s: mmap of %zu bytes failed: %s", path, size, strerror(e));
    }
    close(fd); /* the mapping stays valid without the descriptor */
    int rc = open_common(map, size, size > 0, path, out, err);
    if (rc && map) munmap(map, size);
    return rc;
}

void pf_gguf_close(pf_gguf *g) {
    if (g == NULL) return;
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g->kv);
    free(g->tensors);
    free(g->key_index.slot);
    free(g->tensor_index.slot);
    arena_free(g->arena);
    free(g->path);
    free(g);
}

/* ---- accessors ---- */

uint32_t pf_gguf_version(const pf_gguf *g) { return g->version; }
size_t pf_gguf_alignment(const pf_gguf *g) { return g->alignment; }
size_t pf_gguf_data_offset(const pf_gguf *g) { return g->data_offset; }
size_t pf_gguf_file_size(const pf_gguf *g) { return g->size; }
const char *pf_gguf_path(const pf_gguf *g) { return g->path; }
int64_t pf_gguf_n_kv(const pf_gguf *g) { return g->n_kv; }
int64_t pf_gguf_n_tensors(const pf_gguf *g) { return g->n_tensors; }

const char *pf_gguf_key(const pf_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? g->kv[i].key : NULL; }

const pf_gguf_value *pf_gguf_value_at(const pf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i].v : NULL;
}

int64_t pf_gguf_find_key(const pf_gguf *g, const char *key) { return index_find(&g->key_index, key); }

const pf_gguf_value *pf_gguf_get(const pf_gguf *g, const char *key) {
    return pf_gguf_value_at(g, pf_gguf_find_key(g, key));
}

const pf_tensor_info *pf_gguf_tensor(const pf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t pf_gguf_find_tensor(const pf_gguf *g, const char *name) { return index_find(&g->tensor_index, name); }

/* ---- typed getters ---- */

static const pf_gguf_value *get_typed(const pf_gguf *g, const char *key, pf_error *err, int *rc) {
    const pf_gguf_value *v = pf_gguf_get(g, key);
    *rc = v ? PF_OK : pf_error_set(err, PF_ERR_NOT_FOUND, "gguf %s: key '%s' not found", g->path, key ? key : "(null)");
    return v;
}

static int wrong_type(const pf_gguf *g, const char *key, const pf_gguf_value *v, const char *want, pf_error *err) {
    return pf_error_set(err, PF_ERR_FORMAT, "gguf %s: key '%s' has type %s, expected %s", g->path, key,
                        pf_gguf_type_name(v->type), want);
}

int pf_gguf_get_int(const pf_gguf *g, const char *key, int64_t *out, pf_error *err) {
    int rc;
    const pf_gguf_value *v = get_typed(g, key, err, &rc);
    if (v == NULL) return rc;
    switch (v->type) {
    case PF_GGUF_UINT8:
    case PF_GGUF_UINT16:
    case PF_GGUF_UINT32:
    case PF_GGUF_UINT64:
        if (v->v.u > (uint64_t)INT64_MAX)
            return pf_error_set(err, PF_ERR_FORMAT, "gguf %s: key '%s' value %" PRIu64 " does not fit in int64",
                                g->path, key, v->v.u);
        *out = (int64_t)v->v.u;
        return PF_OK;
    case PF_GGUF_INT8:
    case PF_GGUF_INT16:
    case PF_GGUF_INT32:
    case PF_GGUF_INT64: *out = v->v.i; return PF_OK;
    default: return wrong_type(g, key, v, "an integer type", err);
    }
}

int pf_gguf_get_float(const pf_gguf *g, const char *key, double *out, pf_error *err) {
    int rc;
    const pf_gguf_value *v = get_typed(g, key, err, &rc);
    if (v == NULL) return rc;
    if (v->type != PF_GGUF_FLOAT32 && v->type != PF_GGUF_FLOAT64)
        return wrong_type(g, key, v, "FLOAT32 or FLOAT64", err);
    *out = v->v.f;
    return PF_OK;
}

int pf_gguf_get_bool(const pf_gguf *g, const char *key, bool *out, pf_error *err) {
    int rc;
    const pf_gguf_value *v = get_typed(g, key, err, &rc);
    if (v == NULL) return rc;
    if (v->type != PF_GGUF_BOOL) return wrong_type(g, key, v, "BOOL", err);
    *out = v->v.u != 0;
    return PF_OK;
}

int pf_gguf_get_str(const pf_gguf *g, const char *key, const char **out, pf_error *err) {
    int rc;
    const pf_gguf_value *v = get_typed(g, key, err, &rc);
    if (v == NULL) return rc;
    if (v->type != PF_GGUF_STRING) return wrong_type(g, key, v, "STRING", err);
    *out = v->v.str.ptr;
    return PF_OK;
}
