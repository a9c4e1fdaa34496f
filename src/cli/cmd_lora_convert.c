/* phiforge lora-convert [-m BASE.gguf] IN OUT [--type F32|F16] — converts a LoRA adapter between
 * llama.cpp's GGUF and a PEFT directory (either way; OUT ending in .gguf is written as GGUF,
 * anything else as a PEFT directory). With -m the pairs are checked against the base model and
 * its architecture goes into the GGUF. */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge lora-convert [-m BASE.gguf] IN OUT [--type F32|F16] [--name NAME]\n"
               "  IN, OUT: a LoRA GGUF (llama.cpp) or a PEFT directory; OUT ending in .gguf is a GGUF\n"
               "  -m, --model FILE  base model: checks every pair's shape, gives the GGUF architecture\n"
               "      --type T      GGUF tensor type, F32 (default) or F16\n"
               "      --name NAME   base_model_name_or_path for adapter_config.json (default: the\n"
               "                    adapter's own, else the base model's general.name)\n"
               "  -h, --help        this help\n");
}

int cmd_lora_convert(int argc, char **argv) {
    enum { OPT_TYPE = 400, OPT_NAME };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"type", required_argument, 0, OPT_TYPE},
                                         {"name", required_argument, 0, OPT_NAME}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *name = NULL;
    pf_type type = PF_TYPE_F32;
    pf_error err = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_TYPE:
            if (pf_type_from_name(optarg, &type) != PF_OK || (type != PF_TYPE_F32 && type != PF_TYPE_F16))
                return cli_failf("lora-convert", "--type must be F32 or F16, not '%s'", optarg);
            break;
        case OPT_NAME: name = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 1;
    }
    const char *in = argv[optind], *out = argv[optind + 1];
    pf_model *m = NULL;
    pf_lora_weights w;
    if (model && pf_model_load(model, &m, &err) != PF_OK) return cli_fail("lora-convert", &err);
    int rc = pf_lora_read(in, m, &w, &err);
    if (rc == PF_OK) {
        const char *gname = NULL;
        if (name) snprintf(w.base_model, sizeof w.base_model, "%s", name);
        else if (!w.base_model[0] && m && pf_gguf_get_str(pf_model_gguf(m), "general.name", &gname, NULL) == PF_OK)
            snprintf(w.base_model, sizeof w.base_model, "%s", gname);
        const size_t n = strlen(out);
        const bool gguf = n >= 5 && !strcmp(out + n - 5, ".gguf");
        rc = gguf ? pf_lora_save_gguf(&w, m, out, type, &err) : pf_lora_save_peft(&w, m, out, &err);
        if (rc == PF_OK)
            printf("lora-convert: %s -> %s (%s): %lld pairs, rank %d, alpha %g%s\n", in, out, gguf ? "GGUF" : "PEFT",
                   (long long)w.n, w.rank, w.alpha, w.rslora ? ", rsLoRA" : "");
    }
    pf_lora_weights_clear(&w);
    pf_model_free(m);
    return rc == PF_OK ? 0 : cli_fail("lora-convert", &err);
}
