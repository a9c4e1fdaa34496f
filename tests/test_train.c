/* LoRA trainer on whole (tiny) models:
 *   - PyTorch reference (tests/train_reference.py, float64): adapter gradients at step 0 and the
 *     loss curve of 20 AdamW steps (warmup + cosine, clipping, weight decay, accumulation over
 *     two packed rows), on a 2-layer GQA model with LongRoPE factors and F16 weights;
 *   - PEFT initialisation (B = 0, A ~ U(±1/√n_in));
 *   - gradient checkpointing gives the same gradients bit for bit;
 *   - accumulation normalises by the batch's target tokens: two rows accumulated equal one
 *     packed row holding both samples (different seg, positions restarting);
 *   - checkpoint + resume: 3 steps, save, a new trainer loads, 3 more steps equal 6 steps of one
 *     run exactly (with dropout, so the mask stream is part of the state);
 *   - bad rows and bad checkpoints give errors naming the field;
 *   - full fine-tuning (--full): PyTorch reference of every weight's step-0 gradient and a 10-step
 *     loss curve, checkpointing and resume bit for bit, the saved GGUF (same layout, its logits
 *     through pf_decode give the trainer's loss), quantized models and dropout refused. */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "train/trainer.h" /* n_micro: replay one dropout mask for finite differences */

static char g_dir[64];

/* ---- a tiny Phi-3 with GQA and LongRoPE --------------------------------------------------- */

static const float k_long[8] = {1.0f, 1.3f, 2.1f, 3.7f, 5.5f, 9.0f, 14.0f, 22.0f};
static const float k_short[8] = {1.0f, 1.0f, 1.1f, 1.2f, 1.4f, 1.9f, 2.5f, 3.0f};

static pf_model *make_model(pf_test *T, bool gqa_long, const char *type, char *path, size_t cap) {
    static pf_init_preset preset;
    const pf_init_preset *tiny = pf_init_preset_find("tiny");
    preset = *tiny;
    if (gqa_long) { /* context 64 over an original 16: rows longer than 16 use the long factors */
        preset.name = "tiny-gqa-long", preset.n_ctx_train = 64, preset.n_ctx_orig = 16, preset.n_head_kv = 2;
        preset.rope_long = k_long, preset.rope_short = k_short;
    }
    pf_init_params ip = pf_init_default_params();
    pf_error e = {0};
    ip.preset = &preset, ip.seed = 7, ip.n_threads = 2;
    CHECK(T, pf_quant_recipe_parse(type, &ip.recipe, &e) == PF_OK, "recipe %s", type);
    snprintf(path, cap, "%s/%s-%s.gguf", g_dir, preset.name, type);
    int rc = pf_init_write(&ip, path, &e);
    CHECK(T, rc == PF_OK, "init: %s", e.msg);
    pf_model *m = NULL;
    if (rc == PF_OK) CHECK(T, (rc = pf_model_load(path, &m, &e)) == PF_OK, "load: %s", e.msg);
    return rc == PF_OK ? m : NULL;
}

/* ---- rows: 1-3 packed samples, positions restarting, targets the next token or -1 ---------- */

typedef struct rowbuf {
    int32_t ids[64], tg[64], pos[64], seg[64];
    pf_train_row row;
} rowbuf;

static void make_row(rowbuf *r, int64_t n, int n_seg, pf_test_rng *rng) {
    int64_t start = 0;
    for (int s = 0; s < n_seg; s++) {
        const int64_t end = s == n_seg - 1 ? n : start + n / n_seg;
        for (int64_t i = start; i < end; i++) {
            r->ids[i] = (int32_t)(pf_test_next(rng) % 32000);
            r->pos[i] = (int32_t)(i - start), r->seg[i] = s;
        }
        for (int64_t i = start; i < end; i++) /* a prompt part without loss, then next tokens */
            r->tg[i] = i + 1 < end && i - start >= 2 ? r->ids[i + 1] : -1;
        start = end;
    }
    r->row = (pf_train_row){n, r->ids, r->tg, r->pos, r->seg};
}

static int64_t n_targets(const pf_train_row *r) {
    int64_t k = 0;
    for (int64_t i = 0; i < r->n; i++) k += r->targets[i] >= 0;
    return k;
}

static pf_train_params small_params(void) {
    pf_train_params p = pf_train_default_params();
    p.rank = 4, p.alpha = 8.0f, p.seq_len = 32, p.n_threads = 2, p.lr = 2e-3f, p.weight_decay = 0.01f;
    p.clip = 0.5f, p.warmup = 3, p.total_steps = 20, p.schedule = PF_LR_COSINE, p.seed = 11;
    return p;
}

/* one optimizer step over rows[0..k): accumulate each, then step; returns the mean token loss */
static double train_step(pf_test *T, pf_trainer *tr, rowbuf *rows, int k) {
    int64_t ntok = 0;
    double sum = 0.0, l;
    pf_error e = {0};
    for (int i = 0; i < k; i++) ntok += n_targets(&rows[i].row);
    for (int i = 0; i < k; i++) {
        int rc = pf_trainer_accumulate(tr, &rows[i].row, (double)ntok, &l, &e);
        CHECK(T, rc == PF_OK, "accumulate: %s", e.msg);
        sum += l;
    }
    pf_train_step_stats st;
    CHECK(T, pf_trainer_step(tr, sum, ntok, &st, &e) == PF_OK, "step: %s", e.msg);
    return st.loss;
}

static bool write_raw(const char *dir, const char *name, const void *data, size_t bytes) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return false;
    const bool ok = fwrite(data, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok;
}

