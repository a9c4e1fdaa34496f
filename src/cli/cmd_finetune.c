/* phiforge finetune -m BASE.gguf --data FILE.jsonl -o OUTDIR [options]
 *
 * LoRA fine-tuning: loads the rows (packed chat / completion / text samples), runs epochs of
 * optimizer steps of batch × accum rows each (loss normalised by the target tokens of the whole
 * step), logs metrics, evaluates on a validation set, checkpoints every N steps and on Ctrl-C
 * (the signal handler only sets a flag that is checked between steps), and writes the adapter
 * as OUTDIR/adapter.gguf (llama.cpp) and OUTDIR/peft/ (PEFT). --resume continues from
 * OUTDIR/checkpoint.bin exactly where it stopped (same data order, dropout masks, moments).
 * --full trains every weight instead and writes OUTDIR/model.gguf (train_full.c). */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static volatile sig_atomic_t g_stop; /* set by SIGINT; the only state the handler touches */
static void on_sigint(int sig) {
    g_stop = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the process at once */
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: phiforge finetune -m BASE.gguf --data FILE.jsonl -o OUTDIR [options]\n"
            "  -m, --model FILE      base Phi-3 GGUF (any weight type; only read)\n"
            "      --data FILE       training samples: JSONL chat {\"messages\"}, {\"prompt\",\"completion\"},\n"
            "                        {\"text\"}, or a .txt file (one sample per line)\n"
            "      --val FILE        validation samples (default: --val-fraction of --data)\n"
            "      --val-fraction F  samples of --data held out for validation (default 0)\n"
            "  -o, --output DIR      writes DIR/adapter.gguf, DIR/peft/, DIR/checkpoint.bin\n"
            "      --rank R          LoRA rank (16)          --alpha A     scale alpha/r (32)\n"
            "      --rslora          scale alpha/sqrt(r)     --dropout P   on the adapter input (0)\n"
            "      --targets LIST    qkv,o,gate_up,down (all)\n"
            "      --lr LR (2e-4)    --wd WD (0)   --clip C (1.0, 0: off)\n"
            "      --warmup N (0)    --schedule cosine|linear|constant (cosine)\n"
            "      --epochs N (1)    --max-steps N (0: epochs decide)\n"
            "      --seq N (512)     --batch N (1)   --accum N (8): rows per step = batch x accum\n"
            "      --train-on-prompt loss on every token, not only assistant/completion tokens\n"
            "      --system TEXT     system prompt for chat samples without one\n"
            "      --grad-checkpoint recompute each layer in backward (less memory)\n"
            "      --ckpt-every N    checkpoint every N steps (0: only at the end / Ctrl-C)\n"
            "      --eval-every N    validation loss every N steps (0: at the end)\n"
            "      --resume          continue from DIR/checkpoint.bin\n"
            "      --log FILE        metrics as JSON lines (default DIR/metrics.jsonl)\n"
            "      --seed S (42)     -t, --threads N (online CPUs)   --json  final summary as JSON\n"
            "      --full            full fine-tuning of every weight (F32/F16/BF16 models; 16 bytes\n"
            "                        per weight: params, grads, AdamW m, v); writes DIR/model.gguf\n"
            "      --qlora           QLoRA: the base linears held in 4-bit NF4 (double quantization)\n");
}

typedef struct ft_opts {
    const char *model, *data, *val, *out, *log, *system;
    double val_fraction;
    pf_train_params tp;
    int64_t epochs, max_steps, batch, accum, ckpt_every, eval_every;
    bool resume, json, train_on_prompt;
} ft_opts;

static int parse_targets(const char *s, uint32_t *out) {
    *out = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "qkv")) *out |= PF_LORA_QKV;
        else if (!strcmp(t, "o")) *out |= PF_LORA_O;
        else if (!strcmp(t, "gate_up")) *out |= PF_LORA_GATE_UP;
        else if (!strcmp(t, "down")) *out |= PF_LORA_DOWN;
        else if (!strcmp(t, "all")) *out |= PF_LORA_ALL;
        else return -1;
    }
    return *out ? 0 : -1;
}

