/* GGUF reader/writer: byte-exact rewrite of every golden file, known values, every hostile-input
 * case the reader must refuse (with an offset in the message), v2 files, nested arrays, writer
 * behaviour (order, replace, alignment, fill callback, atomic write). */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

/* ---- little byte builder for hand-made files ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_raw(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void b_le(bytes *b, uint64_t v, size_t n) {
    uint8_t x[8];
    for (size_t i = 0; i < n; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_raw(b, x, n);
}
static void b_u32(bytes *b, uint32_t v) { b_le(b, v, 4); }
static void b_u64(bytes *b, uint64_t v) { b_le(b, v, 8); }
static void b_str(bytes *b, const char *s) {
    b_u64(b, strlen(s));
    b_raw(b, s, strlen(s));
}
static void b_pad(bytes *b, size_t a) {
    while (b->n % a) b_le(b, 0, 1);
}
static void patch(bytes *b, size_t off, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) b->p[off + i] = (uint8_t)(v >> (8 * i));
}
static void b_header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_raw(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}

/* Offsets of the fields the hostile tests patch in the base file. */
typedef struct {
    size_t n_tensors, n_kv, key0, val0, kv1_type, align_val, kv2_key, arr_type, arr_n, item0;
    size_t t0_ndims, t0_ne0, t0_type, t0_offset, t1_ne0, t1_type, t1_offset, data, end_of_data;
} layout;

/* A small valid v3 file: 3 keys (string, general.alignment = 32, array of 2 strings) and two
 * tensors ("a" F32 [4,2] at 0, t1name Q8_0 [32] at 32), data padded to 32. */
static bytes build_base(layout *L, const char *key2, const char *t1name) {
    bytes b = {0};
    b_header(&b, 3, 2, 3);
    L->n_tensors = 8;
    L->n_kv = 16;
    L->key0 = b.n;
    b_str(&b, "general.architecture");
    b_u32(&b, PF_GGUF_STRING);
    L->val0 = b.n;
    b_str(&b, "phi3");
    b_str(&b, "general.alignment");
    L->kv1_type = b.n;
    b_u32(&b, PF_GGUF_UINT32);
    L->align_val = b.n;
    b_u32(&b, 32);
    L->kv2_key = b.n;
    b_str(&b, key2);
    b_u32(&b, PF_GGUF_ARRAY);
    L->arr_type = b.n;
    b_u32(&b, PF_GGUF_STRING);
    L->arr_n = b.n;
    b_u64(&b, 2);
    L->item0 = b.n;
    b_str(&b, "a");
    b_str(&b, "bc");
    b_str(&b, "a");
    L->t0_ndims = b.n;
    b_u32(&b, 2);
    L->t0_ne0 = b.n;
    b_u64(&b, 4);
    b_u64(&b, 2);
    L->t0_type = b.n;
    b_u32(&b, PF_TYPE_F32);
    L->t0_offset = b.n;
    b_u64(&b, 0);
    b_str(&b, t1name);
    b_u32(&b, 1);
    L->t1_ne0 = b.n;
    b_u64(&b, 32);
    L->t1_type = b.n;
    b_u32(&b, PF_TYPE_Q8_0);
    L->t1_offset = b.n;
    b_u64(&b, 32);
    b_pad(&b, 32);
    L->data = b.n;
    for (int i = 0; i < 32 + 34; i++) b_le(&b, (uint64_t)(i * 7 + 1), 1);
    L->end_of_data = b.n;
    b_pad(&b, 32);
    return b;
}

/* Opens `len` bytes of b from an exact-size copy (so ASan catches any over-read). */
static int open_copy(const bytes *b, size_t len, pf_gguf **g, pf_error *err, void **copy) {
    *copy = malloc(len ? len : 1);
    memcpy(*copy, b->p, len);
    return pf_gguf_open_memory(*copy, len, g, err);
}

static void expect_fail(pf_test *t, const bytes *b, int code, const char *label, const char *needle) {
    pf_gguf *g = NULL;
    pf_error err = {0};
    void *copy;
    int rc = open_copy(b, b->n, &g, &err, &copy);
    CHECK(t, rc == code, "%s: got %d (%s), want %d", label, rc, err.msg, code);
    CHECK(t, g == NULL && err.code == rc, "%s: handle/err not consistent", label);
    if (getenv("PF_TEST_VERBOSE")) printf("  %-32s -> %s\n", label, err.msg);
    CHECK(t, strstr(err.msg, "offset") != NULL, "%s: message lacks an offset: %s", label, err.msg);
    CHECK(t, needle == NULL || strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", label,
          needle ? needle : "", err.msg);
    pf_gguf_close(g);
    free(copy);
}

/* Applies one patch to a fresh base file and expects it to be refused. */
static void patched(pf_test *t, size_t which_off, uint64_t v, size_t n, int code, const char *label,
                    const char *needle) {
    layout L;
    bytes b = build_base(&L, "tokens", "b");
    patch(&b, which_off, v, n);
    expect_fail(t, &b, code, label, needle);
    free(b.p);
}

