/* QLoRA (pf_train_params.qlora) on the tiny Phi-3 (tests/data/phi3-tiny-f16.gguf) and the
 * HX-200 domain set (tests/data/finetune-chat.jsonl, one conversation per row):
 *   - the QLoRA trainer equals a LoRA trainer on a base whose linears are the NF4 tensors
 *     dequantized to F32 (losses and gradients, 1e-4 relative: only the kernels' summation order
 *     differs), so the NF4 kernels are wired into forward and backward correctly;
 *   - quality: the QLoRA and LoRA (F16 base) loss curves agree within a bound derived from the
 *     measured logit perturbation of the base (see quality_bound below);
 *   - the exported adapter applies (pf_lora_load, inference) to the NF4-dequantized base with the
 *     trainer's loss exactly, and to the original F16 base and a Q8_0 copy within the measured
 *     bound of each base's logit perturbation;
 *   - the NF4 base takes ≈ 4.127 bits per weight; a quantized source gives the requantized count;
 *   - the trainer's NF4 copy is what the pages were dropped for: the mapping is not needed after. */
#include <math.h>
#include <unistd.h>

#include "testing.h"
#include "train/trainer.h" /* the NF4 tensors of a QLoRA trainer; pf_model's linears */

static char g_dir[64];
#define SEQ 128
#define MAX_ROWS 32

typedef struct data {
    pf_dataset *ds;
    pf_train_row rows[MAX_ROWS];
    int64_t n_rows, n_tok;
} data;

static bool load_data(pf_test *T, const pf_model *m, data *d) {
    pf_error e = {0};
    pf_tokenizer *tok = NULL;
    CHECK(T, pf_tokenizer_load(pf_model_gguf(m), &tok, &e) == PF_OK, "tokenizer: %s", e.msg);
    if (!tok) return false;
    const pf_chat_format fmt = pf_chat_format_from_gguf(pf_model_gguf(m));
    pf_data_params dp = pf_data_default_params();
    dp.seq_len = SEQ, dp.pack = false; /* one conversation per row: inference can replay each row */
    pf_dataset *unused = NULL;
    int rc = pf_dataset_load("tests/data/finetune-chat.jsonl", tok, &fmt, &dp, &d->ds, &unused, &e);
    pf_dataset_free(unused);
    pf_tokenizer_free(tok);
    CHECK(T, rc == PF_OK, "dataset: %s", e.msg);
    if (rc != PF_OK) return false;
    d->n_rows = pf_dataset_n_rows(d->ds);
    CHECK(T, d->n_rows >= 8 && d->n_rows <= MAX_ROWS, "%lld rows", (long long)d->n_rows);
    if (d->n_rows > MAX_ROWS) d->n_rows = MAX_ROWS;
    for (int64_t i = 0; i < d->n_rows; i++) CHECK(T, pf_dataset_row(d->ds, i, &d->rows[i], &e) == PF_OK, "row: %s", e.msg);
    d->n_tok = pf_dataset_n_target_tokens(d->ds);
    return true;
}

static pf_train_params params(bool qlora) {
    pf_train_params p = pf_train_default_params();
    p.rank = 8, p.alpha = 16.0f, p.seq_len = SEQ, p.n_threads = 2, p.lr = 1e-2f, p.warmup = 1, p.total_steps = 16;
    p.seed = 5, p.qlora = qlora;
    return p;
}

/* One full-batch step (every row accumulated): returns the mean token loss before the step. */
static double step(pf_test *T, pf_trainer *tr, const data *d) {
    pf_error e = {0};
    double sum = 0;
    for (int64_t i = 0; i < d->n_rows; i++) {
        double l = 0;
        CHECK(T, pf_trainer_accumulate(tr, &d->rows[i], (double)d->n_tok, &l, &e) == PF_OK, "accumulate: %s", e.msg);
        sum += l;
    }
    pf_train_step_stats st;
    CHECK(T, pf_trainer_step(tr, sum, d->n_tok, &st, &e) == PF_OK, "step: %s", e.msg);
    return sum / (double)d->n_tok;
}

static double eval(pf_test *T, pf_trainer *tr, const data *d) {
    pf_error e = {0};
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < d->n_rows; i++) {
        double l = 0;
        int64_t k = 0;
        CHECK(T, pf_trainer_eval(tr, &d->rows[i], &l, &k, &e) == PF_OK, "eval: %s", e.msg);
        sum += l, n += k;
    }
    return sum / (double)n;
}

