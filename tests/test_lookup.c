/* Prompt-lookup speculative decoding and the prefix KV cache:
 *   - drafts equal a brute-force search (longest suffix ngram_max..ngram_min, most recent
 *     occurrence) on random sequences over a small alphabet;
 *   - pf_generate with lookup gives the very tokens, text, stop reason and KV length of plain
 *     decoding on the tiny F16 and GQA Q4_K_M models, greedy and seeded sampling, with prompts
 *     whose drafts are accepted and prompts whose drafts are rejected, stop strings, max_tokens,
 *     EOG, a full context; counters are consistent;
 *   - the acceptance rule: over many draws the output distribution is the sampler's (chi-square),
 *     the acceptance rate is p(draft), rejected tokens follow p without the draft; two wrong rules
 *     fail the same bounds;
 *   - prefix cache: restore + suffix decode gives bitwise the logits of the same decode without
 *     the file, and a full decode's within 1e-4; longest common prefix; other model / KV type /
 *     LoRA refused; truncated, corrupt and hostile files give errors. */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#define NV 32064
#define MAXG 160

/* ---- drafting against brute force -------------------------------------------------------- */

/* The specification, literally: for n = max..min, the latest i < len - n with s[i..i+n) equal
 * to the last n tokens; the draft is what follows it. */
static int64_t brute_draft(const int32_t *s, int64_t len, int gmin, int gmax, int32_t *out, int64_t max) {
    for (int n = gmax; n >= gmin; n--) {
        if (len <= n) continue;
        for (int64_t i = len - n - 1; i >= 0; i--) {
            if (memcmp(s + i, s + len - n, (size_t)n * sizeof *s) != 0) continue;
            int64_t k = 0;
            for (int64_t j = i + n; j < len && k < max; j++) out[k++] = s[j];
            return k;
        }
    }
    return 0;
}

static void test_draft(pf_test *t) {
    pf_test_rng rng = {0x1234567};
    int fails = 0, drafts = 0;
    for (int round = 0; round < 40; round++) {
        const int gmin = 1 + round % 3, gmax = gmin + round % 4, alpha = 2 + round % 6;
        int32_t seq[300], a[16], b[16];
        pf_lookup *l = NULL;
        pf_error e = {0};
        CHECK(t, pf_lookup_create(300, gmin, gmax, &l, &e) == PF_OK, "create: %s", e.msg);
        if (!l) return;
        for (int64_t n = 0; n < 300; n++) {
            seq[n] = (int32_t)(pf_test_next(&rng) % (uint64_t)alpha) * 1000; /* far-apart ids */
            pf_lookup_add(l, seq + n, 1, NULL);
            int64_t ka = pf_lookup_draft(l, a, 1 + n % 10), kb = brute_draft(seq, n + 1, gmin, gmax, b, 1 + n % 10);
            drafts += ka > 0;
            if (ka != kb || memcmp(a, b, (size_t)ka * sizeof *a)) fails++;
        }
        CHECK(t, pf_lookup_n_tokens(l) == 300 && pf_lookup_add(l, seq, 1, &e) == PF_ERR_ARG, "capacity not enforced");
        pf_lookup_reset(l);
        CHECK(t, pf_lookup_n_tokens(l) == 0 && pf_lookup_draft(l, a, 4) == 0, "reset");
        pf_lookup_free(l);
    }
    CHECK(t, fails == 0 && drafts > 1000, "%d of 12000 drafts differ from brute force (%d non-empty)", fails, drafts);
    pf_lookup *l = NULL;
    CHECK(t, pf_lookup_create(10, 3, 2, &l, NULL) == PF_ERR_ARG && !l, "ngram_max < ngram_min accepted");
    CHECK(t, pf_lookup_create(10, 0, 2, &l, NULL) == PF_ERR_ARG, "ngram_min 0 accepted");
}

/* ---- acceptance rule: statistics ---------------------------------------------------------- */

#define SV 12
#define DRAWS 60000