static void test_base_valid(pf_test *t) {
    layout L;
    bytes b = build_base(&L, "tokens", "b");
    pf_gguf *g = NULL;
    pf_error err = {0};
    void *copy;
    int rc = open_copy(&b, b.n, &g, &err, &copy);
    CHECK(t, rc == PF_OK, "base file: %s", err.msg);
    if (rc == PF_OK) {
        CHECK(t, pf_gguf_n_kv(g) == 3 && pf_gguf_n_tensors(g) == 2, "counts");
        CHECK(t, pf_gguf_data_offset(g) == L.data, "data offset %zu != %zu", pf_gguf_data_offset(g), L.data);
        const pf_gguf_value *arr = pf_gguf_get(g, "tokens");
        CHECK(t,
              arr && arr->type == PF_GGUF_ARRAY && arr->v.arr.n == 2 &&
                  strcmp(arr->v.arr.items[1].v.str.ptr, "bc") == 0,
              "string array");
        const pf_tensor_info *t1 = pf_gguf_tensor(g, pf_gguf_find_tensor(g, "b"));
        CHECK(t, t1 && t1->nbytes == 34 && t1->data == (const uint8_t *)copy + L.data + 32, "tensor b data pointer");
        CHECK(t, strcmp(pf_gguf_path(g), "<memory>") == 0, "memory path");
    }
    pf_gguf_close(g);
    free(copy);
    /* (item 2) truncated anywhere: every prefix that cuts the header or the tensor data fails. */
    int bad = 0, ok_tail = 0;
    for (size_t len = 0; len < b.n; len++) {
        g = NULL;
        rc = open_copy(&b, len, &g, &err, &copy);
        bool should_fail = len < L.end_of_data;
        if (should_fail && (rc != PF_ERR_FORMAT || !strstr(err.msg, "offset"))) bad++;
        if (!should_fail && rc == PF_OK) ok_tail++;
        pf_gguf_close(g);
        free(copy);
    }
    CHECK(t, bad == 0, "%d truncated prefixes were not refused with FORMAT + offset", bad);
    CHECK(t, ok_tail == (int)(b.n - L.end_of_data), "unpadded tail prefixes should open (%d)", ok_tail);
    free(b.p);
}

