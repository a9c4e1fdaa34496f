/* phiforge bench-train [-m MODEL.gguf | --layers 8 --embd 1024 --ff 2816 --heads 16 --type F32]
 *                      [--seq 512] [--rank 16] [--steps 3] [-t THREADS] [--grad-checkpoint] [--json]
 *
 * LoRA training speed: tokens/s of full optimizer steps (forward, backward, AdamW) on rows of
 * --seq random tokens, all of them targets, after one warm-up step; and the peak RSS. Without -m
 * a random-weight Phi-3-shaped model of the given shape is written to a temporary file first
 * (tests/../bench/bench_train_torch.py builds the same shape in PyTorch for comparison). */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge bench-train [-m MODEL.gguf | shape options] [options]\n"
               "  -m, --model FILE      Phi-3 GGUF to train on (else a random model of the shape below)\n"
               "      --layers N (8) --embd N (1024) --ff N (2816) --heads N (16) --type T (F32)\n"
               "      --seq N           tokens per row (512)\n"
               "      --rank R          LoRA rank (16), on qkv, o, gate_up, down\n"
               "      --steps N         timed optimizer steps of one row each (3)\n"
               "  -t, --threads N       threads (default: online CPUs)\n"
               "      --grad-checkpoint recompute layers in backward\n"
               "      --qlora           base linears in NF4 (QLoRA)\n"
               "      --json            machine-readable output\n");
}

/* CPU seconds of the process (user + system): under a loaded machine, the fair measure. */
static double cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double peak_rss_bytes(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss * 1024.0 : 0.0;
}