/* Points the block linears of `m` at F32 copies of the trainer's NF4 tensors (the base QLoRA
 * actually trains on). Returns the buffers to free. */
static float **use_dequantized_base(pf_test *T, pf_model *m, const pf_trainer *tq) {
    const int64_t L = tq->hp.n_layer;
    float **bufs = calloc((size_t)(L * N_MOD), sizeof *bufs);
    for (int64_t il = 0; il < L; il++) {
        pf_linear *ls[N_MOD] = {&m->layers[il].qkv, &m->layers[il].o, &m->layers[il].up, &m->layers[il].down};
        for (int k = 0; k < N_MOD; k++) {
            const pf_nf4_tensor *q = &tq->nf4[il * N_MOD + k];
            float *w = bufs[il * N_MOD + k] = malloc((size_t)(q->n_out * q->n_in) * sizeof(float));
            pf_error e = {0};
            CHECK(T, pf_nf4_dequantize_rows(q, 0, q->n_out, w, &e) == PF_OK, "dequantize: %s", e.msg);
            ls[k]->w = w, ls[k]->type = PF_TYPE_F32;
        }
    }
    return bufs;
}

/* Per-row inference over the data with an optional adapter: mean token loss, and the logits of
 * every target position (n_tok × V) into z. */
static double infer(pf_test *T, const pf_model *m, pf_lora *ad, const data *d, float *z) {
    pf_error e = {0};
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = SEQ, cp.kv_type = PF_TYPE_F32, cp.n_threads = 2;
    pf_context *ctx = NULL;
    CHECK(T, pf_context_create(m, &cp, &ctx, &e) == PF_OK, "context: %s", e.msg);
    if (!ctx) return NAN;
    if (ad) CHECK(T, pf_context_set_lora(ctx, &ad, NULL, 1, &e) == PF_OK, "attach: %s", e.msg);
    const int64_t V = pf_model_get_hparams(m)->n_vocab;
    float *lg = malloc((size_t)(SEQ * V) * sizeof *lg);
    double sum = 0;
    int64_t k = 0;
    for (int64_t r = 0; r < d->n_rows; r++) {
        const pf_train_row *row = &d->rows[r];
        CHECK(T, pf_decode(ctx, row->ids, row->n, 0, lg, PF_LOGITS_ALL, &e) == PF_OK, "decode: %s", e.msg);
        for (int64_t t = 0; t < row->n; t++) {
            if (row->targets[t] < 0) continue;
            const float *x = lg + t * V;
            double mx = x[0], s = 0;
            for (int64_t i = 1; i < V; i++) mx = fmax(mx, x[i]);
            for (int64_t i = 0; i < V; i++) s += exp(x[i] - mx);
            sum += mx + log(s) - x[row->targets[t]];
            memcpy(z + k * V, x, (size_t)V * sizeof(float));
            k++;
        }
    }
    free(lg);
    pf_context_free(ctx);
    return sum / (double)k;
}

/* The bound on a loss difference from a logit perturbation d = a − b. Per token,
 *   CE(z) = lse(z) − z_y, and lse(a) − lse(b) = log Σ softmax(b)_i e^{d_i} lies in [min d, max d]
 *   (a mean of e^{d_i}), as does a_y − b_y = d_y; so |CE(a) − CE(b)| ≤ max d − min d
 *   (≤ 2‖d‖∞, and blind to a shift of all logits, which changes no probability).
 * Averaged over the target tokens: |L(a) − L(b)| ≤ mean_t (max d_t − min d_t). */
static double quality_bound(const float *a, const float *b, int64_t n_tok, int64_t V) {
    double s = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        double hi = -INFINITY, lo = INFINITY;
        for (int64_t i = 0; i < V; i++) {
            const double d = (double)a[t * V + i] - (double)b[t * V + i];
            hi = fmax(hi, d), lo = fmin(lo, d);
        }
        s += hi - lo;
    }
    return s / (double)n_tok;
}