static void test_hostile(pf_test *t) {
    layout L;
    bytes b = build_base(&L, "tokens", "b");
    free(b.p);
    const uint64_t HUGE64 = UINT64_MAX;
    patched(t, 0, 'X', 1, PF_ERR_FORMAT, "bad magic", "magic");
    patched(t, 4, 1, 4, PF_ERR_UNSUPPORTED, "version 1", "version 1");
    patched(t, 4, 4, 4, PF_ERR_UNSUPPORTED, "version 4", "version");
    patched(t, 4, 0x03000000u, 4, PF_ERR_UNSUPPORTED, "big-endian", "big-endian");
    patched(t, L.n_kv, (uint64_t)1 << 40, 8, PF_ERR_FORMAT, "absurd n_kv", "n_kv");
    patched(t, L.n_kv, HUGE64, 8, PF_ERR_FORMAT, "negative n_kv", "negative");
    patched(t, L.n_tensors, (uint64_t)1 << 40, 8, PF_ERR_FORMAT, "absurd n_tensors", "n_tensors");
    patched(t, L.n_tensors, (uint64_t)INT64_MAX, 8, PF_ERR_FORMAT, "max n_tensors", "n_tensors");
    patched(t, L.n_tensors, HUGE64, 8, PF_ERR_FORMAT, "negative n_tensors", "negative");
    patched(t, L.n_tensors, 3, 8, PF_ERR_FORMAT, "one tensor more than present", "tensor 2");
    patched(t, L.n_kv, 4, 8, PF_ERR_FORMAT, "one key more than present", NULL);
    patched(t, L.key0, HUGE64, 8, PF_ERR_FORMAT, "absurd key length", "exceeds remaining");
    patched(t, L.val0, (uint64_t)1 << 62, 8, PF_ERR_FORMAT, "absurd string length", "exceeds remaining");
    patched(t, L.key0 + 8, 0, 1, PF_ERR_FORMAT, "NUL in key", "NUL");
    patched(t, L.arr_n, (uint64_t)1 << 60, 8, PF_ERR_FORMAT, "absurd array length", "array length");
    patched(t, L.arr_n, HUGE64, 8, PF_ERR_FORMAT, "max array length", "array length");
    patched(t, L.item0, HUGE64 - 3, 8, PF_ERR_FORMAT, "absurd array string length", "exceeds remaining");
    patched(t, L.kv1_type, 13, 4, PF_ERR_UNSUPPORTED, "unknown value type", "unknown value type");
    patched(t, L.kv1_type, 0xffffffffu, 4, PF_ERR_UNSUPPORTED, "unknown value type max", "unknown value type");
    patched(t, L.arr_type, 99, 4, PF_ERR_UNSUPPORTED, "unknown array type", "element type");
    patched(t, L.kv1_type, PF_GGUF_INT32, 4, PF_ERR_FORMAT, "alignment wrong type", "UINT32");
    patched(t, L.align_val, 48, 4, PF_ERR_FORMAT, "alignment not pow2", "power of two");
    patched(t, L.align_val, 0, 4, PF_ERR_FORMAT, "alignment zero", "power of two");
    patched(t, L.t0_type, 4, 4, PF_ERR_UNSUPPORTED, "removed tensor type 4", "unknown tensor type");
    patched(t, L.t0_type, 1000, 4, PF_ERR_UNSUPPORTED, "unknown tensor type", "unknown tensor type");
    patched(t, L.t0_type, 0x80000000u, 4, PF_ERR_UNSUPPORTED, "huge tensor type", "unknown tensor type");
    patched(t, L.t0_ndims, 0, 4, PF_ERR_FORMAT, "n_dims 0", "n_dims");
    patched(t, L.t0_ndims, 5, 4, PF_ERR_FORMAT, "n_dims 5", "n_dims");
    patched(t, L.t0_ndims, 0xffffffffu, 4, PF_ERR_FORMAT, "n_dims huge", "n_dims");
    patched(t, L.t0_ne0, HUGE64, 8, PF_ERR_FORMAT, "ne negative", "negative");
    patched(t, L.t0_ne0 + 8, (uint64_t)1 << 62, 8, PF_ERR_FORMAT, "dims product overflow", "overflows int64");
    patched(t, L.t0_ne0, (uint64_t)1 << 61, 8, PF_ERR_FORMAT, "nbytes overflow", "overflows size_t");
    patched(t, L.t1_ne0, 31, 8, PF_ERR_FORMAT, "ne0 not whole blocks", "block size");
    patched(t, L.t1_offset, 33, 8, PF_ERR_FORMAT, "misaligned offset", "not a multiple of the alignment");
    patched(t, L.t1_offset, 64, 8, PF_ERR_FORMAT, "data past end", "past the end");
    patched(t, L.t1_offset, HUGE64 - 31, 8, PF_ERR_FORMAT, "offset wraps", "past the end");
    patched(t, L.t1_offset, 0, 8, PF_ERR_FORMAT, "overlapping tensors", "overlaps");
    patched(t, L.t0_offset, 32, 8, PF_ERR_FORMAT, "overlapping tensors (reversed)", "overlaps");
    /* ne == 0 is a legal empty tensor (ggml accepts it): it occupies no bytes. */
    layout L2;
    bytes e = build_base(&L2, "tokens", "b");
    patch(&e, L2.t0_ne0, 0, 8);
    pf_gguf *g = NULL;
    pf_error err = {0};
    void *copy;
    CHECK(t, open_copy(&e, e.n, &g, &err, &copy) == PF_OK && pf_gguf_tensor(g, 0)->nbytes == 0, "ne 0: %s", err.msg);
    pf_gguf_close(g);
    free(copy);
    free(e.p);
    /* Duplicate names. */
    b = build_base(&L2, "general.architecture", "b");
    expect_fail(t, &b, PF_ERR_FORMAT, "duplicate key", "duplicate key");
    free(b.p);
    b = build_base(&L2, "tokens", "a");
    expect_fail(t, &b, PF_ERR_FORMAT, "duplicate tensor", "duplicate tensor");
    free(b.p);
}

/* A file with one key holding `depth` nested arrays around [1, 2] (UINT8). */
static bytes build_nested(int depth) {
    bytes b = {0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "deep");
    b_u32(&b, PF_GGUF_ARRAY);
    for (int d = 1; d < depth; d++) {
        b_u32(&b, PF_GGUF_ARRAY);
        b_u64(&b, 1);
    }
    b_u32(&b, PF_GGUF_UINT8);
    b_u64(&b, 2);
    b_le(&b, 1, 1);
    b_le(&b, 2, 1);
    return b;
}