/* Mean token loss over all rows of a dataset (forward only). */
static int eval_loss(pf_trainer *tr, const pf_dataset *d, double *loss, pf_error *err) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < pf_dataset_n_rows(d); i++) {
        pf_train_row row;
        double l;
        int64_t k;
        int rc = pf_dataset_row(d, i, &row, err);
        if (rc == PF_OK) rc = pf_trainer_eval(tr, &row, &l, &k, err);
        if (rc != PF_OK) return rc;
        sum += l, n += k;
    }
    *loss = n ? sum / (double)n : 0.0;
    return PF_OK;
}

static int save_outputs(const ft_opts *o, pf_trainer *tr, const pf_model *m, pf_error *err) {
    char path[4096];
    if (o->tp.full) { /* the whole model, in the base's layout and types */
        snprintf(path, sizeof path, "%s/model.gguf", o->out);
        return pf_trainer_save_model(tr, path, err);
    }
    pf_lora_weights w;
    int rc = pf_trainer_export(tr, &w, err);
    if (rc != PF_OK) return rc;
    snprintf(path, sizeof path, "%s/adapter.gguf", o->out);
    rc = pf_lora_save_gguf(&w, m, path, PF_TYPE_F32, err);
    if (rc == PF_OK) {
        snprintf(path, sizeof path, "%s/peft", o->out);
        rc = pf_lora_save_peft(&w, m, path, err);
    }
    pf_lora_weights_clear(&w);
    return rc;
}