/* Pearson chi-square of counts against probabilities p (cells with p = 0 must be empty). */
static double chi2(const int64_t *count, const double *p, int n, int64_t total, bool *impossible) {
    double x = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) {
            if (count[i]) *impossible = true;
            continue;
        }
        const double e = p[i] * (double)total, d = (double)count[i] - e;
        x += d * d / e;
    }
    return x;
}

/* The three bounds of one rule: accept rate within 5 sigma of p(x), chi-square of all tokens and
 * of rejected tokens against their targets below the 1e-5 quantile for SV - 1 cells (~ 43). */
typedef struct rule_stats {
    double z_accept, chi_all, chi_rej;
    bool impossible;
} rule_stats;

static bool passes(const rule_stats *s) { return fabs(s->z_accept) < 5 && s->chi_all < 43 && s->chi_rej < 43 && !s->impossible; }

static rule_stats measure(const int64_t *all, const int64_t *rej, int64_t n_acc, const double *p, int32_t x) {
    rule_stats s = {0};
    s.z_accept = ((double)n_acc - DRAWS * p[x]) / sqrt(DRAWS * p[x] * (1 - p[x]));
    s.chi_all = chi2(all, p, SV, DRAWS, &s.impossible);
    double q[SV];
    for (int i = 0; i < SV; i++) q[i] = i == x ? 0 : p[i] / (1 - p[x]);
    s.chi_rej = chi2(rej, q, SV, DRAWS - n_acc, &s.impossible);
    return s;
}

static void acceptance_case(pf_test *t, const pf_sampler_params *sp, const float *logits, int32_t x, const char *what) {
    pf_sampler *s = NULL;
    CHECK(t, pf_sampler_create(sp, SV, &s, NULL) == PF_OK, "sampler");
    if (!s) return;
    int32_t ids[SV];
    float probs[SV];
    double p[SV] = {0};
    int64_t nc = pf_sampler_candidates(s, logits, ids, probs);
    for (int64_t i = 0; i < nc; i++) p[ids[i]] = probs[i];
    /* the rule under test */
    int64_t all[SV] = {0}, rej[SV] = {0}, n_acc = 0;
    for (int d = 0; d < DRAWS; d++) {
        bool ok = false;
        int32_t id = pf_sampler_verify(s, logits, x, &ok);
        CHECK(t, ok == (id == x), "accepted flag");
        all[id]++;
        if (ok) n_acc++;
        else rej[id]++;
    }
    rule_stats good = measure(all, rej, n_acc, p, x);
    CHECK(t, passes(&good), "%s: accept z %.2f, chi2 all %.1f, rejected %.1f", what, good.z_accept, good.chi_all,
          good.chi_rej);
    /* Wrong rule 1: accept with probability p(x), else draw again from p (x not removed).
     * Wrong rule 2: accept x when it is among the two most likely, else draw from p. */
    pf_test_rng rng = {0xfeedbeef};
    for (int w = 0; w < 2; w++) {
        int64_t wa[SV] = {0}, wr[SV] = {0}, wn = 0;
        for (int d = 0; d < DRAWS; d++) {
            double u = (double)(pf_test_next(&rng) >> 11) * 0x1.0p-53;
            bool ok = w == 0 ? u < p[x] : (ids[0] == x || (nc > 1 && ids[1] == x));
            int32_t id = ok ? x : pf_sampler_sample(s, logits);
            wa[id]++;
            if (ok) wn++;
            else wr[id]++;
        }
        rule_stats bad = measure(wa, wr, wn, p, x);
        CHECK(t, !passes(&bad), "%s: wrong rule %d passes the bounds (z %.2f chi2 %.1f %.1f)", what, w + 1,
              bad.z_accept, bad.chi_all, bad.chi_rej);
    }
    printf("acceptance %s: p(x) %.3f, accepted %.3f, chi2 %.1f / %.1f\n", what, p[x], (double)n_acc / DRAWS,
           good.chi_all, good.chi_rej);
    pf_sampler_free(s);
}