static void test_hostile_built(pf_test *t) {
    bytes b = build_nested(8);
    pf_gguf *g = NULL;
    pf_error err = {0};
    void *copy;
    CHECK(t, open_copy(&b, b.n, &g, &err, &copy) == PF_OK, "8-deep array should open: %s", err.msg);
    const pf_gguf_value *v = g ? pf_gguf_get(g, "deep") : NULL;
    for (int d = 1; v && d < 8; d++) v = v->v.arr.items;
    CHECK(t, v && v->v.arr.type == PF_GGUF_UINT8 && v->v.arr.n == 2 && ((const uint8_t *)v->v.arr.data)[1] == 2,
          "walk 8-deep array");
    pf_gguf_close(g);
    free(copy);
    free(b.p);
    b = build_nested(9);
    expect_fail(t, &b, PF_ERR_FORMAT, "9-deep array", "nested deeper");
    free(b.p);
    b = build_nested(5000); /* would blow the stack of a parser without a depth limit */
    expect_fail(t, &b, PF_ERR_FORMAT, "5000-deep array", "nested deeper");
    free(b.p);

    b = (bytes){0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "flag");
    b_u32(&b, PF_GGUF_BOOL);
    b_le(&b, 2, 1);
    expect_fail(t, &b, PF_ERR_FORMAT, "bool 2", "BOOL");
    free(b.p);
    b = (bytes){0};
    b_header(&b, 3, 0, 0);
    b.n = 20;
    expect_fail(t, &b, PF_ERR_FORMAT, "truncated header", "truncated");
    free(b.p);
    /* Array of 2^40 UINT64 elements in a tiny file. */
    b = (bytes){0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "x");
    b_u32(&b, PF_GGUF_ARRAY);
    b_u32(&b, PF_GGUF_UINT64);
    b_u64(&b, (uint64_t)1 << 61);
    b_u64(&b, 7);
    expect_fail(t, &b, PF_ERR_FORMAT, "absurd scalar array", "array length");
    free(b.p);
    /* Header padding of a tensor file missing entirely. */
    b = (bytes){0};
    b_header(&b, 3, 1, 0);
    b_str(&b, "t");
    b_u32(&b, 1);
    b_u64(&b, 0);
    b_u32(&b, PF_TYPE_F32);
    b_u64(&b, 0);
    expect_fail(t, &b, PF_ERR_FORMAT, "missing header padding", "past the end");
    free(b.p);
    /* Vocab-only files may end right after the header. */
    b = (bytes){0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, PF_GGUF_INT8);
    b_le(&b, 0xff, 1);
    int64_t iv = 0;
    CHECK(t, open_copy(&b, b.n, &g, &err, &copy) == PF_OK && pf_gguf_get_int(g, "k", &iv, &err) == PF_OK && iv == -1,
          "unpadded vocab-only file with INT8 -1: %s", err.msg);
    pf_gguf_close(g);
    free(copy);
    free(b.p);
}

/* ---- golden files ---- */

static char g_tmpdir[64]; /* test-local scratch directory */

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmpdir, name); }

/* Reads `path`, rebuilds it with the writer and requires the same bytes. */
static void roundtrip_file(pf_test *t, const char *path) {
    pf_gguf *g = NULL;
    pf_error err = {0};
    int rc = pf_gguf_open(path, &g, &err);
    CHECK(t, rc == PF_OK, "open %s: %s", path, err.msg);
    if (rc) return;
    size_t size = 0;
    uint8_t *orig = pf_test_read_file(path, &size);
    CHECK(t, orig && size == pf_gguf_file_size(g), "%s: size", path);
    /* (f) every data pointer maps exactly the file's bytes of that tensor, inside the file. */
    int bad_ptr = 0;
    for (int64_t i = 0; orig && i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(g, i);
        size_t at = pf_gguf_data_offset(g) + ti->offset;
        if (at + ti->nbytes > size || memcmp(ti->data, orig + at, ti->nbytes) != 0) bad_ptr++;
    }
    CHECK(t, bad_ptr == 0, "%s: %d tensors do not point at their bytes", path, bad_ptr);

    pf_gguf_writer *w = NULL;
    rc = pf_gguf_writer_create(&w, &err);
    if (rc == PF_OK) rc = pf_gguf_writer_set_version(w, pf_gguf_version(g), &err);
    if (rc == PF_OK) rc = pf_gguf_writer_copy_kvs(w, g, &err);
    for (int64_t i = 0; rc == PF_OK && i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(g, i);
        rc = pf_gguf_writer_add_tensor(w, ti->name, ti->type, ti->n_dims, ti->ne, ti->data, &err);
    }
    char out[128];
    tmp_path(out, sizeof out, "roundtrip.gguf");
    if (rc == PF_OK) rc = pf_gguf_writer_write(w, out, NULL, NULL, &err);
    CHECK(t, rc == PF_OK, "%s: rewrite: %s", path, err.msg);
    size_t size2 = 0;
    uint8_t *again = rc == PF_OK ? pf_test_read_file(out, &size2) : NULL;
    size_t diff = 0;
    while (again && orig && diff < size && diff < size2 && orig[diff] == again[diff]) diff++;
    CHECK(t, again && size2 == size && diff == size, "%s: rewrite differs (sizes %zu vs %zu, first diff at %zu)", path,
          size, size2, diff);
    printf("  roundtrip %-55s %9zu bytes, %3" PRId64 " kv, %3" PRId64 " tensors: %s\n", path, size, pf_gguf_n_kv(g),
           pf_gguf_n_tensors(g), again && size2 == size && diff == size ? "identical" : "DIFFERENT");
    unlink(out);
    free(again);
    free(orig);
    pf_gguf_writer_free(w);
    pf_gguf_close(g);
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

static int roundtrip_dir(pf_test *t, const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    char names[64][256];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 64;) {
        size_t len = strlen(e->d_name);
        if (len > 5 && len < 200 && strcmp(e->d_name + len - 5, ".gguf") == 0)
            snprintf(names[n++], 256, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    for (int i = 0; i < n; i++) {
        char path[512];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) < (int)sizeof path) roundtrip_file(t, path);
    }
    return n;
}

