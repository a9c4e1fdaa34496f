/* libFuzzer target for the GGUF reader: `make fuzz-run FUZZ_SECONDS=N`.
 * Any input must either be refused with a message (naming an offset for malformed input) or
 * yield a handle whose every key, value and tensor can be walked without leaving the buffer.
 * Accepted inputs are also fed to the writer, which must accept everything the reader does. */
#include <stdint.h>
#include <string.h>

#include "phiforge.h"

#define FUZZ_ASSERT(c)                                                                                                 \
    do {                                                                                                               \
        if (!(c)) __builtin_trap();                                                                                    \
    } while (0)

static uint64_t walk_value(const pf_gguf_value *v, int depth) {
    FUZZ_ASSERT(depth <= 16);
    uint64_t sum = (uint64_t)v->type;
    switch (v->type) {
    case PF_GGUF_STRING:
        FUZZ_ASSERT(v->v.str.ptr[v->v.str.len] == '\0');
        if (v->v.str.len) sum += (uint8_t)v->v.str.ptr[0] + (uint8_t)v->v.str.ptr[v->v.str.len - 1];
        break;
    case PF_GGUF_ARRAY: {
        size_t sz = pf_gguf_type_size(v->v.arr.type);
        if (sz) {
            const uint8_t *p = v->v.arr.data;
            if (v->v.arr.n) sum += p[0] + p[v->v.arr.n * sz - 1];
        } else {
            for (uint64_t k = 0; k < v->v.arr.n; k++) {
                FUZZ_ASSERT(v->v.arr.items[k].type == v->v.arr.type);
                sum += walk_value(&v->v.arr.items[k], depth + 1);
            }
        }
        break;
    }
    default: sum += v->v.u; break;
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pf_gguf *g = NULL;
    pf_error err = {0};
    int rc = pf_gguf_open_memory(data, size, &g, &err);
    if (rc != PF_OK) {
        FUZZ_ASSERT(g == NULL && err.code == rc && err.msg[0] != '\0');
        FUZZ_ASSERT(rc == PF_ERR_NOMEM || strstr(err.msg, "offset") != NULL);
        return 0;
    }
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < pf_gguf_n_kv(g); i++) {
        const char *key = pf_gguf_key(g, i);
        FUZZ_ASSERT(pf_gguf_find_key(g, key) == i);
        sink += walk_value(pf_gguf_value_at(g, i), 0);
        int64_t iv;
        double fv;
        bool bv;
        const char *sv;
        sink += (uint64_t)pf_gguf_get_int(g, key, &iv, &err) + (uint64_t)pf_gguf_get_float(g, key, &fv, &err) +
                (uint64_t)pf_gguf_get_bool(g, key, &bv, &err) + (uint64_t)pf_gguf_get_str(g, key, &sv, &err);
    }
    FUZZ_ASSERT(pf_gguf_n_tensors(g) == 0 || pf_gguf_data_offset(g) <= size);
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        const uint8_t *p = t->data;
        FUZZ_ASSERT(pf_gguf_find_tensor(g, t->name) == i);
        FUZZ_ASSERT(p >= data && p <= data + size && t->nbytes <= (size_t)(data + size - p));
        FUZZ_ASSERT(t->nbytes ==
                        pf_row_size(t->type, t->ne[0]) * (size_t)(pf_tensor_nelements(t) / (t->ne[0] ? t->ne[0] : 1)) ||
                    t->ne[0] == 0);
        if (t->nbytes) sink += p[0] + p[t->nbytes - 1];
    }
    /* Whatever the reader accepts, the writer must accept too (no file is written). The writer
     * finds keys linearly, so skip inputs with thousands of keys to keep executions fast. */
    if (pf_gguf_n_kv(g) + pf_gguf_n_tensors(g) > 512) {
        pf_gguf_close(g);
        return 0;
    }
    pf_gguf_writer *w = NULL;
    FUZZ_ASSERT(pf_gguf_writer_create(&w, &err) == PF_OK);
    FUZZ_ASSERT(pf_gguf_writer_set_version(w, pf_gguf_version(g), &err) == PF_OK);
    FUZZ_ASSERT(pf_gguf_writer_copy_kvs(w, g, &err) == PF_OK);
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        FUZZ_ASSERT(pf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err) == PF_OK);
    }
    pf_gguf_writer_free(w);
    pf_gguf_close(g);
    (void)sink;
    return 0;
}
