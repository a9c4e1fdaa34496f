/* libFuzzer target for the safetensors reader behind PEFT adapters (src/lora/safetensors.c):
 * any input must either be refused with a message naming the file, or give tensors whose
 * bytes lie inside the input, match dtype × shape, and do not overlap (checked again here). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"

#define FUZZ_ASSERT(c)                                                                                                 \
    do {                                                                                                               \
        if (!(c)) __builtin_trap();                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    st_file f;
    pf_error err = {0};
    int rc = st_parse("fuzz.safetensors", buf, size, &f, &err); /* takes buf over */
    if (rc != PF_OK) {
        FUZZ_ASSERT(rc < 0 && err.code == rc && !strncmp(err.msg, "fuzz.safetensors", 16) && f.t == NULL && f.n == 0);
        return 0;
    }
    for (int64_t i = 0; i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        size_t count = 1;
        for (int k = 0; k < t->n_dims; k++) count *= (size_t)t->shape[k];
        FUZZ_ASSERT(t->data >= f.buf && t->data + t->nbytes <= f.buf + f.size);
        FUZZ_ASSERT(t->nbytes == count * (t->dtype == ST_F32 ? 4 : 2));
        for (int64_t j = 0; j < i; j++) {
            const st_tensor *u = &f.t[j];
            FUZZ_ASSERT(t->nbytes == 0 || u->nbytes == 0 || t->data + t->nbytes <= u->data || u->data + u->nbytes <= t->data);
        }
        float *tmp = malloc(count * sizeof(float) + 1);
        if (tmp) st_to_f32(t, tmp);
        free(tmp);
    }
    st_free(&f);
    return 0;
}