static void test_golden_roundtrip(pf_test *t) {
    static const char *const sub[] = {"quant", "models", "tokenizer", "embed"};
    int n = 0;
    if (access("../shared/golden", R_OK) == 0) {
        for (int i = 0; i < 4; i++) {
            char dir[128];
            snprintf(dir, sizeof dir, "../shared/golden/%s", sub[i]);
            n += roundtrip_dir(t, dir);
        }
    } else {
        printf("  ../shared/golden is absent: round-tripping the copies in tests/data instead\n");
        n = roundtrip_dir(t, "tests/data");
    }
    CHECK(t, n >= 5, "found only %d golden .gguf files", n);
    /* The fuzzing seeds are hand-made files covering every value type; they must be valid too. */
    CHECK(t, roundtrip_dir(t, "fuzz/seeds") >= 1 || access("fuzz/seeds", F_OK) != 0, "fuzz seeds");
}

static void test_known_values(pf_test *t) {
    char path[512];
    pf_gguf *g = NULL;
    pf_error err = {0};
    const char *p = pf_test_data_path(path, sizeof path, "tokenizer", "ggml-vocab-phi-3.gguf");
    CHECK(t, p != NULL, "ggml-vocab-phi-3.gguf not found");
    if (p && pf_gguf_open(p, &g, &err) == PF_OK) {
        const char *arch = NULL;
        int64_t blocks = 0, bos = -1;
        double eps = 0;
        bool add_bos = false;
        CHECK(t, pf_gguf_get_str(g, "general.architecture", &arch, &err) == PF_OK && strcmp(arch, "phi3") == 0,
              "architecture: %s", err.msg);
        CHECK(t, pf_gguf_get_int(g, "phi3.block_count", &blocks, &err) == PF_OK && blocks == 32, "block_count");
        CHECK(t, pf_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos, &err) == PF_OK && bos == 1, "bos");
        CHECK(t,
              pf_gguf_get_float(g, "phi3.attention.layer_norm_rms_epsilon", &eps, &err) == PF_OK &&
                  eps == (double)1e-5f,
              "rms eps %g", eps);
        CHECK(t, pf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &err) == PF_OK, "add_bos");
        const pf_gguf_value *tok = pf_gguf_get(g, "tokenizer.ggml.tokens");
        CHECK(t, tok && tok->type == PF_GGUF_ARRAY && tok->v.arr.type == PF_GGUF_STRING && tok->v.arr.n == 32064,
              "tokens array");
        if (tok && tok->v.arr.n == 32064) {
            const pf_gguf_value *h = &tok->v.arr.items[15043];
            CHECK(t, h->v.str.len == 8 && memcmp(h->v.str.ptr, "\xe2\x96\x81Hello", 9) == 0, "token 15043 is ▁Hello");
        }
        const pf_gguf_value *tt = pf_gguf_get(g, "tokenizer.ggml.token_type");
        int32_t last = 0;
        if (tt && tt->v.arr.type == PF_GGUF_INT32 && tt->v.arr.n == 32064)
            memcpy(&last, (const uint8_t *)tt->v.arr.data + 4 * 32063, 4);
        CHECK(t, tt && tt->v.arr.n == 32064 && last > 0, "token_type array");
        /* getters: absent key, wrong types, message names the key and the type */
        int64_t iv;
        double fv;
        CHECK(t, pf_gguf_get_int(g, "no.such.key", &iv, &err) == PF_ERR_NOT_FOUND && strstr(err.msg, "no.such.key"),
              "absent key: %s", err.msg);
        CHECK(t,
              pf_gguf_get_int(g, "general.architecture", &iv, &err) == PF_ERR_FORMAT &&
                  strstr(err.msg, "general.architecture") && strstr(err.msg, "STRING"),
              "int of string: %s", err.msg);
        CHECK(t, pf_gguf_get_int(g, "tokenizer.ggml.add_bos_token", &iv, &err) == PF_ERR_FORMAT, "int of bool");
        CHECK(t, pf_gguf_get_float(g, "phi3.block_count", &fv, &err) == PF_ERR_FORMAT, "float of int");
        CHECK(t, pf_gguf_get_bool(g, "phi3.block_count", &add_bos, &err) == PF_ERR_FORMAT, "bool of int");
        CHECK(t, pf_gguf_find_key(g, "nope") == -1 && pf_gguf_get(g, "nope") == NULL, "find absent key");
        CHECK(t, pf_gguf_key(g, 0) && strcmp(pf_gguf_key(g, 0), "general.architecture") == 0, "key order");
        CHECK(t, pf_gguf_n_tensors(g) == 0 && pf_gguf_alignment(g) == 32 && pf_gguf_version(g) == 3, "vocab header");
    } else {
        CHECK(t, 0, "open vocab: %s", err.msg);
    }
    pf_gguf_close(g);
    g = NULL;

    p = pf_test_data_path(path, sizeof path, "quant", "quant-Q4_K.gguf");
    CHECK(t, p && pf_gguf_open(p, &g, &err) == PF_OK, "open quant-Q4_K: %s", err.msg);
    if (g) {
        /* The file stores ne = [512, 256] (ne0 = 512 is the row length): 131072 elements. */
        const pf_tensor_info *ti = pf_gguf_tensor(g, 0);
        CHECK(t, pf_gguf_n_tensors(g) == 1 && strcmp(ti->name, "blk.0.ffn_down.weight") == 0, "Q4_K tensor name");
        CHECK(t, ti->n_dims == 2 && ti->ne[0] == 512 && ti->ne[1] == 256 && ti->ne[2] == 1 && ti->ne[3] == 1,
              "Q4_K ne %" PRId64 " %" PRId64, ti->ne[0], ti->ne[1]);
        CHECK(t, ti->type == PF_TYPE_Q4_K && ti->nbytes == 512 / 256 * 144 * 256 && pf_tensor_nelements(ti) == 131072,
              "Q4_K type/nbytes");
        CHECK(t, pf_gguf_find_tensor(g, "blk.0.ffn_down.weight") == 0 && pf_gguf_find_tensor(g, "x") == -1,
              "find_tensor");
        CHECK(t, pf_gguf_data_offset(g) == 160 && pf_gguf_file_size(g) == 160 + ti->nbytes, "Q4_K layout");
    }
    pf_gguf_close(g);

    CHECK(t, pf_gguf_open("tests/data/does-not-exist.gguf", &g, &err) == PF_ERR_NOT_FOUND && g == NULL, "missing file");
    CHECK(t, pf_gguf_open("tests/data", &g, &err) == PF_ERR_IO, "directory: %s", err.msg);
    CHECK(t,
          pf_gguf_type_size(PF_GGUF_FLOAT64) == 8 && pf_gguf_type_size(PF_GGUF_STRING) == 0 &&
              strcmp(pf_gguf_type_name(PF_GGUF_BOOL), "BOOL") == 0 &&
              strcmp(pf_gguf_type_name((pf_gguf_type)77), "UNKNOWN") == 0,
          "type size/name");
}