static void test_acceptance(pf_test *t) {
    float logits[SV];
    for (int i = 0; i < SV; i++) logits[i] = 0.35f * (float)((i * 7) % SV) - 1.5f;
    pf_sampler_params sp = pf_sampler_default_params();
    sp.temperature = 1, sp.top_k = 0, sp.top_p = 1, sp.min_p = 0, sp.seed = 7;
    acceptance_case(t, &sp, logits, 5, "plain softmax, draft of p ~ 0.13");
    acceptance_case(t, &sp, logits, 3, "plain softmax, draft of p ~ 0.05");
    sp.temperature = 0.7f, sp.top_k = 6, sp.top_p = 0.95f, sp.min_p = 0.05f, sp.seed = 99;
    acceptance_case(t, &sp, logits, 10, "temp 0.7 top-k 6 top-p 0.95 min-p 0.05");
}

/* ---- generation: lookup equals plain ------------------------------------------------------ */

typedef struct capture {
    char text[8192];
    size_t len;
} capture;

static int on_text(void *user, const char *text, size_t len) {
    capture *c = user;
    if (c->len + len < sizeof c->text) memcpy(c->text + c->len, text, len), c->len += len;
    c->text[c->len] = 0;
    return 0;
}

typedef struct run {
    int rc;
    int32_t ids[MAXG];
    pf_gen_result r;
    capture cap;
    int64_t past;
} run;

/* Kernels of the contexts: AVX2 when the CPU has it. The scalar table computes a batch row by
 * row with the very kernels of a single token, so there a batched forward is bitwise the
 * single-token one; AVX2's batched GEMM sums in another order (differences ~1e-6 relative). */
static pf_isa g_isa = PF_ISA_AUTO;

static void generate(const pf_model *m, const pf_tokenizer *tok, int64_t n_ctx, const pf_sampler_params *sp,
                     const int32_t *prompt, int64_t n, pf_gen_params p, int n_draft, run *o) {
    memset(o, 0, sizeof *o);
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = n_ctx, cp.n_threads = 2, cp.isa = g_isa;
    pf_context *ctx = NULL;
    pf_sampler *s = NULL;
    o->rc = pf_context_create(m, &cp, &ctx, NULL);
    if (o->rc == PF_OK) o->rc = pf_sampler_create(sp, NV, &s, NULL);
    if (o->rc == PF_OK) {
        p.n_draft = n_draft;
        p.out_ids = o->ids, p.out_cap = MAXG, p.on_text = on_text, p.user = &o->cap;
        pf_error e = {0};
        o->rc = pf_generate(ctx, tok, s, prompt, n, &p, &o->r, &e);
        if (o->rc != PF_OK) fprintf(stderr, "generate: %s\n", e.msg);
        o->past = pf_context_n_past(ctx);
    }
    pf_sampler_free(s);
    pf_context_free(ctx);
}

typedef struct totals {
    int64_t drafted, accepted, cases;
} totals;