static void test_qlora(pf_test *T) {
    pf_error e = {0};
    const char *path = "tests/data/phi3-tiny-f16.gguf";
    pf_model *m = NULL, *mdq = NULL, *m8 = NULL;
    CHECK(T, pf_model_load(path, &m, &e) == PF_OK, "load: %s", e.msg);
    CHECK(T, pf_model_load(path, &mdq, &e) == PF_OK, "load: %s", e.msg);
    data d = {0};
    if (!m || !mdq || !load_data(T, m, &d)) goto out;
    const int64_t V = pf_model_get_hparams(m)->n_vocab;

    pf_trainer *tq = NULL, *tl = NULL, *td = NULL;
    pf_train_params pq = params(true), pl = params(false);
    CHECK(T, pf_trainer_create(m, &pq, &tq, &e) == PF_OK, "QLoRA trainer: %s", e.msg);
    CHECK(T, pf_trainer_create(m, &pl, &tl, &e) == PF_OK, "LoRA trainer: %s", e.msg);
    if (!tq || !tl) goto out;
    pf_qlora_info qi;
    CHECK(T, pf_trainer_qlora_info(tq, &qi, &e) == PF_OK, "info");
    const double bits = 8.0 * (double)qi.nf4_bytes / (double)qi.n_weights;
    printf("NF4 base: %lld tensors, %lld weights, %zu bytes (%.4f bits/weight; F16 %zu bytes), requantized %lld\n",
           (long long)qi.n_tensors, (long long)qi.n_weights, qi.nf4_bytes, bits, qi.src_bytes,
           (long long)qi.n_requantized);
    CHECK(T, qi.n_tensors == 2 * N_MOD && qi.n_requantized == 0, "8 F16 tensors in NF4");
    /* per tensor of n weights: n/2 bytes of codes, n/64 absmax codes, a f32 scale per 256 of
     * those (the last one partial) and the f32 offset: 4 + 8/64 + 32/16384 ≈ 4.127 bits for big
     * tensors; these tiny ones pay more for their partial scale block and offset */
    size_t want = 0;
    for (int64_t i = 0; i < qi.n_tensors; i++) {
        const int64_t n = tq->nf4[i].n_out * tq->nf4[i].n_in, nb = n / 64;
        want += (size_t)(n / 2 + nb + 4 * ((nb + 255) / 256) + 4);
    }
    CHECK(T, qi.nf4_bytes == want, "NF4 bytes %zu, expected %zu", qi.nf4_bytes, want);
    float **bufs = use_dequantized_base(T, mdq, tq);
    CHECK(T, pf_trainer_create(mdq, &pl, &td, &e) == PF_OK, "LoRA trainer on the dequantized base: %s", e.msg);

    /* base logit perturbation (B = 0: the adapters start as the identity) */
    float *z_f16 = malloc((size_t)(d.n_tok * V) * sizeof(float)), *z_nf4 = malloc((size_t)(d.n_tok * V) * sizeof(float));
    const double lb_f16 = infer(T, m, NULL, &d, z_f16), lb_nf4 = infer(T, mdq, NULL, &d, z_nf4);
    const double bound0 = quality_bound(z_f16, z_nf4, d.n_tok, V);

    /* the curves: 8 full-batch steps each */
    enum { STEPS = 16, STEPS_DQ = 3 };
    double cq[STEPS], cl[STEPS], cd[STEPS_DQ];
    for (int s = 0; s < STEPS && td; s++) {
        cq[s] = step(T, tq, &d), cl[s] = step(T, tl, &d);
        if (s >= STEPS_DQ) continue;
        cd[s] = step(T, td, &d);
        CHECK(T, fabs(cq[s] - cd[s]) <= 1e-4 * cd[s], "step %d: QLoRA %.7f vs LoRA on the dequantized NF4 base %.7f", s,
              cq[s], cd[s]);
        if (s == STEPS_DQ - 1) { /* AdamW divides by √v: rounding-level gradient differences move small parameters by
                   * up to ~lr, so the adapters agree to 1e-3 rather than the losses' 1e-4 */
            const int64_t np = pf_trainer_n_params(tq);
            const float *pq_ = pf_trainer_params_data(tq), *pd_ = pf_trainer_params_data(td);
            double num = 0, den = 0;
            for (int64_t i = 0; i < np; i++) num += fabs((double)pq_[i] - pd_[i]), den += fabs((double)pd_[i]);
            CHECK(T, num <= 1e-3 * den, "adapters after %d steps: relative ℓ1 difference %g", STEPS_DQ, num / den);
        }
    }
    CHECK(T, fabs(cq[0] - lb_nf4) < 1e-4 * lb_nf4 && fabs(cl[0] - lb_f16) < 1e-4 * lb_f16,
          "step 0 losses equal inference (%.6f/%.6f, %.6f/%.6f)", cq[0], lb_nf4, cl[0], lb_f16);

    /* the adapter trained with QLoRA, saved and applied by inference */
    const double lq_end = eval(T, tq, &d), ll_end = eval(T, tl, &d);
    pf_lora_weights w;
    char ap[128], q8[512];
    snprintf(ap, sizeof ap, "%s/adapter.gguf", g_dir);
    CHECK(T, pf_trainer_export(tq, &w, &e) == PF_OK, "export: %s", e.msg);
    CHECK(T, pf_lora_save_gguf(&w, m, ap, PF_TYPE_F32, &e) == PF_OK, "save: %s", e.msg);
    pf_lora_weights_clear(&w);
    pf_lora *a16 = NULL, *adq = NULL, *a8 = NULL;
    CHECK(T, pf_lora_load(ap, m, &a16, &e) == PF_OK, "load adapter on F16: %s", e.msg);
    CHECK(T, pf_lora_load(ap, mdq, &adq, &e) == PF_OK, "load adapter on the NF4 base: %s", e.msg);
    snprintf(q8, sizeof q8, "./build/phiforge quantize %s %s/base-q8.gguf Q8_0 >/dev/null 2>&1", path, g_dir);
    CHECK(T, system(q8) == 0, "%s", q8);
    snprintf(q8, sizeof q8, "%s/base-q8.gguf", g_dir);
    CHECK(T, pf_model_load(q8, &m8, &e) == PF_OK, "load Q8_0 copy: %s", e.msg);
    if (m8) CHECK(T, pf_lora_load(ap, m8, &a8, &e) == PF_OK, "load adapter on Q8_0: %s", e.msg);
    float *z8 = malloc((size_t)(d.n_tok * V) * sizeof(float));
    const double li_nf4 = infer(T, mdq, adq, &d, z_nf4), li_f16 = infer(T, m, a16, &d, z_f16);
    const double li_q8 = m8 && a8 ? infer(T, m8, a8, &d, z8) : NAN;
    const double bound_f16 = quality_bound(z_f16, z_nf4, d.n_tok, V), bound_q8 = quality_bound(z8, z_nf4, d.n_tok, V);
    printf("adapter (QLoRA, %d steps): trainer NF4 %.5f | inference NF4 %.5f, F16 %.5f (bound ±%.5f), Q8_0 %.5f "
           "(bound ±%.5f)\n",
           STEPS, lq_end, li_nf4, li_f16, bound_f16, li_q8, bound_q8);
    CHECK(T, fabs(li_nf4 - lq_end) < 1e-4 * lq_end, "adapter on the NF4 base by inference %.7f vs trainer %.7f", li_nf4,
          lq_end);
    CHECK(T, fabs(li_f16 - lq_end) <= bound_f16, "adapter on F16: %.6f vs %.6f, bound %.6f", li_f16, lq_end, bound_f16);
    CHECK(T, fabs(li_q8 - lq_end) <= bound_q8, "adapter on Q8_0: %.6f vs %.6f, bound %.6f", li_q8, lq_end, bound_q8);
    /* the adapter's gain carries over to the other bases: most of what QLoRA learned is kept */
    CHECK(T, lb_f16 - li_f16 > 0.9 * (lb_nf4 - lq_end), "gain on F16 %.4f vs on NF4 %.4f", lb_f16 - li_f16,
          lb_nf4 - lq_end);

    /* Quality. At any step the difference of the two curves splits as
     *   Lq(θq) − Ll(θl) = [Lq(θq) − Ll(θq)]  (the base: NF4 vs F16, same adapter)
     *                   + [Ll(θq) − Ll(θl)]  (the trajectories: the adapters differ).
     * The first term is bounded by quality_bound of the two bases' logits with that adapter —
     * measured at both ends (bound0: B = 0, bound_f16: the trained adapter). The second starts at
     * 0 and grows as the gradients' small differences accumulate; its measured end value (the
     * LoRA trainer evaluated with QLoRA's adapter) bounds it along the run. So the tolerance is
     *   tol = max(bound0, bound_f16) + |Ll(θq,end) − Ll(θl,end)|,
     * exact at step 0 (second term 0) and at the end (triangle inequality). */
    float *pl_ = pf_trainer_params_data(tl);
    const int64_t np = pf_trainer_n_params(tl);
    float *save = malloc((size_t)np * sizeof(float));
    memcpy(save, pl_, (size_t)np * sizeof(float));
    memcpy(pl_, pf_trainer_params_data(tq), (size_t)np * sizeof(float));
    const double ll_at_q = eval(T, tl, &d);
    memcpy(pl_, save, (size_t)np * sizeof(float));
    free(save);
    const double traj = fabs(ll_at_q - ll_end), tol = fmax(bound0, bound_f16) + traj;
    printf("curves (step: QLoRA / LoRA F16): ");
    for (int s = 0; s < STEPS; s++) printf("%d: %.4f/%.4f  ", s, cq[s], cl[s]);
    printf("\nend: QLoRA %.5f, LoRA %.5f; base bound %.5f -> %.5f, trajectory %.5f, tolerance %.5f\n", lq_end, ll_end,
           bound0, bound_f16, traj, tol);
    CHECK(T, fabs(cq[0] - cl[0]) <= bound0, "step 0: %.6f vs %.6f, bound %.6f", cq[0], cl[0], bound0);
    for (int s = 0; s < STEPS; s++)
        CHECK(T, fabs(cq[s] - cl[s]) <= tol, "step %d: QLoRA %.6f vs LoRA %.6f, tolerance %.6f", s, cq[s], cl[s], tol);
    CHECK(T, fabs(lq_end - ll_end) <= tol, "end: QLoRA %.6f vs LoRA %.6f, tolerance %.6f", lq_end, ll_end, tol);
    /* not vacuous: the curves fall by far more than the tolerance */
    CHECK(T, cl[0] - ll_end > tol, "training gain %.4f vs tolerance %.4f", cl[0] - ll_end, tol);

    free(z8), free(z_f16), free(z_nf4);
    pf_lora_free(a16), pf_lora_free(adq), pf_lora_free(a8);
    pf_trainer_free(td);
    for (int64_t i = 0; i < 2 * N_MOD; i++) free(bufs[i]);
    free(bufs);
out:
    pf_trainer_free(tq), pf_trainer_free(tl);
    pf_dataset_free(d.ds);
    pf_model_free(m), pf_model_free(mdq), pf_model_free(m8);
}

