/* pf_lora_read: a directory is a PEFT adapter, anything else a LoRA GGUF. */
#include <string.h>
#include <sys/stat.h>

#include "lora/lora_internal.h"

int pf_lora_read(const char *path, const pf_model *base, pf_lora_weights *out, pf_error *err) {
    if (!path || !out) return pf_error_set(err, PF_ERR_ARG, "pf_lora_read: NULL argument");
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return pf_error_set(err, PF_ERR_IO, "%s: no such file or directory", path);
    int rc = S_ISDIR(st.st_mode) ? pf_lora_read_peft(path, out, err) : pf_lora_read_gguf(path, out, err);
    if (rc == PF_OK) rc = pf_lora_check_base(out, base, path, err);
    if (rc != PF_OK) pf_lora_weights_clear(out);
    return rc;
}