int cmd_bench_train(int argc, char **argv) {
    const char *model = NULL, *type = "F32";
    int64_t layers = 8, embd = 1024, ff = 2816, heads = 16, steps = 3;
    pf_train_params tp = pf_train_default_params();
    bool json = false;
    enum { O_LAYERS = 256, O_EMBD, O_FF, O_HEADS, O_TYPE, O_SEQ, O_RANK, O_STEPS, O_GC, O_JSON, O_QLORA };
    static const struct option lo[] = {{"model", 1, 0, 'm'}, {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'},
                                       {"layers", 1, 0, O_LAYERS}, {"embd", 1, 0, O_EMBD}, {"ff", 1, 0, O_FF},
                                       {"heads", 1, 0, O_HEADS}, {"type", 1, 0, O_TYPE}, {"seq", 1, 0, O_SEQ},
                                       {"rank", 1, 0, O_RANK}, {"steps", 1, 0, O_STEPS},
                                       {"grad-checkpoint", 0, 0, O_GC}, {"json", 0, 0, O_JSON},
                                       {"qlora", 0, 0, O_QLORA}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': tp.n_threads = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        case O_LAYERS: layers = atoll(optarg); break;
        case O_EMBD: embd = atoll(optarg); break;
        case O_FF: ff = atoll(optarg); break;
        case O_HEADS: heads = atoll(optarg); break;
        case O_TYPE: type = optarg; break;
        case O_SEQ: tp.seq_len = atoll(optarg); break;
        case O_RANK: tp.rank = atoi(optarg); break;
        case O_STEPS: steps = atoll(optarg); break;
        case O_GC: tp.grad_checkpoint = true; break;
        case O_JSON: json = true; break;
        case O_QLORA: tp.qlora = true; break;
        default: usage(stderr); return 1;
        }
    }
    if (steps < 1 || layers < 1 || embd < 1 || heads < 1 || ff < 1 || embd % heads)
        return cli_failf("bench-train", "bad shape or --steps");
    pf_error err = {0};
    char tmp[64] = "";
    if (!model) { /* a random Phi-3-shaped model of the requested size */
        pf_init_preset pr = *pf_init_preset_find("tiny");
        pr.name = "bench", pr.n_layer = layers, pr.n_embd = embd, pr.n_ff = ff, pr.n_head = pr.n_head_kv = heads;
        pf_init_params ip = pf_init_default_params();
        ip.preset = &pr, ip.n_threads = tp.n_threads;
        if (pf_quant_recipe_parse(type, &ip.recipe, &err) != PF_OK) return cli_fail("bench-train", &err);
        snprintf(tmp, sizeof tmp, "/tmp/phiforge-bench-train-XXXXXX");
        const int fd = mkstemp(tmp);
        if (fd < 0) return cli_failf("bench-train", "cannot create a temporary file");
        close(fd);
        if (pf_init_write(&ip, tmp, &err) != PF_OK) {
            unlink(tmp);
            return cli_fail("bench-train", &err);
        }
        model = tmp;
    }
    pf_model *m = NULL;
    pf_trainer *tr = NULL;
    int rc = pf_model_load(model, &m, &err);
    if (tmp[0]) unlink(tmp); /* the mapping stays valid */
    const double t_setup = cli_now();
    if (rc == PF_OK) rc = pf_trainer_create(m, &tp, &tr, &err);
    const double setup_s = cli_now() - t_setup;
    if (rc == PF_OK && tp.qlora && !json) cli_qlora_note("bench-train", tr);
    if (rc != PF_OK) {
        pf_model_free(m);
        return cli_fail("bench-train", &err);
    }
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    const int64_t S = tp.seq_len;
    int32_t *buf = malloc((size_t)(4 * S) * sizeof *buf);
    uint64_t s = 12345;
    for (int64_t i = 0; i < S; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (int32_t)((s >> 33) % (uint64_t)(hp->n_vocab < 32000 ? hp->n_vocab : 32000));
        buf[2 * S + i] = (int32_t)i, buf[3 * S + i] = 0;
    }
    for (int64_t i = 0; i < S; i++) buf[S + i] = i + 1 < S ? buf[i + 1] : -1;
    const pf_train_row row = {S, buf, buf + S, buf + 2 * S, buf + 3 * S};
    double best = INFINITY, total = 0, cpu = 0;
    for (int64_t k = 0; k <= steps && rc == PF_OK; k++) { /* step 0: warm-up */
        const double t0 = cli_now(), c0 = cpu_seconds();
        double l;
        pf_train_step_stats st;
        rc = pf_trainer_accumulate(tr, &row, (double)(S - 1), &l, &err);
        if (rc == PF_OK) rc = pf_trainer_step(tr, l, S - 1, &st, &err);
        const double dt = cli_now() - t0;
        if (k > 0) total += dt, best = dt < best ? dt : best, cpu += cpu_seconds() - c0;
        if (!json) fprintf(stderr, "%s step: %.3f s (%.1f tokens/s)\n", k ? "timed" : "warm-up", dt, (double)S / dt);
    }
    if (rc == PF_OK) {
        const double mean_tps = (double)(S * steps) / total, best_tps = (double)S / best, rss = peak_rss_bytes();
        const pf_gguf *g = pf_model_gguf(m);
        const pf_tensor_info *qkv = pf_gguf_tensor(g, pf_gguf_find_tensor(g, "blk.0.attn_qkv.weight"));
        if (json)
            printf("{\"n_layer\":%lld,\"n_embd\":%lld,\"n_ff\":%lld,\"type\":\"%s\",\"seq\":%lld,\"rank\":%d,"
                   "\"threads\":%d,\"grad_checkpoint\":%s,\"steps\":%lld,\"tok_per_s\":%.2f,\"tok_per_s_best\":%.2f,"
                   "\"tok_per_cpu_s\":%.2f,\"peak_rss_bytes\":%.0f,\"trainable\":%lld,\"qlora\":%s,"
                   "\"setup_s\":%.2f,\"step_s_best\":%.3f}\n",
                   (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_ff, pf_type_name(qkv->type),
                   (long long)S, tp.rank, tp.n_threads, tp.grad_checkpoint ? "true" : "false", (long long)steps,
                   mean_tps, best_tps, (double)(S * steps) / cpu, rss, (long long)pf_trainer_n_params(tr),
                   tp.qlora ? "true" : "false", setup_s, best);
        else {
            char b[32];
            printf("bench-train: %lld layers, n_embd %lld, n_ff %lld, %s weights%s, seq %lld, LoRA r %d (%lld "
                   "trainable), %s\n  %.1f tokens/s mean over %lld steps (best %.1f), %.1f tokens per CPU-second, peak RSS %s\n  trainer setup %.2f s\n",
                   (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_ff, pf_type_name(qkv->type),
                   tp.qlora ? " -> NF4 (QLoRA)" : "", (long long)S, tp.rank, (long long)pf_trainer_n_params(tr),
                   tp.grad_checkpoint ? "gradient checkpointing" : "all activations kept", mean_tps, (long long)steps,
                   best_tps, (double)(S * steps) / cpu, cli_human_bytes(rss, b, sizeof b), setup_s);
        }
    }
    free(buf);
    pf_trainer_free(tr);
    pf_model_free(m);
    return rc == PF_OK ? 0 : cli_fail("bench-train", &err);
}