static int run(ft_opts *o) {
    pf_error err = {0};
    pf_model *m = NULL;
    pf_tokenizer *tok = NULL;
    pf_dataset *train = NULL, *val = NULL;
    pf_trainer *tr = NULL;
    int64_t *perm = NULL;
    FILE *log = NULL;
    int rc = pf_model_load(o->model, &m, &err);
    if (rc == PF_OK) rc = pf_tokenizer_load(pf_model_gguf(m), &tok, &err);
    const pf_chat_format fmt = pf_chat_format_from_gguf(m ? pf_model_gguf(m) : NULL);
    pf_data_params dp = pf_data_default_params();
    dp.seq_len = o->tp.seq_len, dp.seed = o->tp.seed, dp.system = o->system, dp.train_on_prompt = o->train_on_prompt;
    dp.val_fraction = o->val ? 0.0 : o->val_fraction;
    if (rc == PF_OK) rc = pf_dataset_load(o->data, tok, &fmt, &dp, &train, o->val ? NULL : &val, &err);
    if (rc == PF_OK && o->val) {
        pf_dataset *unused = NULL;
        dp.val_fraction = 0;
        rc = pf_dataset_load(o->val, tok, &fmt, &dp, &val, &unused, &err);
        pf_dataset_free(unused);
    }
    if (rc == PF_OK && val && pf_dataset_n_rows(val) == 0) { /* no held-out rows: no validation loss to report */
        pf_dataset_free(val);
        val = NULL;
    }
    if (rc != PF_OK) goto done;
    const int64_t n_rows = pf_dataset_n_rows(train), per_step = o->batch * o->accum;
    if (n_rows == 0) {
        rc = pf_error_set(&err, PF_ERR_FORMAT, "%s: no training rows", o->data);
        goto done;
    }
    const int64_t steps_per_epoch = (n_rows + per_step - 1) / per_step;
    int64_t total = o->epochs * steps_per_epoch;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    o->tp.total_steps = total;
    if ((rc = pf_trainer_create(m, &o->tp, &tr, &err)) != PF_OK) goto done;
    if (o->tp.qlora) cli_qlora_note("finetune", tr);
    mkdir(o->out, 0755);
    char ckpt[4096], logpath[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", o->out);
    snprintf(logpath, sizeof logpath, "%s/metrics.jsonl", o->out);
    pf_train_position pos = {0};
    if (o->resume && (rc = pf_trainer_load(tr, ckpt, &pos, &err)) != PF_OK) goto done;
    log = fopen(o->log ? o->log : logpath, o->resume ? "a" : "w");
    perm = malloc((size_t)n_rows * sizeof *perm);
    if (!log || !perm) {
        rc = pf_error_set(&err, PF_ERR_IO, "cannot open the metrics log or allocate the row order");
        goto done;
    }
    char what[96];
    if (o->tp.full) /* params, grads, AdamW m and v: 4 f32 copies */
        snprintf(what, sizeof what, "full: every weight, %.1f MiB of params + grads + AdamW moments",
                 16.0 * (double)pf_trainer_n_params(tr) / 1048576.0);
    else snprintf(what, sizeof what, "r %d, alpha %g", o->tp.rank, (double)o->tp.alpha);
    fprintf(stderr,
            "finetune: %lld samples in %lld rows of <= %lld tokens (%lld target tokens), %lld val rows; %lld steps of "
            "%lld rows; %lld trainable parameters (%s)\n",
            (long long)pf_dataset_n_samples(train), (long long)n_rows, (long long)o->tp.seq_len,
            (long long)pf_dataset_n_target_tokens(train), (long long)(val ? pf_dataset_n_rows(val) : 0),
            (long long)total, (long long)per_step, (long long)pf_trainer_n_params(tr), what);
    signal(SIGINT, on_sigint);
    cli_progress bar;
    cli_progress_start(&bar, "finetune", (double)total);
    const double t0 = cli_now();
    int64_t tokens_seen = 0;
    double first_loss = NAN, last_loss = NAN, val_loss = NAN;
    int64_t step = pf_trainer_steps_done(tr);
    for (int64_t ep = pos.epoch; step < total && !g_stop && rc == PF_OK; ep++, pos.next = 0) {
        pf_dataset_epoch_order(train, o->tp.seed, ep, perm);
        for (int64_t i = pos.next; i < n_rows && step < total && !g_stop; i += per_step) {
            const int64_t end = i + per_step < n_rows ? i + per_step : n_rows;
            int64_t ntok = 0, ntoks_in = 0;
            pf_train_row row;
            for (int64_t k = i; k < end; k++) {
                pf_dataset_row(train, perm[k], &row, &err);
                for (int64_t q = 0; q < row.n; q++) ntok += row.targets[q] >= 0;
                ntoks_in += row.n;
            }
            double sum = 0, l;
            for (int64_t k = i; k < end && rc == PF_OK; k++) {
                pf_dataset_row(train, perm[k], &row, &err);
                rc = pf_trainer_accumulate(tr, &row, ntok > 0 ? (double)ntok : 1.0, &l, &err);
                sum += l;
            }
            pf_train_step_stats st;
            if (rc == PF_OK) rc = pf_trainer_step(tr, sum, ntok, &st, &err);
            if (rc != PF_OK) break;
            step = st.step, tokens_seen += ntoks_in;
            if (isnan(first_loss)) first_loss = st.loss;
            last_loss = st.loss;
            const double el = cli_now() - t0, tps = tokens_seen / (el > 0 ? el : 1e-9);
            fprintf(log, "{\"step\":%lld,\"epoch\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%lld,"
                         "\"tok_per_s\":%.1f,\"elapsed_s\":%.2f}\n",
                    (long long)step, (long long)ep, st.loss, st.lr, st.grad_norm, (long long)st.n_tokens, tps, el);
            fflush(log);
            char item[96];
            snprintf(item, sizeof item, "step %lld loss %.4f lr %.2e %.0f tok/s", (long long)step, st.loss, st.lr, tps);
            cli_progress_update(&bar, (double)step, item);
            pos.epoch = ep, pos.next = end < n_rows ? end : n_rows;
            if (pos.next >= n_rows) pos.epoch = ep + 1, pos.next = 0;
            if (val && o->eval_every > 0 && step % o->eval_every == 0) {
                if ((rc = eval_loss(tr, val, &val_loss, &err)) != PF_OK) break;
                fprintf(log, "{\"step\":%lld,\"val_loss\":%.6f}\n", (long long)step, val_loss);
            }
            if (o->ckpt_every > 0 && step % o->ckpt_every == 0 && (rc = pf_trainer_save(tr, ckpt, &pos, &err)))
                break;
        }
    }
    cli_progress_finish(&bar);
    if (rc != PF_OK) goto done;
    if ((rc = pf_trainer_save(tr, ckpt, &pos, &err)) != PF_OK) goto done;
    if (g_stop) {
        fprintf(stderr, "finetune: interrupted at step %lld; checkpoint %s (continue with --resume)\n",
                (long long)step, ckpt);
        rc = 130;
        goto done;
    }
    if (val && (rc = eval_loss(tr, val, &val_loss, &err)) != PF_OK) goto done;
    if (val) fprintf(log, "{\"step\":%lld,\"val_loss\":%.6f}\n", (long long)step, val_loss);
    if ((rc = save_outputs(o, tr, m, &err)) != PF_OK) goto done;
    const double el = cli_now() - t0;
    if (o->json)
        printf("{\"steps\":%lld,\"first_loss\":%.6f,\"last_loss\":%.6f,\"val_loss\":%.6f,\"tokens\":%lld,"
               "\"seconds\":%.3f,\"tok_per_s\":%.1f,\"%s\":\"%s/%s\"}\n",
               (long long)step, first_loss, last_loss, isnan(val_loss) ? -1.0 : val_loss, (long long)tokens_seen, el,
               tokens_seen / (el > 0 ? el : 1e-9), o->tp.full ? "model" : "adapter", o->out,
               o->tp.full ? "model.gguf" : "adapter.gguf");
    else {
        printf("finetune: %lld steps in %.1f s (%.0f tokens/s); loss %.4f -> %.4f", (long long)step, el,
               tokens_seen / (el > 0 ? el : 1e-9), first_loss, last_loss);
        if (val) printf("; validation loss %.4f", val_loss);
        printf("\nwrote %s/%s, %s/checkpoint.bin, %s\n", o->out, o->tp.full ? "model.gguf" : "adapter.gguf", o->out,
               o->log ? o->log : logpath);
    }
done:
    if (log) fclose(log);
    free(perm);
    pf_trainer_free(tr);
    pf_dataset_free(train), pf_dataset_free(val);
    pf_tokenizer_free(tok);
    pf_model_free(m);
    if (rc == 130) return 130;
    return rc == PF_OK ? 0 : cli_fail("finetune", &err);
}

int cmd_finetune(int argc, char **argv) {
    ft_opts o = {.tp = pf_train_default_params(), .epochs = 1, .batch = 1, .accum = 8};
    enum { O_DATA = 256, O_VAL, O_VALF, O_RANK, O_ALPHA, O_RSLORA, O_DROP, O_TARGETS, O_LR, O_WD, O_CLIP, O_WARM,
           O_SCHED, O_EPOCHS, O_MAXS, O_SEQ, O_BATCH, O_ACCUM, O_TOP, O_SYS, O_GC, O_CKPT, O_EVAL, O_RESUME, O_LOG,
           O_SEED, O_JSON, O_FULL, O_QLORA };
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"output", 1, 0, 'o'}, {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'},
        {"data", 1, 0, O_DATA}, {"val", 1, 0, O_VAL}, {"val-fraction", 1, 0, O_VALF}, {"rank", 1, 0, O_RANK},
        {"alpha", 1, 0, O_ALPHA}, {"rslora", 0, 0, O_RSLORA}, {"dropout", 1, 0, O_DROP}, {"targets", 1, 0, O_TARGETS},
        {"lr", 1, 0, O_LR}, {"wd", 1, 0, O_WD}, {"clip", 1, 0, O_CLIP}, {"warmup", 1, 0, O_WARM},
        {"schedule", 1, 0, O_SCHED}, {"epochs", 1, 0, O_EPOCHS}, {"max-steps", 1, 0, O_MAXS}, {"seq", 1, 0, O_SEQ},
        {"batch", 1, 0, O_BATCH}, {"accum", 1, 0, O_ACCUM}, {"train-on-prompt", 0, 0, O_TOP}, {"system", 1, 0, O_SYS},
        {"grad-checkpoint", 0, 0, O_GC}, {"ckpt-every", 1, 0, O_CKPT}, {"eval-every", 1, 0, O_EVAL},
        {"resume", 0, 0, O_RESUME}, {"log", 1, 0, O_LOG}, {"seed", 1, 0, O_SEED}, {"json", 0, 0, O_JSON},
        {"full", 0, 0, O_FULL}, {"qlora", 0, 0, O_QLORA}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:t:h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'o': o.out = optarg; break;
        case 't': o.tp.n_threads = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        case O_DATA: o.data = optarg; break;
        case O_VAL: o.val = optarg; break;
        case O_VALF: o.val_fraction = atof(optarg); break;
        case O_RANK: o.tp.rank = atoi(optarg); break;
        case O_ALPHA: o.tp.alpha = (float)atof(optarg); break;
        case O_RSLORA: o.tp.rslora = true; break;
        case O_DROP: o.tp.dropout = (float)atof(optarg); break;
        case O_TARGETS:
            if (parse_targets(optarg, &o.tp.targets)) return cli_failf("finetune", "--targets %s: use qkv,o,gate_up,down", optarg);
            break;
        case O_LR: o.tp.lr = (float)atof(optarg); break;
        case O_WD: o.tp.weight_decay = (float)atof(optarg); break;
        case O_CLIP: o.tp.clip = (float)atof(optarg); break;
        case O_WARM: o.tp.warmup = atoll(optarg); break;
        case O_SCHED:
            if (!strcmp(optarg, "cosine")) o.tp.schedule = PF_LR_COSINE;
            else if (!strcmp(optarg, "linear")) o.tp.schedule = PF_LR_LINEAR;
            else if (!strcmp(optarg, "constant")) o.tp.schedule = PF_LR_CONSTANT;
            else return cli_failf("finetune", "--schedule %s: cosine, linear or constant", optarg);
            break;
        case O_EPOCHS: o.epochs = atoll(optarg); break;
        case O_MAXS: o.max_steps = atoll(optarg); break;
        case O_SEQ: o.tp.seq_len = atoll(optarg); break;
        case O_BATCH: o.batch = atoll(optarg); break;
        case O_ACCUM: o.accum = atoll(optarg); break;
        case O_TOP: o.train_on_prompt = true; break;
        case O_SYS: o.system = optarg; break;
        case O_GC: o.tp.grad_checkpoint = true; break;
        case O_CKPT: o.ckpt_every = atoll(optarg); break;
        case O_EVAL: o.eval_every = atoll(optarg); break;
        case O_RESUME: o.resume = true; break;
        case O_LOG: o.log = optarg; break;
        case O_SEED: o.tp.seed = strtoull(optarg, NULL, 10); break;
        case O_JSON: o.json = true; break;
        case O_FULL: o.tp.full = true; break;
        case O_QLORA: o.tp.qlora = true; break;
        default: usage(stderr); return 1;
        }
    }
    if (!o.model || !o.data || !o.out) {
        usage(stderr);
        return cli_failf("finetune", "-m, --data and -o are required");
    }
    if (o.epochs < 1 || o.batch < 1 || o.accum < 1 || o.max_steps < 0 || o.ckpt_every < 0 || o.eval_every < 0 ||
        !(o.val_fraction >= 0 && o.val_fraction < 1))
        return cli_failf("finetune", "--epochs, --batch, --accum must be >= 1; steps >= 0; --val-fraction in [0, 1)");
    return run(&o);
}