/* the model's tensors as raw f32 files named after the tensor without ".weight" */
static bool export_model(const pf_model *m, const char *dir) {
    const pf_gguf *g = pf_model_gguf(m);
    pf_compute *c = NULL;
    if (pf_compute_create(2, PF_ISA_AUTO, &c, NULL) != PF_OK) return false;
    bool ok = true;
    for (int64_t i = 0; i < pf_gguf_n_tensors(g) && ok; i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(g, i);
        const int64_t n = pf_tensor_nelements(ti), rows = n / ti->ne[0];
        float *buf = malloc((size_t)n * sizeof *buf);
        ok = buf && pf_dequantize(c, ti->data, ti->type, rows, ti->ne[0], buf, NULL) == PF_OK;
        char name[128];
        snprintf(name, sizeof name, "%s", ti->name);
        char *dot = strstr(name, ".weight");
        if (dot) strcpy(dot, ".f32");
        if (!strcmp(name, "rope_factors_long.f32")) strcpy(name, "rope_ff.f32"); /* rows > n_ctx_orig */
        ok = ok && write_raw(dir, name, buf, (size_t)n * sizeof *buf);
        free(buf);
    }
    pf_compute_free(c);
    return ok;
}

static bool have_torch(void) { return system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0; }

static double rel_max(const float *a, const double *b, int64_t n) {
    double mx = 0, big = 1e-30;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(a[i] - b[i])), big = fmax(big, fabs(b[i]));
    return mx / big;
}