/* Plain and lookup runs of one case; everything observable must be equal. */
static void same_as_plain(pf_test *t, const pf_model *m, const pf_tokenizer *tok, int64_t n_ctx,
                          const pf_sampler_params *sp, const int32_t *prompt, int64_t n, pf_gen_params p, int n_draft,
                          const char *what, totals *tot, run *plain_out) {
    static run a, b;
    generate(m, tok, n_ctx, sp, prompt, n, p, 0, &a);
    generate(m, tok, n_ctx, sp, prompt, n, p, n_draft, &b);
    const int64_t ng = a.r.n_gen < MAXG ? a.r.n_gen : MAXG;
    CHECK(t, a.rc == PF_OK && b.rc == PF_OK, "%s: rc %d %d", what, a.rc, b.rc);
    CHECK(t, a.r.n_gen == b.r.n_gen && !memcmp(a.ids, b.ids, (size_t)ng * sizeof *a.ids),
          "%s: lookup generated other tokens (%lld vs %lld)", what, (long long)b.r.n_gen, (long long)a.r.n_gen);
    CHECK(t, a.cap.len == b.cap.len && !memcmp(a.cap.text, b.cap.text, a.cap.len), "%s: text differs:\n'%s'\n'%s'", what,
          a.cap.text, b.cap.text);
    CHECK(t, a.r.stop == b.r.stop && a.past == b.past, "%s: stop %s / %s, n_past %lld / %lld", what,
          pf_stop_reason_str(a.r.stop), pf_stop_reason_str(b.r.stop), (long long)a.past, (long long)b.past);
    /* Plain: one forward per sample but the last. Lookup: an accepted draft needs none. */
    CHECK(t, a.r.n_drafted == 0 && a.r.n_accepted == 0 && b.r.n_accepted <= b.r.n_drafted &&
                 (b.r.n_forward + b.r.n_accepted == a.r.n_forward || b.r.n_forward + b.r.n_accepted == a.r.n_forward + 1),
          "%s: counters plain fwd %lld, lookup fwd %lld drafted %lld accepted %lld", what, (long long)a.r.n_forward,
          (long long)b.r.n_forward, (long long)b.r.n_drafted, (long long)b.r.n_accepted);
    tot->drafted += b.r.n_drafted, tot->accepted += b.r.n_accepted, tot->cases++;
    if (plain_out) *plain_out = a;
}

