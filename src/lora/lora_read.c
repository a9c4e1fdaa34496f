/* pf_lora_read: a directory is a PEFT adapter, anything else a LoRA GGUF. */
#include <string.h>
#include <sys/stat.h>

#include "lora/lora_internal.h"

/* A GGUF adapter names the architecture it was made for; it must be the base model's (as
 * llama.cpp requires: "model arch and LoRA arch mismatch"). */
static int check_arch(const char *path, const pf_model *base, pf_error *err) {
    const char *want = "phi3", *got = NULL;
    pf_gguf *g = NULL;
    pf_gguf_get_str(pf_model_gguf(base), "general.architecture", &want, NULL);
    int rc = pf_gguf_open(path, &g, err);
    if (rc == PF_OK && pf_gguf_get_str(g, "general.architecture", &got, NULL) != PF_OK)
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: missing key 'general.architecture'", path);
    else if (rc == PF_OK && strcmp(got, want) != 0)
        rc = pf_error_set(err, PF_ERR_ARG, "%s: adapter for architecture '%s', the model is '%s'", path, got, want);
    pf_gguf_close(g);
    return rc;
}

int pf_lora_read(const char *path, const pf_model *base, pf_lora_weights *out, pf_error *err) {
    if (!path || !out) return pf_error_set(err, PF_ERR_ARG, "pf_lora_read: NULL argument");
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return pf_error_set(err, PF_ERR_IO, "%s: no such file or directory", path);
    int rc = S_ISDIR(st.st_mode) ? pf_lora_read_peft(path, out, err) : pf_lora_read_gguf(path, out, err);
    if (rc == PF_OK && base && !S_ISDIR(st.st_mode)) rc = check_arch(path, base, err);
    if (rc == PF_OK) rc = pf_lora_check_base(out, base, path, err);
    if (rc != PF_OK) pf_lora_weights_clear(out);
    return rc;
}