/* full: every weight trains (pf_train_params.full), lr 5e-4 and 10 steps; else LoRA, 20 steps */
static void test_torch(pf_test *T, bool full) {
    if (!have_torch()) {
        const bool required = getenv("PF_REQUIRE_TORCH") && strcmp(getenv("PF_REQUIRE_TORCH"), "1") == 0;
        fprintf(stderr, "%s: PyTorch missing (/usr/bin/python3 -c 'import torch' failed): reference test SKIPPED\n",
                required ? "FAIL" : "SKIP");
        CHECK(T, !required, "PF_REQUIRE_TORCH=1 but torch cannot be imported");
        return;
    }
    char path[256], dir[128];
    pf_model *m = make_model(T, true, "F16", path, sizeof path);
    if (!m) return;
    snprintf(dir, sizeof dir, "%s/torch%s", g_dir, full ? "-full" : "");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    CHECK(T, system(cmd) == 0, "mkdir");
    CHECK(T, export_model(m, dir), "export weights");
    pf_train_params p = small_params();
    p.full = full;
    if (full) p.lr = 5e-4f;
    pf_trainer *tr = NULL;
    pf_error e = {0};
    CHECK(T, pf_trainer_create(m, &p, &tr, &e) == PF_OK, "trainer: %s", e.msg);
    if (!tr) return;
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    enum { MAX_STEPS = 20, ACCUM = 2 };
    const int n_steps = full ? 10 : MAX_STEPS;
    /* B random (as after some training) so that A's gradients at step 0 are not all zero */
    pf_test_rng rng = {99};
    float *w = pf_trainer_params_data(tr);
    const int64_t np = pf_trainer_n_params(tr);
    int64_t n_zero = 0;
    for (int64_t i = 0; i < np && !full; i++) n_zero += w[i] == 0.0f;
    for (int64_t i = 0; i < np && !full; i++)
        if (w[i] == 0.0f) w[i] = 0.05f * pf_test_uniform(&rng);
    CHECK(T, full || n_zero > 0, "B starts at zero");
    CHECK(T, write_raw(dir, "params.f32", w, (size_t)np * sizeof *w), "params");
    static rowbuf rows[MAX_STEPS * ACCUM];
    FILE *f = NULL;
    snprintf(cmd, sizeof cmd, "%s/rows.i32", dir);
    f = fopen(cmd, "wb");
    for (int i = 0; i < n_steps * ACCUM; i++) {
        if (i < 8) make_row(&rows[i], 14 + (i * 7) % 19, 1 + i % 3, &rng); /* 14..32 tokens, 1-3 samples */
        else rows[i] = rows[i % 8]; /* 4 batches seen 5 times each: something to learn */
        rows[i].row = (pf_train_row){rows[i].row.n, rows[i].ids, rows[i].tg, rows[i].pos, rows[i].seg};
        int32_t n = (int32_t)rows[i].row.n;
        fwrite(&n, 4, 1, f);
        fwrite(rows[i].ids, 4, (size_t)n, f), fwrite(rows[i].tg, 4, (size_t)n, f);
        fwrite(rows[i].pos, 4, (size_t)n, f), fwrite(rows[i].seg, 4, (size_t)n, f);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/hparams.txt", dir);
    f = fopen(cmd, "w");
    fprintf(f, "n_layer %lld\nn_embd %lld\nn_ff %lld\nn_head %lld\nn_head_kv %lld\nhead_dim %lld\nn_rot %lld\n",
            (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_ff, (long long)hp->n_head,
            (long long)hp->n_head_kv, (long long)hp->head_dim, (long long)hp->n_rot);
    fprintf(f, "n_vocab %lld\nrms_eps %.9g\nrope_theta %.9g\nrope_attn_factor %.9g\nhas_ff %d\n", (long long)hp->n_vocab,
            (double)hp->rms_eps, (double)hp->rope_theta, (double)hp->rope_attn_factor, p.seq_len > hp->n_ctx_orig);
    fprintf(f, "rank %d\nalpha %.9g\nrslora %d\ntargets %u\nlr %.9g\nbeta1 %.9g\nbeta2 %.9g\neps %.9g\nwd %.9g\n",
            p.rank, (double)p.alpha, p.rslora, p.targets, (double)p.lr, (double)p.beta1, (double)p.beta2, (double)p.eps,
            (double)p.weight_decay);
    fprintf(f, "clip %.9g\nwarmup %lld\ntotal %lld\nschedule %d\nsteps %d\naccum %d\nfull %d\n", (double)p.clip,
            (long long)p.warmup, (long long)p.total_steps, (int)p.schedule, n_steps, ACCUM, (int)full);
    fclose(f);
    CHECK(T, hp->has_rope_factors && hp->n_head_kv < hp->n_head && hp->rope_attn_factor > 1.0f, "GQA + LongRoPE model");

    /* C side: gradients at step 0 (before clipping), then 20 steps */
    double losses[MAX_STEPS];
    float *g0 = malloc((size_t)np * sizeof *g0);
    {
        int64_t ntok = n_targets(&rows[0].row) + n_targets(&rows[1].row);
        double l0, l1;
        pf_trainer_accumulate(tr, &rows[0].row, (double)ntok, &l0, &e);
        pf_trainer_accumulate(tr, &rows[1].row, (double)ntok, &l1, &e);
        memcpy(g0, pf_trainer_grads_data(tr), (size_t)np * sizeof *g0);
        pf_train_step_stats st;
        pf_trainer_step(tr, l0 + l1, ntok, &st, &e);
        losses[0] = st.loss;
        CHECK(T, st.lr == 0.0, "warmup: step 0 runs at lr 0 (as HF)");
    }
    for (int s = 1; s < n_steps; s++) losses[s] = train_step(T, tr, &rows[s * ACCUM], ACCUM);

    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/train_reference.py %s", dir);
    const int rc = system(cmd);
    CHECK(T, rc == 0, "%s failed (%d)", cmd, rc);
    size_t sz = 0;
    snprintf(cmd, sizeof cmd, "%s/grads0.f64", dir);
    double *gr = pf_test_read_file(cmd, &sz);
    snprintf(cmd, sizeof cmd, "%s/losses.f64", dir);
    size_t szl = 0;
    double *lr = pf_test_read_file(cmd, &szl);
    CHECK(T, gr && sz == (size_t)np * 8 && lr && szl == (size_t)n_steps * 8, "reference outputs (%zu, %zu bytes)", sz, szl);
    if (gr && sz == (size_t)np * 8 && lr && szl == (size_t)n_steps * 8) {
        const double rg = rel_max(g0, gr, np);
        printf("torch reference%s: step-0 %s gradients max rel diff %.2e over %lld values\n", full ? " (full)" : "",
               full ? "weight" : "adapter", rg, (long long)np);
        CHECK(T, rg < 1e-4, "gradients vs PyTorch: rel %g", rg);
        double worst = 0;
        for (int s = 0; s < n_steps; s++) worst = fmax(worst, fabs(losses[s] - lr[s]) / fabs(lr[s]));
        printf("torch reference%s: loss %.6f -> %.6f (torch %.6f -> %.6f), worst step rel diff %.2e\n",
               full ? " (full)" : "", losses[0],
               losses[n_steps - 1], lr[0], lr[n_steps - 1], worst);
        CHECK(T, worst < 1e-4, "loss curve vs PyTorch: worst rel %g", worst);
        CHECK(T, losses[n_steps - 1] < losses[0], "loss decreases (%g -> %g)", losses[0], losses[n_steps - 1]);
    }
    free(gr), free(lr), free(g0);
    pf_trainer_free(tr);
    pf_model_free(m);
}

/* ---- init, checkpointing, accumulation = packing ------------------------------------------ */

static void test_init_and_equivalences(pf_test *T, pf_model *m) {
    pf_train_params p = small_params();
    pf_error e = {0};
    pf_trainer *a = NULL, *b = NULL;
    CHECK(T, pf_trainer_create(m, &p, &a, &e) == PF_OK, "trainer: %s", e.msg);
    p.grad_checkpoint = true;
    CHECK(T, pf_trainer_create(m, &p, &b, &e) == PF_OK, "trainer (checkpointing): %s", e.msg);
    if (!a || !b) return;
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    const int64_t E = hp->n_embd, r = p.rank;
    /* layout: per layer qkv, o, gate_up, down; A (r × n_in) then B (n_out × r) */
    const int64_t n_in[4] = {E, E, E, hp->n_ff}, n_out[4] = {E + 2 * hp->n_head_kv * hp->head_dim, E, 2 * hp->n_ff, E};
    int64_t off = 0, bad_a = 0, bad_b = 0;
    double sum_a = 0;
    const float *w = pf_trainer_params_data(a);
    for (int64_t il = 0; il < hp->n_layer; il++)
        for (int k = 0; k < 4; k++) {
            const float bound = 1.0f / sqrtf((float)n_in[k]);
            for (int64_t i = 0; i < r * n_in[k]; i++) bad_a += fabsf(w[off + i]) > bound, sum_a += w[off + i] / bound;
            off += r * n_in[k];
            for (int64_t i = 0; i < n_out[k] * r; i++) bad_b += w[off + i] != 0.0f;
            off += n_out[k] * r;
        }
    CHECK(T, off == pf_trainer_n_params(a), "layout covers %lld params", (long long)pf_trainer_n_params(a));
    CHECK(T, bad_a == 0 && bad_b == 0, "init: A within ±1/sqrt(n_in) (%lld out), B = 0 (%lld nonzero)",
          (long long)bad_a, (long long)bad_b);
    CHECK(T, fabs(sum_a / (double)off) < 0.05, "A centred (mean/bound %g)", sum_a / (double)off);
    CHECK(T, !memcmp(w, pf_trainer_params_data(b), (size_t)off * sizeof *w), "same seed, same init");

    /* a nonzero B so every gradient path carries signal */
    pf_test_rng rng = {5};
    float *wa = pf_trainer_params_data(a), *wb = pf_trainer_params_data(b);
    for (int64_t i = 0; i < off; i++)
        if (wa[i] == 0.0f) wa[i] = wb[i] = 0.05f * pf_test_uniform(&rng);
    rowbuf r1, r2, both;
    make_row(&r1, 13, 1, &rng);
    make_row(&r2, 17, 1, &rng);
    const int64_t ntok = n_targets(&r1.row) + n_targets(&r2.row);
    double la, lb, l2, lsum_a = 0;
    pf_trainer_accumulate(a, &r1.row, (double)ntok, &la, &e), lsum_a += la;
    pf_trainer_accumulate(a, &r2.row, (double)ntok, &la, &e), lsum_a += la;
    pf_trainer_accumulate(b, &r1.row, (double)ntok, &lb, &e);
    pf_trainer_accumulate(b, &r2.row, (double)ntok, &l2, &e);
    CHECK(T, !memcmp(pf_trainer_grads_data(a), pf_trainer_grads_data(b), (size_t)off * sizeof(float)),
          "gradient checkpointing: same gradients bit for bit");
    /* one packed row holding both samples (seg 0 | seg 1, positions restarting) */
    memcpy(both.ids, r1.ids, 13 * 4), memcpy(both.ids + 13, r2.ids, 17 * 4);
    memcpy(both.tg, r1.tg, 13 * 4), memcpy(both.tg + 13, r2.tg, 17 * 4);
    memcpy(both.pos, r1.pos, 13 * 4), memcpy(both.pos + 13, r2.pos, 17 * 4);
    for (int i = 0; i < 30; i++) both.seg[i] = i < 13 ? 4 : 9;
    both.row = (pf_train_row){30, both.ids, both.tg, both.pos, both.seg};
    float *g_acc = malloc((size_t)off * sizeof *g_acc);
    memcpy(g_acc, pf_trainer_grads_data(b), (size_t)off * sizeof *g_acc);
    memset(pf_trainer_grads_data(b), 0, (size_t)off * sizeof(float));
    pf_trainer_accumulate(b, &both.row, (double)ntok, &lb, &e);
    double diff = 0, big = 0;
    const float *gp = pf_trainer_grads_data(b);
    for (int64_t i = 0; i < off; i++) diff = fmax(diff, fabs(gp[i] - g_acc[i])), big = fmax(big, fabs(g_acc[i]));
    CHECK(T, diff <= 1e-5 * big, "two accumulated rows = one packed row: rel %g", diff / big);
    CHECK(T, fabs(lb - lsum_a) < 1e-4 * lsum_a, "same summed loss (%g vs %g)", lb, lsum_a);
    free(g_acc);
    pf_trainer_free(a), pf_trainer_free(b);
}

/* ---- checkpoint and resume ---------------------------------------------------------------- */

static void test_resume(pf_test *T, pf_model *m) {
    pf_train_params p = small_params();
    p.dropout = 0.1f, p.warmup = 1, p.total_steps = 6;
    pf_error e = {0};
    enum { STEPS = 6, ACCUM = 2 };
    static rowbuf rows[STEPS * ACCUM];
    pf_test_rng rng = {31};
    for (int i = 0; i < STEPS * ACCUM; i++) make_row(&rows[i], 10 + i % 9, 1 + i % 2, &rng);
    double full[STEPS], part[STEPS];
    pf_trainer *a = NULL;
    CHECK(T, pf_trainer_create(m, &p, &a, &e) == PF_OK, "trainer: %s", e.msg);
    if (!a) return;
    for (int s = 0; s < STEPS; s++) full[s] = train_step(T, a, &rows[s * ACCUM], ACCUM);
    pf_trainer *b = NULL, *c = NULL;
    pf_trainer_create(m, &p, &b, &e);
    for (int s = 0; s < 3; s++) part[s] = train_step(T, b, &rows[s * ACCUM], ACCUM);
    char ck[128];
    snprintf(ck, sizeof ck, "%s/ckpt.bin", g_dir);
    pf_train_position pos = {.epoch = 2, .next = 6, .extra = {7, 8, 9, 10}}, got = {0};
    CHECK(T, pf_trainer_save(b, ck, &pos, &e) == PF_OK, "save: %s", e.msg);
    pf_trainer_free(b);
    pf_train_params p2 = p;
    p2.seed = 11; /* the same seed is part of the configuration, as --resume reuses it */
    pf_trainer_create(m, &p2, &c, &e);
    CHECK(T, pf_trainer_load(c, ck, &got, &e) == PF_OK, "load: %s", e.msg);
    CHECK(T, got.epoch == 2 && got.next == 6 && got.extra[3] == 10, "data position restored");
    CHECK(T, pf_trainer_steps_done(c) == 3, "step restored");
    for (int s = 3; s < STEPS; s++) part[s] = train_step(T, c, &rows[s * ACCUM], ACCUM);
    int same = 0;
    for (int s = 0; s < STEPS; s++) same += full[s] == part[s];
    CHECK(T, same == STEPS, "resumed loss curve equals the uninterrupted one bit for bit (%d of %d)", same, STEPS);
    CHECK(T, !memcmp(pf_trainer_params_data(a), pf_trainer_params_data(c),
                     (size_t)pf_trainer_n_params(a) * sizeof(float)), "same adapters after resume");

    /* bad checkpoints: other rank, truncated, not a checkpoint — and the trainer is unchanged */
    pf_train_params p3 = p;
    p3.rank = 2;
    pf_trainer *d = NULL;
    pf_trainer_create(m, &p3, &d, &e);
    CHECK(T, pf_trainer_load(d, ck, NULL, &e) == PF_ERR_FORMAT && strstr(e.msg, "rank"), "rank mismatch: %s", e.msg);
    pf_trainer_free(d);
    char cut[160];
    snprintf(cut, sizeof cut, "truncate -s -100 %s", ck);
    CHECK(T, system(cut) == 0, "truncate");
    float before = pf_trainer_params_data(c)[0];
    CHECK(T, pf_trainer_load(c, ck, NULL, &e) == PF_ERR_FORMAT && strstr(e.msg, "truncated"), "truncated: %s", e.msg);
    CHECK(T, pf_trainer_params_data(c)[0] == before && pf_trainer_steps_done(c) == STEPS, "failed load changes nothing");
    CHECK(T, pf_trainer_load(c, "tests/data/phi3-tiny-f16.gguf", NULL, &e) == PF_ERR_FORMAT && strstr(e.msg, "magic"),
          "not a checkpoint: %s", e.msg);
    pf_trainer_free(a), pf_trainer_free(c);
}

/* ---- dropout: gradients of the training-mode loss (fixed mask) vs finite differences ------- */

/* With dropout the training loss depends on the mask, a function of the row counter; replaying
 * the same counter gives the same mask, so central differences of the (float) training loss
 * check the dropout path of the backward: the entries with the largest gradients, h = 2e-2. */
static void test_dropout_grad(pf_test *T, pf_model *m) {
    pf_train_params p = small_params();
    p.dropout = 0.3f;
    pf_error e = {0};
    pf_trainer *t = NULL;
    CHECK(T, pf_trainer_create(m, &p, &t, &e) == PF_OK, "trainer: %s", e.msg);
    if (!t) return;
    pf_test_rng rng = {1234};
    float *w = pf_trainer_params_data(t), *g = pf_trainer_grads_data(t);
    const int64_t np = pf_trainer_n_params(t);
    for (int64_t i = 0; i < np; i++)
        if (w[i] == 0.0f) w[i] = 0.2f * pf_test_uniform(&rng);
    rowbuf r;
    make_row(&r, 24, 2, &rng);
    double l0, lp, lm;
    t->n_micro = 5;
    pf_trainer_accumulate(t, &r.row, 1.0, &l0, &e);
    float *g0 = malloc((size_t)np * sizeof *g0);
    memcpy(g0, g, (size_t)np * sizeof *g0);
    int64_t pick[8] = {0};
    for (int k = 0; k < 8; k++) /* the 8 largest |gradients| */
        for (int64_t i = 0; i < np; i++) {
            bool used = false;
            for (int q = 0; q < k; q++) used |= pick[q] == i;
            if (!used && fabsf(g0[i]) > fabsf(g0[pick[k]])) pick[k] = i;
        }
    double worst = 0;
    for (int k = 0; k < 8; k++) {
        const int64_t i = pick[k];
        const float w0 = w[i], h = 2e-2f;
        w[i] = w0 + h, t->n_micro = 5;
        pf_trainer_eval(t, &r.row, &lp, &(int64_t){0}, &e); /* eval: no dropout — must differ */
        const double l_nodrop = lp;
        pf_trainer_accumulate(t, &r.row, 1.0, &lp, &e);
        w[i] = w0 - h, t->n_micro = 5;
        pf_trainer_accumulate(t, &r.row, 1.0, &lm, &e);
        w[i] = w0;
        const double fd = (lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(fd - g0[i]) / fabs(g0[i]));
        if (k == 0) CHECK(T, fabs(l_nodrop - lp) > 1e-3, "dropout changes the training loss");
    }
    printf("dropout 0.3: 8 largest gradients vs finite differences, worst rel %.2e\n", worst);
    CHECK(T, worst < 2e-2, "dropout gradients vs finite differences: worst rel %g", worst);
    free(g0);
    pf_trainer_free(t);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void test_errors(pf_test *T, pf_model *m) {
    pf_train_params p = small_params();
    pf_error e = {0};
    pf_trainer *t = NULL;
    p.rank = 0;
    CHECK(T, pf_trainer_create(m, &p, &t, &e) == PF_ERR_ARG && strstr(e.msg, "rank"), "rank 0: %s", e.msg);
    p = small_params(), p.dropout = 1.0f;
    CHECK(T, pf_trainer_create(m, &p, &t, &e) == PF_ERR_ARG && strstr(e.msg, "dropout"), "dropout 1: %s", e.msg);
    p = small_params(), p.seq_len = 1 << 20;
    CHECK(T, pf_trainer_create(m, &p, &t, &e) == PF_ERR_ARG && strstr(e.msg, "seq_len"), "seq_len: %s", e.msg);
    p = small_params();
    CHECK(T, pf_trainer_create(m, &p, &t, &e) == PF_OK, "trainer: %s", e.msg);
    if (!t) return;
    pf_test_rng rng = {3};
    rowbuf r;
    make_row(&r, 12, 2, &rng);
    double l;
    r.ids[5] = 40000;
    CHECK(T, pf_trainer_accumulate(t, &r.row, 10, &l, &e) == PF_ERR_ARG && strstr(e.msg, "ids[5]"), "bad id: %s", e.msg);
    r.ids[5] = 3, r.pos[2] = 32;
    CHECK(T, pf_trainer_accumulate(t, &r.row, 10, &l, &e) == PF_ERR_ARG && strstr(e.msg, "pos[2]"), "bad pos: %s", e.msg);
    r.pos[2] = 2, r.tg[1] = -2;
    CHECK(T, pf_trainer_accumulate(t, &r.row, 10, &l, &e) == PF_ERR_ARG && strstr(e.msg, "targets[1]"), "bad target: %s",
          e.msg);
    r.tg[1] = -1, r.row.n = 33;
    CHECK(T, pf_trainer_accumulate(t, &r.row, 10, &l, &e) == PF_ERR_ARG && strstr(e.msg, "seq_len"), "long row: %s", e.msg);
    r.row.n = 12;
    CHECK(T, pf_trainer_accumulate(t, &r.row, 0, &l, &e) == PF_ERR_ARG && strstr(e.msg, "norm"), "norm 0: %s", e.msg);
    pf_trainer_free(t);
}

/* ---- learning-rate schedules (HF formulas) ------------------------------------------------ */

static void test_schedule(pf_test *T) {
    pf_train_params p = pf_train_default_params();
    p.lr = 1.0f, p.warmup = 4, p.total_steps = 14;
    p.schedule = PF_LR_COSINE;
    CHECK(T, pf_trainer_lr_at(&p, 0) == 0.0 && fabs(pf_trainer_lr_at(&p, 2) - 0.5) < 1e-12, "warmup");
    CHECK(T, fabs(pf_trainer_lr_at(&p, 4) - 1.0) < 1e-12 && fabs(pf_trainer_lr_at(&p, 9) - 0.5) < 1e-12 &&
                 fabs(pf_trainer_lr_at(&p, 14)) < 1e-12, "cosine");
    p.schedule = PF_LR_LINEAR;
    CHECK(T, fabs(pf_trainer_lr_at(&p, 9) - 0.5) < 1e-12 && pf_trainer_lr_at(&p, 20) == 0.0, "linear");
    p.schedule = PF_LR_CONSTANT;
    CHECK(T, pf_trainer_lr_at(&p, 13) == 1.0, "constant");
}

/* ---- the trained adapter through the inference path --------------------------------------- */

/* Train a few steps, write the adapter (llama.cpp GGUF), load it with pf_lora_load and attach it
 * to an inference context: the cross-entropy of a sample computed from pf_decode's logits must
 * equal the trainer's own evaluation of it (two independent forward implementations). */
static void test_inference_agrees(pf_test *T, pf_model *m) {
    pf_train_params p = small_params();
    p.lr = 1e-2f;
    pf_error e = {0};
    pf_trainer *tr = NULL;
    CHECK(T, pf_trainer_create(m, &p, &tr, &e) == PF_OK, "trainer: %s", e.msg);
    if (!tr) return;
    pf_test_rng rng = {77};
    static rowbuf rows[4];
    for (int i = 0; i < 4; i++) make_row(&rows[i], 20 + i, 1, &rng);
    for (int s = 0; s < 5; s++) train_step(T, tr, rows, 4);
    double l_train;
    int64_t k;
    CHECK(T, pf_trainer_eval(tr, &rows[0].row, &l_train, &k, &e) == PF_OK, "eval: %s", e.msg);
    pf_lora_weights w;
    char ap[128];
    snprintf(ap, sizeof ap, "%s/adapter.gguf", g_dir);
    CHECK(T, pf_trainer_export(tr, &w, &e) == PF_OK, "export: %s", e.msg);
    CHECK(T, w.n == 2 * 4 && w.rank == 4 && !strcmp(w.pairs[0].base, "blk.0.attn_qkv.weight"), "exported pairs");
    CHECK(T, pf_lora_save_gguf(&w, m, ap, PF_TYPE_F32, &e) == PF_OK, "save adapter: %s", e.msg);
    pf_lora_weights_clear(&w);
    pf_lora *ad = NULL;
    CHECK(T, pf_lora_load(ap, m, &ad, &e) == PF_OK, "pf_lora_load: %s", e.msg);
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = 64, cp.kv_type = PF_TYPE_F32, cp.n_threads = 2; /* 64 > 16: LongRoPE long factors, as the trainer */
    pf_context *ctx = NULL;
    CHECK(T, pf_context_create(m, &cp, &ctx, &e) == PF_OK, "context: %s", e.msg);
    if (ad && ctx) {
        CHECK(T, pf_context_set_lora(ctx, &ad, NULL, 1, &e) == PF_OK, "attach: %s", e.msg);
        const int64_t n = rows[0].row.n, V = pf_model_get_hparams(m)->n_vocab;
        float *lg = malloc((size_t)(n * V) * sizeof *lg);
        CHECK(T, pf_decode(ctx, rows[0].ids, n, 0, lg, PF_LOGITS_ALL, &e) == PF_OK, "decode: %s", e.msg);
        double l_inf = 0;
        for (int64_t t = 0; t < n; t++) {
            if (rows[0].tg[t] < 0) continue;
            const float *r = lg + t * V;
            double mx = r[0], s = 0;
            for (int64_t i = 1; i < V; i++) mx = fmax(mx, r[i]);
            for (int64_t i = 0; i < V; i++) s += exp(r[i] - mx);
            l_inf += mx + log(s) - r[rows[0].tg[t]];
        }
        printf("adapter via inference: loss %.6f, trainer %.6f\n", l_inf / (double)k, l_train / (double)k);
        CHECK(T, fabs(l_inf - l_train) < 1e-4 * l_train, "inference with the saved adapter: loss %.7g vs trainer %.7g",
              l_inf, l_train);
        free(lg);
    }
    pf_context_free(ctx);
    pf_lora_free(ad);
    pf_trainer_free(tr);
}

/* ---- full fine-tuning: saved model, resume, checkpointing, refusals ------------------------ */

/* cross-entropy (summed over the row's targets) of a model file through the inference path */
static double infer_loss(pf_test *T, const pf_model *m, const rowbuf *r) {
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = 64, cp.kv_type = PF_TYPE_F32, cp.n_threads = 2; /* 64 > 16: the long factors, as the trainer */
    pf_context *ctx = NULL;
    pf_error e = {0};
    CHECK(T, pf_context_create(m, &cp, &ctx, &e) == PF_OK, "context: %s", e.msg);
    if (!ctx) return NAN;
    const int64_t n = r->row.n, V = pf_model_get_hparams(m)->n_vocab;
    float *lg = malloc((size_t)(n * V) * sizeof *lg);
    CHECK(T, pf_decode(ctx, r->ids, n, 0, lg, PF_LOGITS_ALL, &e) == PF_OK, "decode: %s", e.msg);
    double l = 0;
    for (int64_t t = 0; t < n; t++) {
        if (r->tg[t] < 0) continue;
        const float *x = lg + t * V;
        double mx = x[0], s = 0;
        for (int64_t i = 1; i < V; i++) mx = fmax(mx, x[i]);
        for (int64_t i = 0; i < V; i++) s += exp(x[i] - mx);
        l += mx + log(s) - x[r->tg[t]];
    }
    free(lg);
    pf_context_free(ctx);
    return l;
}

static void test_full(pf_test *T, pf_model *m) {
    pf_train_params p = small_params();
    p.full = true, p.lr = 1e-3f, p.warmup = 1, p.total_steps = 4;
    pf_error e = {0};
    enum { STEPS = 4, ACCUM = 2 };
    static rowbuf rows[STEPS * ACCUM];
    pf_test_rng rng = {57};
    for (int i = 0; i < STEPS * ACCUM; i++) make_row(&rows[i], 12 + i % 7, 1 + i % 2, &rng);
    pf_trainer *a = NULL, *b = NULL, *c = NULL, *k = NULL;
    CHECK(T, pf_trainer_create(m, &p, &a, &e) == PF_OK, "full trainer: %s", e.msg);
    if (!a) return;
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    const int64_t L = hp->n_layer, E = hp->n_embd, Q = E + 2 * hp->n_head_kv * hp->head_dim;
    const int64_t n_w = (2 * L + 1) * E + L * (Q * E + E * E + 2 * hp->n_ff * E + E * hp->n_ff) + 2 * hp->n_vocab * E;
    CHECK(T, pf_trainer_n_params(a) == n_w, "every weight trains: %lld floats (want %lld)",
          (long long)pf_trainer_n_params(a), (long long)n_w);

    /* gradient checkpointing: the same weight gradients bit for bit */
    pf_train_params pk = p;
    pk.grad_checkpoint = true;
    CHECK(T, pf_trainer_create(m, &pk, &k, &e) == PF_OK, "full + checkpointing: %s", e.msg);
    double l1, l2;
    pf_trainer_accumulate(a, &rows[0].row, 10.0, &l1, &e);
    pf_trainer_accumulate(k, &rows[0].row, 10.0, &l2, &e);
    CHECK(T, l1 == l2 && !memcmp(pf_trainer_grads_data(a), pf_trainer_grads_data(k), (size_t)n_w * sizeof(float)),
          "checkpointing: same loss and gradients");
    pf_trainer_free(k);
    memset(pf_trainer_grads_data(a), 0, (size_t)n_w * sizeof(float));

    /* resume: 2 steps, checkpoint, a new trainer loads it, 2 more = 4 uninterrupted steps */
    double full[STEPS], part[STEPS];
    for (int s = 0; s < STEPS; s++) full[s] = train_step(T, a, &rows[s * ACCUM], ACCUM);
    pf_trainer_create(m, &p, &b, &e);
    for (int s = 0; s < 2; s++) part[s] = train_step(T, b, &rows[s * ACCUM], ACCUM);
    char ck[160], out[160];
    snprintf(ck, sizeof ck, "%s/full-ckpt.bin", g_dir);
    CHECK(T, b && pf_trainer_save(b, ck, NULL, &e) == PF_OK, "save: %s", e.msg);
    pf_trainer_free(b);
    pf_trainer_create(m, &p, &c, &e);
    CHECK(T, c && pf_trainer_load(c, ck, NULL, &e) == PF_OK, "load: %s", e.msg);
    if (!c) return pf_trainer_free(a);
    for (int s = 2; s < STEPS; s++) part[s] = train_step(T, c, &rows[s * ACCUM], ACCUM);
    int same = 0;
    for (int s = 0; s < STEPS; s++) same += full[s] == part[s];
    CHECK(T, same == STEPS, "full: resumed loss curve equals the uninterrupted one bit for bit (%d of %d)", same, STEPS);
    CHECK(T, !memcmp(pf_trainer_params_data(a), pf_trainer_params_data(c), (size_t)n_w * sizeof(float)),
          "full: same weights after resume");
    pf_lora_weights w;
    CHECK(T, pf_trainer_export(c, &w, &e) == PF_ERR_ARG && strstr(e.msg, "no adapters"), "export refused: %s", e.msg);

    /* the saved model: same layout, types and metadata as the base; its logits (through
     * pf_decode, an independent forward) give the trainer's own loss */
    snprintf(out, sizeof out, "%s/full.gguf", g_dir);
    CHECK(T, pf_trainer_save_model(c, out, &e) == PF_OK, "save model: %s", e.msg);
    pf_model *fm = NULL;
    CHECK(T, pf_model_load(out, &fm, &e) == PF_OK, "load the saved model: %s", e.msg);
    if (fm) {
        const pf_gguf *g0 = pf_model_gguf(m), *g1 = pf_model_gguf(fm);
        bool layout = pf_gguf_n_tensors(g0) == pf_gguf_n_tensors(g1) && pf_gguf_n_kv(g0) == pf_gguf_n_kv(g1);
        for (int64_t i = 0; layout && i < pf_gguf_n_tensors(g0); i++) {
            const pf_tensor_info *x = pf_gguf_tensor(g0, i), *y = pf_gguf_tensor(g1, i);
            layout = !strcmp(x->name, y->name) && x->type == y->type && x->ne[0] == y->ne[0] && x->ne[1] == y->ne[1];
        }
        CHECK(T, layout, "saved model: same tensors (names, types, shapes, order) and metadata count as the base");
        const int64_t qi = pf_gguf_find_tensor(g1, "blk.0.attn_qkv.weight");
        const float *qkv = pf_trainer_params_data(c) + (2 * L + 1) * E; /* documented order: norms first */
        CHECK(T, qi >= 0 && !memcmp(pf_gguf_tensor(g1, qi)->data, qkv, (size_t)(Q * E) * sizeof(float)) &&
                     memcmp(pf_gguf_tensor(g0, qi)->data, qkv, (size_t)(Q * E) * sizeof(float)),
              "saved qkv = the trained f32 weights (and differs from the base)");
        double lt;
        int64_t nt;
        CHECK(T, pf_trainer_eval(c, &rows[0].row, &lt, &nt, &e) == PF_OK, "eval: %s", e.msg);
        const double li = infer_loss(T, fm, &rows[0]);
        printf("full fine-tuning: saved model via inference: loss %.6f, trainer %.6f\n", li / (double)nt,
               lt / (double)nt);
        CHECK(T, fabs(li - lt) < 1e-4 * lt, "saved model's logits: loss %.7g vs trainer %.7g", li, lt);
        pf_model_free(fm);
    }
    pf_trainer_free(a), pf_trainer_free(c);

    /* refusals: quantized weights (the tensor is named), dropout */
    char qpath[256];
    pf_model *qm = make_model(T, false, "Q8_0", qpath, sizeof qpath);
    pf_trainer *q = NULL;
    CHECK(T, qm && pf_trainer_create(qm, &p, &q, &e) == PF_ERR_UNSUPPORTED && strstr(e.msg, "Q8_0") &&
                 strstr(e.msg, ".weight") && q == NULL, "quantized model refused: %s", e.msg);
    pf_model_free(qm);
    p.dropout = 0.1f;
    CHECK(T, pf_trainer_create(m, &p, &q, &e) == PF_ERR_ARG && strstr(e.msg, "dropout"), "dropout refused: %s", e.msg);
}

/* ---- demonstration: `phiforge finetune` teaches the tiny model a small domain set ---------- */

/* The tiny preset (random weights, Q8_0 base) fine-tuned on tests/data/finetune-chat.jsonl
 * (12 HX-200 service conversations, loss on the assistant answers only). Before training the
 * model is no better than chance: ln(32064) = 10.38. The threshold 6.0 means the answers'
 * tokens get on average e^4.4 ≈ 80 times the uniform probability: the adapter has learned these
 * samples (a release run reaches ~4.5 after 40 steps; 30 steps here keep the test short). */
static void test_demo(pf_test *T) {
    char model[256], cmd[1024], out[256];
    pf_model *m = make_model(T, false, "Q8_0", model, sizeof model);
    pf_model_free(m);
    snprintf(out, sizeof out, "%s/demo", g_dir);
    snprintf(cmd, sizeof cmd,
             "./build/phiforge finetune -m %s --data tests/data/finetune-chat.jsonl -o %s --rank 16 --alpha 32 "
             "--lr 1e-2 --epochs 30 --seq 128 --accum 6 --warmup 3 -t 2 --json 2>/dev/null",
             model, out);
    FILE *f = popen(cmd, "r");
    char line[1024] = "";
    CHECK(T, f && fgets(line, sizeof line, f), "finetune printed a summary");
    CHECK(T, f && pclose(f) == 0, "finetune exit status 0");
    const char *fl = strstr(line, "\"first_loss\":"), *ll = strstr(line, "\"last_loss\":");
    CHECK(T, fl && ll, "summary has the losses: %s", line);
    if (!fl || !ll) return;
    const double first = atof(fl + 13), last = atof(ll + 12);
    printf("demo: finetune loss %.3f -> %.3f (ln V = %.3f)\n", first, last, log(32064.0));
    CHECK(T, first > 9.5, "untrained: about chance (%g)", first);
    CHECK(T, last < 6.0, "trained: loss %g below 6.0", last);
    snprintf(cmd, sizeof cmd, "%s/adapter.gguf", out);
    pf_lora *ad = NULL;
    pf_error e = {0};
    CHECK(T, pf_model_load(model, &m, &e) == PF_OK && pf_lora_load(cmd, m, &ad, &e) == PF_OK, "adapter loads: %s",
          e.msg);
    CHECK(T, ad && pf_lora_n_adapted(ad) == 8, "8 adapted weights");
    pf_lora_free(ad);
    pf_model_free(m);
}

/* ---- the command line: usage, required options, bad data ----------------------------------- */

static void test_cli_errors(pf_test *T) {
    char out[4096], cmd[512], bad[128];
    CHECK(T, pf_test_run("./build/phiforge finetune -h 2>&1", out, sizeof out) == 0 && strstr(out, "usage: phiforge finetune"),
          "finetune -h: %s", out);
    CHECK(T, pf_test_run("./build/phiforge bench-train -h 2>&1", out, sizeof out) == 0 && strstr(out, "usage: phiforge bench-train"),
          "bench-train -h");
    CHECK(T, pf_test_run("./build/phiforge finetune --data x.jsonl 2>&1", out, sizeof out) != 0 && strstr(out, "required"),
          "missing -m: %s", out);
    CHECK(T, pf_test_run("./build/phiforge finetune -m tests/data/phi3-tiny-f16.gguf --data x -o /tmp/x --targets qkv,foo 2>&1",
                     out, sizeof out) != 0 && strstr(out, "--targets"), "bad --targets: %s", out);
    CHECK(T, pf_test_run("./build/phiforge finetune -m tests/data/phi3-tiny-f16.gguf --data tests/data/finetune-chat.jsonl "
                     "-o /tmp/x --full --dropout 0.1 2>&1", out, sizeof out) != 0 && strstr(out, "dropout"),
          "--full with dropout: %s", out);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", g_dir);
    FILE *f = fopen(bad, "w");
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n"
          "{\"messages\": 3, oops\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "./build/phiforge finetune -m tests/data/phi3-tiny-f16.gguf --data %s -o %s/o 2>&1", bad,
             g_dir);
    char want[160];
    snprintf(want, sizeof want, "%s:2", bad);
    CHECK(T, pf_test_run(cmd, out, sizeof out) != 0 && strstr(out, want), "malformed line 2 is named: %s", out);
}

int main(void) {
    pf_test T = {0};
    snprintf(g_dir, sizeof g_dir, "/tmp/pf_train_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    test_schedule(&T);
    test_torch(&T, false);
    test_torch(&T, true);
    char path[256];
    pf_model *m = make_model(&T, true, "F32", path, sizeof path);
    if (m) {
        test_init_and_equivalences(&T, m);
        test_resume(&T, m);
        test_errors(&T, m);
        test_dropout_grad(&T, m);
        test_inference_agrees(&T, m);
        test_full(&T, m);
        pf_model_free(m);
    }
    test_demo(&T);
    test_cli_errors(&T);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return TEST_REPORT(&T);
}