static void model_cases(pf_test *t, const char *name) {
    char path[512];
    pf_model *m = NULL;
    pf_tokenizer *tok = NULL;
    pf_error e = {0};
    if (!pf_test_data_path(path, sizeof path, "models", name) || pf_model_load(path, &m, &e) != PF_OK ||
        pf_tokenizer_load(pf_model_gguf(m), &tok, &e) != PF_OK) {
        CHECK(t, 0, "%s: %s", name, e.msg);
        pf_model_free(m);
        return;
    }
    int32_t chat[64], prompt[400];
    const int n_chat = pf_test_read_ids("chat.ids", chat, 64);
    pf_sampler_params greedy = pf_sampler_default_params();
    greedy.temperature = 0;
    /* A random-weight model rarely quotes its prompt; a -1000 presence penalty makes it choose
     * among the tokens of its window only, so it copies and loops: drafts get accepted. */
    pf_sampler_params copy = greedy;
    copy.presence_penalty = -1000, copy.repeat_last_n = 64;
    pf_gen_params p = pf_gen_default_params();
    totals acc_tot = {0}, rej_tot = {0};
    static run base;
    char what[160];
    const int n_user = n_chat - 2; /* chat.ids without its closing <|end|> <|assistant|> */

    /* 1. chat.ids, plain greedy: whatever the model does. */
    p.max_tokens = 60;
    snprintf(what, sizeof what, "%s chat.ids greedy", name);
    same_as_plain(t, m, tok, 512, &greedy, chat, n_chat, p, 8, what, &rej_tot, &base);
    /* 2. Quoting prompt: chat.ids, the greedy answer, chat.ids again. */
    int n = 0;
    memcpy(prompt, chat, (size_t)n_chat * sizeof *chat), n += n_chat;
    memcpy(prompt + n, base.ids, (size_t)base.r.n_gen * sizeof *chat), n += (int)base.r.n_gen;
    memcpy(prompt + n, chat, (size_t)n_chat * sizeof *chat), n += n_chat;
    snprintf(what, sizeof what, "%s quoting prompt greedy", name);
    same_as_plain(t, m, tok, 512, &greedy, prompt, n, p, 8, what, &rej_tot, NULL);
    /* 3. Copying: draft sizes, max_tokens, stop strings, full context inside accepted runs. */
    const int draft_sizes[] = {1, 3, 8, 16};
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "%s copying, n_draft %d", name, draft_sizes[i]);
        same_as_plain(t, m, tok, 512, &copy, chat, n_user, p, draft_sizes[i], what, &acc_tot, i == 2 ? &base : NULL);
    }
    for (int mt = 1; mt <= 13; mt += 3) {
        p.max_tokens = mt;
        snprintf(what, sizeof what, "%s copying, max_tokens %d", name, mt);
        same_as_plain(t, m, tok, 512, &copy, chat, n_user, p, 8, what, &acc_tot, NULL);
    }
    p.max_tokens = 60;
    for (size_t at = 3; at + 6 < base.cap.len && at < 150; at += 29) {
        char stop[8];
        while (at < base.cap.len && ((unsigned char)base.cap.text[at] & 0xC0) == 0x80) at++;
        memcpy(stop, base.cap.text + at, 5), stop[5] = 0;
        const char *stops[] = {stop, "\x01never"};
        p.stop = stops, p.n_stop = 2;
        snprintf(what, sizeof what, "%s copying, stop string at %zu", name, at);
        run r;
        same_as_plain(t, m, tok, 512, &copy, chat, n_user, p, 8, what, &acc_tot, &r);
        CHECK(t, r.r.stop == PF_STOP_STRING, "%s: stop %s", what, pf_stop_reason_str(r.r.stop));
    }
    p.stop = NULL, p.n_stop = 0;
    for (int extra = 1; extra < 30; extra += 7) {
        snprintf(what, sizeof what, "%s copying, context full after %d", name, extra);
        run r;
        same_as_plain(t, m, tok, n_user + extra, &copy, chat, n_user, p, 8, what, &acc_tot, &r);
        CHECK(t, r.r.stop == PF_STOP_CTX_FULL, "%s: stop %s", what, pf_stop_reason_str(r.r.stop));
    }
    /* the penalty window must advance through accepted tokens as in plain decoding */
    pf_sampler_params pen = copy;
    pen.repeat_penalty = 1.3f, pen.frequency_penalty = 0.05f;
    snprintf(what, sizeof what, "%s copying with penalties", name);
    same_as_plain(t, m, tok, 512, &pen, chat, n_user, p, 8, what, &acc_tot, NULL);
    /* Seeded sampling: the same draws, hence the same tokens, as long as the logits are the
     * same: exact with the scalar kernels (a batch row is computed as a single token is); with
     * AVX2 a draw that falls within ~1e-6 of a boundary of the CDF may differ (counted). */
    pf_sampler_params smp = copy;
    smp.temperature = 0.8f, smp.top_k = 40, smp.top_p = 0.95f, smp.min_p = 0.05f;
    g_isa = PF_ISA_SCALAR;
    p.max_tokens = 24;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        smp.seed = seed;
        snprintf(what, sizeof what, "%s copying, scalar kernels, sampling seed %llu", name, (unsigned long long)seed);
        same_as_plain(t, m, tok, 512, &smp, chat, n_user, p, 8, what, &acc_tot, NULL);
    }
    g_isa = PF_ISA_AUTO;
    p.max_tokens = 60;
    /* 4. EOG: copying with a frequency penalty rotates through the window's tokens, the
     * prompt's <|end|> <|assistant|> included, until one of them wins. */
    pf_sampler_params eog = copy;
    eog.frequency_penalty = 0.3f;
    p.ngram_min = 1, p.ngram_max = 3;
    run r;
    snprintf(what, sizeof what, "%s EOG", name);
    same_as_plain(t, m, tok, 512, &eog, chat, n_chat, p, 8, what, &rej_tot, &r);
    printf("%s EOG case: %s after %lld tokens (%lld drafted, %lld accepted)\n", name, pf_stop_reason_str(r.r.stop),
           (long long)r.r.n_gen, (long long)r.r.n_drafted, (long long)r.r.n_accepted);
    CHECK(t, r.r.stop == PF_STOP_EOG, "EOG case ended by %s", pf_stop_reason_str(r.r.stop));
    /* 5. Random prompt, copying with a frequency penalty and 1-gram matching: drafts are
     * plentiful and mostly wrong. */
    pf_test_rng rng = {42};
    for (int i = 0; i < 120; i++) prompt[i] = 100 + (int32_t)(pf_test_next(&rng) % 30000);
    p = pf_gen_default_params(), p.max_tokens = 50, p.ngram_min = 1, p.ngram_max = 2;
    pf_sampler_params rot = copy;
    rot.frequency_penalty = 0.2f, rot.repeat_last_n = 200;
    snprintf(what, sizeof what, "%s random prompt", name);
    same_as_plain(t, m, tok, 512, &rot, prompt, 120, p, 6, what, &rej_tot, NULL);
    rot.temperature = 0.8f, rot.seed = 11;
    g_isa = PF_ISA_SCALAR;
    p.max_tokens = 24;
    snprintf(what, sizeof what, "%s random prompt, scalar kernels, sampling", name);
    same_as_plain(t, m, tok, 512, &rot, prompt, 120, p, 6, what, &rej_tot, NULL);
    g_isa = PF_ISA_AUTO;

    printf("%s: copying cases %lld drafted, %lld accepted; other cases %lld drafted, %lld accepted\n", name,
           (long long)acc_tot.drafted, (long long)acc_tot.accepted, (long long)rej_tot.drafted, (long long)rej_tot.accepted);
    CHECK(t, acc_tot.accepted > acc_tot.drafted / 10 && acc_tot.accepted > 100, "%s: too few accepted drafts (%lld of %lld)",
          name, (long long)acc_tot.accepted, (long long)acc_tot.drafted);
    CHECK(t, rej_tot.drafted - rej_tot.accepted > 20, "%s: too few rejected drafts (%lld of %lld)", name,
          (long long)(rej_tot.drafted - rej_tot.accepted), (long long)rej_tot.drafted);

    /* bad parameters */
    p = pf_gen_default_params(), p.n_draft = -1;
    pf_context *ctx = NULL;
    pf_sampler *s = NULL;
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = 64, cp.n_threads = 1;
    pf_context_create(m, &cp, &ctx, NULL);
    pf_sampler_create(&greedy, NV, &s, NULL);
    CHECK(t, pf_generate(ctx, tok, s, chat, n_chat, &p, NULL, &e) == PF_ERR_ARG, "n_draft -1 accepted");
    p.n_draft = 4, p.ngram_min = 3, p.ngram_max = 2;
    CHECK(t, pf_generate(ctx, tok, s, chat, n_chat, &p, NULL, &e) == PF_ERR_ARG && strstr(e.msg, "ngram"),
          "ngram_max < ngram_min accepted: %s", e.msg);
    pf_sampler_free(s);
    pf_context_free(ctx);
    pf_tokenizer_free(tok);
    pf_model_free(m);
}

