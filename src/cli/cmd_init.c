/* phiforge init --preset NAME --type TYPE -o OUT.gguf [--seed S] [-t THREADS]
 *
 * Writes a model with random weights in the exact layout and metadata of a released Phi-3 model
 * (tokenizer included), for benchmarks and tests without downloading gigabytes. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge init --preset NAME --type TYPE -o OUT.gguf [--seed S] [-t THREADS]\n"
               "  --preset NAME     one of:\n");
    for (int i = 0; i < pf_init_preset_count(); i++)
        fprintf(f, "                      %-15s %s\n", pf_init_preset_at(i)->name, pf_init_preset_at(i)->description);
    fprintf(f, "  --type TYPE       F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL,\n"
               "                    or the mixes Q4_K_M, Q5_K_M (llama.cpp's per-tensor recipe)\n"
               "  -o, --output OUT  the GGUF file to write\n"
               "  --seed S          random seed (default 0); same seed, same bytes\n"
               "  -t, --threads N   threads (default: all cores; the file does not depend on it)\n"
               "  --vocab PATH      Phi-3 tokenizer GGUF (default: $PHIFORGE_VOCAB, else the\n"
               "                    data/phi3-vocab.gguf shipped with phiforge)\n"
               "  --vocab-only      write the metadata only, no tensors\n");
}

static void on_progress(void *user, double done, double total, const char *item) {
    cli_progress *prog = user;
    prog->total = total > 0 ? total : 1; /* known once the writer has laid out the tensors */
    cli_progress_update(prog, done, item);
}

int cmd_init(int argc, char **argv) {
    enum { OPT_SEED = 256, OPT_VOCAB, OPT_VOCAB_ONLY, OPT_PRESET, OPT_TYPE };
    static const struct option opts[] = {{"preset", required_argument, 0, OPT_PRESET},
                                         {"type", required_argument, 0, OPT_TYPE},
                                         {"output", required_argument, 0, 'o'},
                                         {"seed", required_argument, 0, OPT_SEED},
                                         {"threads", required_argument, 0, 't'},
                                         {"vocab", required_argument, 0, OPT_VOCAB},
                                         {"vocab-only", no_argument, 0, OPT_VOCAB_ONLY},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    pf_init_params p = pf_init_default_params();
    const char *preset = NULL, *type = NULL, *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:t:", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case OPT_PRESET: preset = optarg; break;
        case OPT_TYPE: type = optarg; break;
        case 'o': out = optarg; break;
        case 't': p.n_threads = atoi(optarg); break;
        case OPT_VOCAB: p.vocab_path = optarg; break;
        case OPT_VOCAB_ONLY: p.vocab_only = true; break;
        case OPT_SEED:
            p.seed = strtoull(optarg, &end, 0);
            if (end == optarg || *end) return cli_failf("init", "--seed wants an integer, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || !preset || !type || !out) { usage(stderr); return 1; }
    if ((p.preset = pf_init_preset_find(preset)) == NULL) {
        usage(stderr);
        return cli_failf("init", "unknown preset '%s'", preset);
    }
    pf_error err = {0};
    if (pf_quant_recipe_parse(type, &p.recipe, &err)) return cli_fail("init", &err);

    cli_progress prog;
    cli_progress_start(&prog, "init", 0);
    p.progress = on_progress;
    p.progress_user = &prog;
    double t0 = cli_now();
    if (pf_init_write(&p, out, &err)) {
        if (prog.tty) fputc('\n', stderr);
        return cli_fail("init", &err);
    }
    cli_progress_finish(&prog);
    pf_gguf *g = NULL;
    if (pf_gguf_open(out, &g, &err)) return cli_fail("init", &err);
    char b1[32];
    fprintf(stderr, "init: wrote %s (%s, %s %s, %lld tensors, seed %llu) in %.1f s\n", out,
            cli_human_bytes((double)pf_gguf_file_size(g), b1, sizeof b1), p.preset->name,
            pf_file_type_name(p.recipe.file_type), (long long)pf_gguf_n_tensors(g), (unsigned long long)p.seed,
            cli_now() - t0);
    pf_gguf_close(g);
    return 0;
}
