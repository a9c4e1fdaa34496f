/* phiforge convert HF_DIR OUT.gguf [--outtype f16|f32|bf16|q8_0] [--name NAME] — a Hugging Face
 * Phi-3 checkpoint to GGUF, with llama.cpp's layout and metadata (src/convert). */
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"

static void on_tensor(void *user, int64_t done, int64_t total, const char *tensor) {
    cli_progress *bar = user;
    bar->total = (double)total;
    cli_progress_update(bar, (double)done, tensor);
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    pf_convert_params p = pf_convert_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: phiforge convert HF_DIR OUT.gguf [--outtype f16|f32|bf16|q8_0] [--name NAME]\n"
                   "Converts a Hugging Face Phi-3 checkpoint (config.json, *.safetensors in F32/F16/BF16, tokenizer.model\n"
                   "or tokenizer.json, tokenizer_config.json) to GGUF with the names, types and metadata of llama.cpp's\n"
                   "convert_hf_to_gguf.py. 2-D weights get --outtype (default f16), norms and rope factors stay f32.\n"
                   "--name sets general.name (default: the directory's name).\n");
            return 0;
        } else if (!strcmp(a, "--outtype") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcasecmp(v, "f16")) p.outtype = PF_TYPE_F16;
            else if (!strcasecmp(v, "f32")) p.outtype = PF_TYPE_F32;
            else if (!strcasecmp(v, "bf16")) p.outtype = PF_TYPE_BF16;
            else if (!strcasecmp(v, "q8_0")) p.outtype = PF_TYPE_Q8_0;
            else return cli_failf("convert", "--outtype '%s': use f16, f32, bf16 or q8_0", v);
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            p.name = argv[++i];
        } else if (a[0] == '-') {
            return cli_failf("convert", "unknown or incomplete option '%s' (try -h)", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_failf("convert", "unexpected argument '%s' (try -h)", a);
        }
    }
    if (!in || !out) return cli_failf("convert", "need HF_DIR and OUT.gguf (try -h)");
    cli_progress bar;
    cli_progress_start(&bar, "convert", 0);
    bar.rate_unit = "tensors";
    p.progress = on_tensor;
    p.user = &bar;
    pf_error err = {0};
    int rc = pf_convert_hf(in, out, &p, &err);
    cli_progress_finish(&bar);
    if (rc != PF_OK) return cli_fail("convert", &err);
    struct stat st;
    char b[32];
    printf("convert: %s -> %s (%s, %s)\n", in, out, stat(out, &st) == 0 ? cli_human_bytes((double)st.st_size, b, sizeof b) : "?",
           pf_type_name(p.outtype));
    return 0;
}