/* ---- prefix KV cache ---------------------------------------------------------------------- */

static pf_context *ctx_of(const pf_model *m, pf_type kv) {
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = 96, cp.n_threads = 2, cp.kv_type = kv;
    pf_context *ctx = NULL;
    pf_context_create(m, &cp, &ctx, NULL);
    return ctx;
}

static bool write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void test_prefix_cache(pf_test *t) {
    char path[512], lora_path[512], gqa_path[512], dir[] = "/tmp/pf_test_prefix_XXXXXX";
    pf_model *m = NULL, *gqa = NULL;
    pf_error e = {0};
    if (!pf_test_data_path(path, sizeof path, "models", "phi3-tiny-f16.gguf") || pf_model_load(path, &m, &e) != PF_OK ||
        !mkdtemp(dir)) {
        CHECK(t, 0, "setup: %s", e.msg);
        return;
    }
    int32_t ids[64], other[64];
    const int n_chat = pf_test_read_ids("chat.ids", ids, 32);
    pf_test_rng rng = {5};
    for (int i = n_chat; i < 48; i++) ids[i] = 200 + (int32_t)(pf_test_next(&rng) % 20000);
    const int n = 48, n_save = 30, n_common = 21;
    memcpy(other, ids, sizeof other);
    other[n_common] = ids[n_common] == 7 ? 8 : 7; /* first difference at n_common */
    char file[600], tmpf[620];
    snprintf(file, sizeof file, "%s/prefix.pfkv", dir);
    snprintf(tmpf, sizeof tmpf, "%s.tmp", file);

    float *got = malloc((size_t)n * NV * sizeof *got), *want = malloc((size_t)n * NV * sizeof *want);
    float *full = malloc((size_t)n * NV * sizeof *full);
    pf_context *a = ctx_of(m, PF_TYPE_F16), *b = ctx_of(m, PF_TYPE_F16);
    int rc = pf_decode(a, ids, n_save, 0, NULL, PF_LOGITS_LAST, &e);
    CHECK(t, pf_context_save_prefix(a, ids, n_save + 1, file, &e) == PF_ERR_ARG, "saving more than the cache holds");
    if (rc == PF_OK) rc = pf_context_save_prefix(a, ids, n_save, file, &e);
    CHECK(t, rc == PF_OK && access(tmpf, F_OK) != 0, "save: %s", e.msg);
    CHECK(t, pf_context_fingerprint(a) == pf_context_fingerprint(b), "same model and settings, other fingerprint");

    /* Reference: the same prefix decoded in a batch of n_save, then the suffix, no file. */
    int64_t restored = -1;
    rc = pf_decode(a, other + n_common, n - n_common, n_common, want, PF_LOGITS_ALL, &e);
    if (rc == PF_OK) rc = pf_context_load_prefix(b, other, n, file, &restored, &e);
    CHECK(t, rc == PF_OK && restored == n_common && pf_context_n_past(b) == n_common, "load: %lld restored: %s",
          (long long)restored, e.msg);
    if (rc == PF_OK) rc = pf_decode(b, other + n_common, n - n_common, n_common, got, PF_LOGITS_ALL, &e);
    CHECK(t, rc == PF_OK && !memcmp(got, want, (size_t)(n - n_common) * NV * sizeof *got),
          "restored prefix: logits not bitwise those of the same decode without the file");
    /* ... and those of one full decode, within the batch-shape rounding */
    pf_context *c = ctx_of(m, PF_TYPE_F16);
    rc = pf_decode(c, other, n, 0, full, PF_LOGITS_ALL, &e);
    if (rc == PF_OK)
        pf_test_compare_logits(t, "restore + suffix vs full decode", got, full + (size_t)n_common * NV, n - n_common, NV,
                               0.9999999, 1e-4, true);
    /* The whole stored prefix when the new ids extend it; the new ids' length when shorter. */
    rc = pf_context_load_prefix(b, ids, n, file, &restored, &e);
    CHECK(t, rc == PF_OK && restored == n_save, "extending ids: %lld restored: %s", (long long)restored, e.msg);
    rc = pf_context_load_prefix(b, ids, 12, file, &restored, &e);
    CHECK(t, rc == PF_OK && restored == 12 && pf_context_n_past(b) == 12, "shorter ids: %lld", (long long)restored);
    other[0] = ids[0] + 1;
    rc = pf_context_load_prefix(b, other, n, file, &restored, &e);
    CHECK(t, rc == PF_OK && restored == 0 && pf_context_n_past(b) == 0, "nothing in common: %lld", (long long)restored);

    /* Refused: another model, another KV type, a LoRA adapter attached. */
    if (pf_test_data_path(gqa_path, sizeof gqa_path, "models", "phi3-tiny-gqa-Q4_K_M.gguf") &&
        pf_model_load(gqa_path, &gqa, &e) == PF_OK) {
        pf_context *g = ctx_of(gqa, PF_TYPE_F16);
        rc = pf_context_load_prefix(g, ids, n, file, &restored, &e);
        CHECK(t, rc == PF_ERR_UNSUPPORTED && restored == 0 && strstr(e.msg, "fingerprint"), "other model: %d %s", rc, e.msg);
        pf_context_free(g);
    } else {
        CHECK(t, 0, "GQA model: %s", e.msg);
    }
    pf_context *f32 = ctx_of(m, PF_TYPE_F32);
    rc = pf_context_load_prefix(f32, ids, n, file, &restored, &e);
    CHECK(t, rc == PF_ERR_UNSUPPORTED, "F32 KV cache accepted an F16 file: %d %s", rc, e.msg);
    pf_context_free(f32);
    pf_lora *lora = NULL;
    if (pf_test_data_path(lora_path, sizeof lora_path, "models", "phi3-tiny-lora-r4.gguf") &&
        pf_lora_load(lora_path, m, &lora, &e) == PF_OK) {
        pf_context *l = ctx_of(m, PF_TYPE_F16);
        pf_context_set_lora(l, &lora, NULL, 1, &e);
        rc = pf_context_load_prefix(l, ids, n, file, &restored, &e);
        CHECK(t, rc == PF_ERR_UNSUPPORTED, "LoRA context accepted a base-model file: %d", rc);
        float half = 0.5f;
        uint64_t f1 = pf_context_fingerprint(l);
        pf_context_set_lora(l, &lora, &half, 1, &e);
        CHECK(t, f1 != pf_context_fingerprint(l), "LoRA scale not in the fingerprint");
        pf_context_free(l);
        pf_lora_free(lora);
    } else {
        CHECK(t, 0, "LoRA: %s", e.msg);
    }

    /* Truncated, corrupt and hostile files: errors, an empty cache, never a crash. */
    size_t size = 0;
    uint8_t *bytes = pf_test_read_file(file, &size);
    char bad[620];
    snprintf(bad, sizeof bad, "%s/bad.pfkv", dir);
    const size_t cuts[] = {0, 7, 47, 48, 48 + 4 * 10, 48 + 4 * n_save, size / 2, size - 9, size - 1};
    for (size_t i = 0; bytes && i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(bad, bytes, cuts[i]);
        pf_decode(b, ids, 5, 0, NULL, PF_LOGITS_LAST, &e);
        rc = pf_context_load_prefix(b, ids, n, bad, &restored, &e);
        CHECK(t, rc == PF_ERR_FORMAT && restored == 0 && pf_context_n_past(b) == 0, "cut at %zu: %d %s", cuts[i], rc,
              e.msg);
    }
    if (bytes) {
        write_bytes(bad, bytes, size);
        FILE *fp = fopen(bad, "ab");
        fputc(0, fp), fclose(fp);
        CHECK(t, pf_context_load_prefix(b, ids, n, bad, &restored, &e) == PF_ERR_FORMAT, "trailing byte accepted");
        bytes[size / 2] ^= 0x40; /* a bit of K/V data */
        write_bytes(bad, bytes, size);
        rc = pf_context_load_prefix(b, ids, n, bad, &restored, &e);
        CHECK(t, rc == PF_ERR_FORMAT && strstr(e.msg, "checksum"), "flipped bit: %d %s", rc, e.msg);
        bytes[size / 2] ^= 0x40;
        uint64_t huge = UINT64_MAX / 3; /* n_tokens */
        memcpy(bytes + 40, &huge, 8);
        write_bytes(bad, bytes, size);
        rc = pf_context_load_prefix(b, ids, n, bad, &restored, &e);
        CHECK(t, rc == PF_ERR_FORMAT, "huge n_tokens: %d %s", rc, e.msg);
        memcpy(bytes, "GGUF", 4);
        write_bytes(bad, bytes, size);
        CHECK(t, pf_context_load_prefix(b, ids, n, bad, &restored, &e) == PF_ERR_FORMAT, "bad magic accepted");
    }
    CHECK(t, pf_context_load_prefix(b, ids, n, "/nonexistent/x.pfkv", &restored, &e) == PF_ERR_NOT_FOUND,
          "missing file: %d", e.code);
    free(bytes);
    unlink(bad), unlink(file), rmdir(dir);
    free(got), free(want), free(full);
    pf_context_free(a), pf_context_free(b), pf_context_free(c);
    pf_model_free(gqa);
    pf_model_free(m);
}

int main(void) {
    pf_test t = {0};
    test_draft(&t);
    test_acceptance(&t);
    model_cases(&t, "phi3-tiny-f16.gguf");
    model_cases(&t, "phi3-tiny-gqa-Q4_K_M.gguf");
    test_prefix_cache(&t);
    return TEST_REPORT(&t);
}