/* ---- writer ---- */

static int fill_pattern(void *ctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    int *calls = ctx;
    (*calls)++;
    memset(dst, (int)(0x40 + i), nbytes);
    return PF_OK;
}

static int fill_fail(void *ctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    return pf_error_set(err, PF_ERR_IO, "fill refused tensor %" PRId64, i);
}

static void test_writer(pf_test *t) {
    char path[128];
    tmp_path(path, sizeof path, "w.gguf");
    pf_error err = {0};
    pf_gguf_writer *w = NULL;
    CHECK(t, pf_gguf_writer_create(&w, &err) == PF_OK, "create");
    CHECK(t, pf_gguf_writer_set_version(w, 2, &err) == PF_OK && pf_gguf_writer_set_version(w, 1, &err) == PF_ERR_ARG,
          "set_version");
    CHECK(t, pf_gguf_writer_set_u32(w, "general.alignment", 48, &err) == PF_ERR_ARG, "alignment 48 refused");
    CHECK(t, pf_gguf_writer_set_i32(w, "general.alignment", 64, &err) == PF_ERR_ARG, "alignment as i32 refused");
    pf_gguf_writer_set_str(w, "a", "first", &err);
    pf_gguf_writer_set_u32(w, "general.alignment", 64, &err);
    pf_gguf_writer_set_f32(w, "c", 0.5f, &err);
    pf_gguf_writer_set_str(w, "a", "replaced", &err); /* keeps position 0 */
    pf_gguf_writer_set_bool(w, "gone", true, &err);
    CHECK(t, pf_gguf_writer_remove(w, "gone") == PF_OK && pf_gguf_writer_remove(w, "gone") == PF_ERR_NOT_FOUND,
          "remove");
    pf_gguf_writer_set_i32(w, "neg", -5, &err);
    const char *strs[] = {"x", "", "zz"};
    pf_gguf_writer_set_arr_str(w, "strs", strs, 3, &err);
    int16_t i16[3] = {-1, 2, -300};
    pf_gguf_writer_set_arr(w, "i16", PF_GGUF_INT16, i16, 3, &err);
    CHECK(t, pf_gguf_writer_set_arr(w, "bad", PF_GGUF_STRING, strs, 3, &err) == PF_ERR_ARG,
          "set_arr of strings refused");
    pf_gguf_value u8big = {.type = PF_GGUF_UINT8, .v.u = 256};
    CHECK(t, pf_gguf_writer_set(w, "u8", &u8big, &err) == PF_ERR_ARG, "UINT8 256 refused");

    /* (e) nested arrays: [[1,2,3],[],[["s"]]] is not homogeneous, so use [[u32...], [u32...]] and
     * an array of arrays of strings; then change the sources to prove the writer deep-copied. */
    uint32_t a0[3] = {1, 2, 3}, a1[1] = {9};
    pf_gguf_value inner[2] = {
        {.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_UINT32, .n = 3, .data = a0}},
        {.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_UINT32, .n = 1, .data = a1}},
    };
    pf_gguf_value nested = {.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_ARRAY, .n = 2, .items = inner}};
    CHECK(t, pf_gguf_writer_set(w, "nested", &nested, &err) == PF_OK, "set nested: %s", err.msg);
    pf_gguf_value s2[2] = {{.type = PF_GGUF_STRING, .v.str = {"p", 1}}, {.type = PF_GGUF_STRING, .v.str = {"qr", 2}}};
    pf_gguf_value sarr = {.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_STRING, .n = 2, .items = s2}};
    pf_gguf_value sarrarr = {.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_ARRAY, .n = 1, .items = &sarr}};
    CHECK(t, pf_gguf_writer_set(w, "nested_str", &sarrarr, &err) == PF_OK, "set nested strings: %s", err.msg);
    a0[1] = 77;
    inner[1].v.arr.n = 0;
    s2[1].v.str.ptr = "zz";
    pf_gguf_value mixed = inner[0];
    pf_gguf_value bad_items[2] = {inner[0], {.type = PF_GGUF_STRING, .v.str = {"s", 1}}};
    mixed.v.arr.type = PF_GGUF_ARRAY;
    mixed.v.arr.items = bad_items;
    mixed.v.arr.n = 2;
    CHECK(t, pf_gguf_writer_set(w, "mixed", &mixed, &err) == PF_ERR_ARG, "heterogeneous items refused");

    float f32data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ne_a[2] = {4, 2}, ne_b[1] = {32}, ne_c[2] = {3, 1}, ne_bad[1] = {31};
    CHECK(t, pf_gguf_writer_add_tensor(w, "ta", PF_TYPE_F32, 2, ne_a, f32data, &err) == PF_OK, "add ta");
    CHECK(t, pf_gguf_writer_add_tensor(w, "tb", PF_TYPE_Q8_0, 1, ne_b, NULL, &err) == PF_OK, "add tb (fill)");
    CHECK(t, pf_gguf_writer_add_tensor(w, "tc", PF_TYPE_F16, 2, ne_c, NULL, &err) == PF_OK, "add tc (fill)");
    CHECK(t, pf_gguf_writer_add_tensor(w, "ta", PF_TYPE_F32, 2, ne_a, f32data, &err) == PF_ERR_ARG, "dup tensor");
    CHECK(t, pf_gguf_writer_add_tensor(w, "td", PF_TYPE_Q8_0, 1, ne_bad, NULL, &err) == PF_ERR_ARG, "bad ne0");
    CHECK(t, pf_gguf_writer_add_tensor(w, "te", (pf_type)4, 1, ne_b, NULL, &err) == PF_ERR_ARG, "bad type");
    CHECK(t, pf_gguf_writer_add_tensor(w, "tf", PF_TYPE_F32, 0, ne_b, NULL, &err) == PF_ERR_ARG, "n_dims 0");

    CHECK(t, pf_gguf_writer_write(w, path, NULL, NULL, &err) == PF_ERR_ARG, "missing fill callback refused");
    CHECK(t, pf_gguf_writer_write(w, path, fill_fail, NULL, &err) == PF_ERR_IO && strstr(err.msg, "fill refused"),
          "fill failure propagates: %s", err.msg);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(t, access(path, F_OK) != 0 && access(tmp, F_OK) != 0, "failed write leaves no file");
    CHECK(t, pf_gguf_writer_write(w, "/nonexistent-dir/x.gguf", fill_fail, NULL, &err) == PF_ERR_IO, "bad dir");
    int calls = 0;
    CHECK(t, pf_gguf_writer_write(w, path, fill_pattern, &calls, &err) == PF_OK && calls == 2, "write: %s", err.msg);
    CHECK(t, access(tmp, F_OK) != 0, "no .tmp left");
    pf_gguf_writer_free(w);

    /* (d) read the v2 file back */
    pf_gguf *g = NULL;
    CHECK(t, pf_gguf_open(path, &g, &err) == PF_OK, "reopen: %s", err.msg);
    if (g == NULL) return;
    CHECK(t, pf_gguf_version(g) == 2 && pf_gguf_alignment(g) == 64 && pf_gguf_data_offset(g) % 64 == 0, "v2 header");
    const char *order[] = {"a", "general.alignment", "c", "neg", "strs", "i16", "nested", "nested_str"};
    bool order_ok = pf_gguf_n_kv(g) == 8;
    for (int i = 0; order_ok && i < 8; i++) order_ok = strcmp(pf_gguf_key(g, i), order[i]) == 0;
    CHECK(t, order_ok, "key order / replace in place / remove");
    const char *sv = NULL;
    int64_t iv = 0;
    double fv = 0;
    CHECK(t, pf_gguf_get_str(g, "a", &sv, &err) == PF_OK && strcmp(sv, "replaced") == 0, "replaced value");
    CHECK(t, pf_gguf_get_int(g, "neg", &iv, &err) == PF_OK && iv == -5, "i32");
    CHECK(t, pf_gguf_get_float(g, "c", &fv, &err) == PF_OK && fv == 0.5, "f32");
    const pf_gguf_value *v = pf_gguf_get(g, "strs");
    CHECK(t, v && v->v.arr.n == 3 && v->v.arr.items[1].v.str.len == 0 && strcmp(v->v.arr.items[2].v.str.ptr, "zz") == 0,
          "string array");
    v = pf_gguf_get(g, "i16");
    int16_t r16[3] = {0};
    if (v && v->v.arr.n == 3) memcpy(r16, v->v.arr.data, sizeof r16);
    CHECK(t, r16[0] == -1 && r16[2] == -300, "int16 array");
    v = pf_gguf_get(g, "nested");
    uint32_t r32[3] = {0};
    bool nested_ok = v && v->v.arr.type == PF_GGUF_ARRAY && v->v.arr.n == 2 && v->v.arr.items[0].v.arr.n == 3 &&
                     v->v.arr.items[1].v.arr.n == 1;
    if (nested_ok) memcpy(r32, v->v.arr.items[0].v.arr.data, sizeof r32);
    CHECK(t, nested_ok && r32[1] == 2, "nested array roundtrip (deep copy)");
    v = pf_gguf_get(g, "nested_str");
    CHECK(t,
          v && v->v.arr.n == 1 && v->v.arr.items[0].v.arr.n == 2 &&
              strcmp(v->v.arr.items[0].v.arr.items[1].v.str.ptr, "qr") == 0,
          "nested string arrays");
    const pf_tensor_info *ta = pf_gguf_tensor(g, 0), *tb = pf_gguf_tensor(g, 1), *tc = pf_gguf_tensor(g, 2);
    CHECK(t, pf_gguf_n_tensors(g) == 3 && ta->offset == 0 && tb->offset == 64 && tc->offset == 128, "tensor offsets");
    CHECK(t, memcmp(ta->data, f32data, sizeof f32data) == 0, "tensor data by pointer");
    CHECK(t, ((const uint8_t *)tb->data)[33] == 0x41 && ((const uint8_t *)tc->data)[5] == 0x42 && tc->nbytes == 6,
          "tensor data by fill");
    CHECK(t, pf_gguf_file_size(g) == pf_gguf_data_offset(g) + 192, "last tensor padded to alignment");
    pf_gguf_close(g);
    unlink(path);

    /* Writer refuses nesting the reader would refuse. */
    pf_gguf_value levels[10];
    levels[0] = (pf_gguf_value){.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_UINT8, .n = 0}};
    for (int d = 1; d < 10; d++)
        levels[d] =
            (pf_gguf_value){.type = PF_GGUF_ARRAY, .v.arr = {.type = PF_GGUF_ARRAY, .n = 1, .items = &levels[d - 1]}};
    pf_gguf_writer_create(&w, &err);
    CHECK(t, pf_gguf_writer_set(w, "ok", &levels[7], &err) == PF_OK, "8 levels accepted");
    CHECK(t, pf_gguf_writer_set(w, "deep", &levels[8], &err) == PF_ERR_ARG, "9 levels refused");
    /* An empty writer makes a valid 24-byte file. */
    CHECK(t, pf_gguf_writer_remove(w, "ok") == PF_OK && pf_gguf_writer_write(w, path, NULL, NULL, &err) == PF_OK,
          "empty write");
    pf_gguf_writer_free(w);
    CHECK(t, pf_gguf_open(path, &g, &err) == PF_OK && pf_gguf_file_size(g) == 24 && pf_gguf_n_kv(g) == 0, "empty file");
    pf_gguf_close(g);
    unlink(path);
}

int main(void) {
    pf_test t = {0};
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/pf_test_gguf_XXXXXX");
    if (mkdtemp(g_tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_base_valid(&t);
    test_hostile(&t);
    test_hostile_built(&t);
    test_known_values(&t);
    test_writer(&t);
    test_golden_roundtrip(&t);
    rmdir(g_tmpdir);
    return TEST_REPORT(&t);
}
