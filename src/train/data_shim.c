/* TEMPORARY shim (see data_shim.h): DATA's pf_lora_weights_clear, until its branch lands. */
#include <stdlib.h>
#include <string.h>

#include "train/data_shim.h"

void pf_lora_weights_clear(pf_lora_weights *w) {
    if (w == NULL) return;
    for (int64_t i = 0; i < w->n && w->pairs; i++) {
        free(w->pairs[i].a);
        free(w->pairs[i].b);
    }
    free(w->pairs);
    memset(w, 0, sizeof *w);
}