/* A quantized source: dequantized, then requantized (counted for the warning); bad shapes fail. */
static void test_requantized(pf_test *T) {
    char q[160];
    snprintf(q, sizeof q, "%s/base-q8.gguf", g_dir);
    pf_model *m = NULL;
    pf_error e = {0};
    if (pf_model_load(q, &m, &e) != PF_OK) return; /* written by test_qlora */
    pf_train_params p = params(true);
    pf_trainer *t = NULL;
    CHECK(T, pf_trainer_create(m, &p, &t, &e) == PF_OK, "QLoRA on Q8_0: %s", e.msg);
    pf_qlora_info qi = {0};
    if (t) pf_trainer_qlora_info(t, &qi, &e);
    CHECK(T, qi.n_requantized == qi.n_tensors && qi.n_tensors == 2 * N_MOD && qi.src_type == PF_TYPE_Q8_0,
          "requantized %lld of %lld", (long long)qi.n_requantized, (long long)qi.n_tensors);
    CHECK(T, pf_trainer_qlora_info(NULL, &qi, &e) == PF_ERR_ARG, "NULL trainer refused");
    pf_trainer_free(t);
    pf_model_free(m);
    /* the CLI warns */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "./build/phiforge bench-train -m %s --qlora --seq 16 --steps 1 -t 2 2>&1 | grep -q 'warning: 8 base tensors are Q8_0'",
             q);
    CHECK(T, system(cmd) == 0, "bench-train --qlora on a Q8_0 base warns");
}

int main(void) {
    pf_test T = {0};
    snprintf(g_dir, sizeof g_dir, "/tmp/pf-test-qlora-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    test_qlora(&T);
    test_requantized(&T);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return TEST_REPORT(&T);
}
