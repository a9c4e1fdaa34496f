/* QLoRA: the trainer's frozen base linears (qkv, o, gate_up, down of every block) held in NF4
 * with double quantization (src/nf4), built at trainer creation from the model's GGUF mapping
 * one tensor at a time: each tensor is dequantized ~4 MB of rows at a time, quantized to NF4,
 * and its mapped pages are then dropped (madvise MADV_DONTNEED on the private read-only mapping:
 * the pages leave the process and stay in the page cache), so the resident set grows by the NF4
 * bytes (≈ 4.127 bits per weight) and not by the file.
 *
 * The output head stays as it is in the GGUF (as bitsandbytes keeps lm_head in 16 bit): it is
 * 2.6 % of Phi-3-mini's weights, its rounding error would land directly on the logits the loss
 * is computed from, and the head is also what inference reads untouched. The token embedding
 * is only gathered per row and stays mapped (only the rows touched are resident). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "train/trainer.h"

/* Drop the pages of a tensor that will not be read again (whole pages inside it only: the
 * neighbours' first / last pages may still be in use). */
static void drop_pages(const pf_tensor_info *ti) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)ti->data, e = b + ti->nbytes;
    const uintptr_t b_up = (b + page - 1) & ~(page - 1), e_down = e & ~(page - 1);
    if (e_down > b_up) madvise((void *)b_up, e_down - b_up, MADV_DONTNEED);
}

int pf_train_qlora_build(pf_trainer *t, pf_error *err) {
    const int64_t n = t->hp.n_layer * N_MOD;
    t->nf4 = calloc((size_t)n, sizeof *t->nf4);
    if (t->nf4 == NULL) return pf_error_set(err, PF_ERR_NOMEM, "trainer: out of memory for the NF4 base");
    memset(&t->qinfo, 0, sizeof t->qinfo);
    for (int64_t i = 0; i < n; i++) {
        const pf_tensor_info *src = t->lin[i]->t;
        if (src->ne[0] % PF_NF4_BLOCK)
            return pf_error_set(err, PF_ERR_UNSUPPORTED, "trainer: --qlora: tensor '%s' has %lld columns, not a multiple of %d",
                                src->name, (long long)src->ne[0], PF_NF4_BLOCK);
        const pf_type_traits *tt = pf_type_get(src->type);
        if (tt && tt->is_quantized) {
            if (t->qinfo.n_requantized++ == 0) t->qinfo.src_type = src->type;
        }
        int rc = pf_nf4_quantize_tensor(t->c, src, &t->nf4[i], err);
        if (rc != PF_OK) return rc;
        drop_pages(src);
        t->qinfo.n_tensors++;
        t->qinfo.n_weights += src->ne[0] * src->ne[1];
        t->qinfo.nf4_bytes += pf_nf4_bytes(&t->nf4[i]);
        t->qinfo.src_bytes += src->nbytes;
    }
    return PF_OK;
}

void pf_train_qlora_free(pf_trainer *t) {
    if (t->nf4 == NULL) return;
    for (int64_t i = 0; i < t->hp.n_layer * N_MOD; i++) pf_nf4_free(&t->nf4[i]);
    free(t->nf4);
    t->nf4 = NULL;
}

int pf_trainer_qlora_info(const pf_trainer *t, pf_qlora_info *out, pf_error *err) {
    if (t == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_qlora_info: NULL argument");
    *out = t->qinfo;
    return PF_OK;
}
