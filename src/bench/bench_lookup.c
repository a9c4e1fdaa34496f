/* Prompt-lookup benchmark on a RAG workload (phiforge bench-lookup).
 *
 * A model with random weights does not quote its prompt, so what the "model" says is fixed in
 * advance and everything else is real:
 *   prompt    Phi-3 chat text: instructions, numbered passages (paragraphs of the source files,
 *             up to prompt_tokens), a question;
 *   answer    a reference answer that quotes sentences of some passages, with connecting text of
 *             its own between the quotes (the quoted share is reported);
 *   plain     teacher forcing: each answer token is decoded alone (one forward of 1 token), the
 *             sampler runs on its logits (greedy), and the next answer token is emitted;
 *   lookup    the same answer through the algorithm of pf_generate: the draft comes from
 *             pf_lookup over prompt + answer so far, one forward of [last token, draft] with the
 *             logits of every row, the sampler runs on each row up to the first disagreement,
 *             and a draft token counts as accepted iff it equals the next answer token (as if
 *             the model had predicted the answer), the KV cache being rewound past the rest.
 * Every forward pass is the real computation at the model's full size; only the acceptance
 * decision is the reference's instead of the random model's argmax. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phiforge.h"

#define MAX_ANSWER 4096
#define SEGMENTS 5 /* plain and lookup alternate over this many pieces of the answer */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pf_bench_lookup_params pf_bench_lookup_default_params(void) {
    return (pf_bench_lookup_params){.prompt_tokens = 1500, .answer_tokens = 200, .reps = 1, .seed = 1};
}

/* ---- text ------------------------------------------------------------------------------------ */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static bool sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) return false;
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return true;
}

static bool sb_str(sbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

/* A passage: one paragraph of prose (no code, tables or headings), whitespace collapsed. */
static bool prose_paragraph(const char *p, size_t n) {
    if (n < 200 || p[0] == '#' || p[0] == '|' || p[0] == '`' || p[0] == ' ' || p[0] == '-' || p[0] == '*') return false;
    for (size_t i = 0; i + 2 < n; i++)
        if (!memcmp(p + i, "```", 3)) return false;
    return true;
}

/* Paragraphs of the files, in order, as NUL-separated collapsed strings in *out. */
static int read_paragraphs(const pf_bench_lookup_params *p, sbuf *out, int *n_par, pf_error *err) {
    *n_par = 0;
    for (int f = 0; f < p->n_sources; f++) {
        FILE *fp = fopen(p->sources[f], "rb");
        if (!fp) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: cannot open: %m", p->sources[f]);
        sbuf text = {0};
        char chunk[65536];
        size_t k;
        bool ok = true;
        while (ok && (k = fread(chunk, 1, sizeof chunk, fp)) > 0) ok = sb_add(&text, chunk, k);
        fclose(fp);
        if (!ok) {
            free(text.s);
            return pf_error_set(err, PF_ERR_NOMEM, "bench-lookup: out of memory");
        }
        for (size_t i = 0; i < text.len;) {
            size_t j = i;
            while (j < text.len && !(text.s[j] == '\n' && j + 1 < text.len && text.s[j + 1] == '\n')) j++;
            if (prose_paragraph(text.s + i, j - i)) {
                bool space = false;
                for (size_t c = i; c < j && ok; c++) {
                    bool ws = text.s[c] == '\n' || text.s[c] == ' ' || text.s[c] == '\t' || text.s[c] == '\r';
                    if (ws) space = true;
                    else {
                        if (space) ok = sb_add(out, " ", 1);
                        ok = ok && sb_add(out, text.s + c, 1), space = false;
                    }
                }
                ok = ok && sb_add(out, "", 1); /* the NUL that ends this paragraph */
                ++*n_par;
            }
            while (j < text.len && text.s[j] == '\n') j++;
            i = j;
        }
        free(text.s);
        if (!ok) return pf_error_set(err, PF_ERR_NOMEM, "bench-lookup: out of memory");
    }
    if (*n_par < 2) return pf_error_set(err, PF_ERR_ARG, "bench-lookup: the sources hold fewer than 2 prose paragraphs");
    return PF_OK;
}

/* What the answer quotes of a passage: its first sentences, up to the first sentence end after
 * 120 characters (at most 500), else its first 240 characters. */
static size_t quote_len(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 120; i < n && i < 500; i++)
        if ((s[i] == '.' || s[i] == ';') && (i + 1 == n || s[i + 1] == ' ')) return i;
    return n < 240 ? n : 240;
}

static const char *const CONNECT[] = {
    "This is the key point for the question. ",
    "In other words, the sources agree on this. ",
    "That answers the second part of the question. ",
    "Note that this depends on the setting described above. ",
};

/* ---- workload -------------------------------------------------------------------------------- */

typedef struct workload {
    int32_t *prompt, *answer;
    int64_t n_prompt, n_answer, n_quoted;
} workload;

static int64_t tokenize(const pf_tokenizer *tok, const char *s, bool special, int32_t **out, pf_error *err) {
    int64_t n = pf_tokenize(tok, s, strlen(s), special, special, NULL, 0, err);
    if (n < 0) return n;
    *out = malloc((size_t)(n + 1) * sizeof **out);
    if (!*out) return pf_error_set(err, PF_ERR_NOMEM, "bench-lookup: out of memory");
    return pf_tokenize(tok, s, strlen(s), special, special, *out, n + 1, err);
}

static int build_workload(const pf_bench_lookup_params *p, const pf_tokenizer *tok, workload *w, pf_error *err) {
    sbuf pars = {0}, prompt = {0}, answer = {0};
    int n_par = 0, rc = read_paragraphs(p, &pars, &n_par, err);
    const char **par = rc == PF_OK ? malloc((size_t)n_par * sizeof *par) : NULL;
    if (rc == PF_OK && !par) rc = pf_error_set(err, PF_ERR_NOMEM, "bench-lookup: out of memory");
    if (rc != PF_OK) goto done;
    for (int i = 0, off = 0; i < n_par; i++) par[i] = pars.s + off, off += (int)strlen(pars.s + off) + 1;
    /* Passages: consecutive paragraphs from a seeded start until the prompt budget is used. */
    bool ok = sb_str(&prompt, "<|system|>\nAnswer the question from the numbered sources below only, quoting them "
                              "where you can and citing them as [n].<|end|>\n<|user|>\nSources:\n");
    int first = (int)(p->seed % (uint64_t)n_par), n_src = 0;
    int64_t budget = p->prompt_tokens - 40; /* the question and the template tokens */
    for (int k = 0; k < n_par && ok; k++) {
        const char *s = par[(first + k) % n_par];
        int64_t nt = pf_tokenize(tok, s, strlen(s), false, false, NULL, 0, err) + 4;
        if (nt > budget) {
            if (n_src >= 2) break;
            continue;
        }
        char head[32];
        snprintf(head, sizeof head, "[%d] ", n_src + 1);
        ok = sb_str(&prompt, head) && sb_str(&prompt, s) && sb_str(&prompt, "\n");
        budget -= nt;
        par[n_src++] = s; /* the passages in prompt order (par is no longer needed otherwise) */
    }
    ok = ok && sb_str(&prompt, "\nQuestion: What do these sources say, and how do the points fit together?<|end|>\n"
                               "<|assistant|>\n");
    /* Answer: quotes of passages 1, 3, 5, ... with a citation and a connecting sentence each,
     * until the token budget of the answer is reached. */
    int64_t quoted_chars = 0;
    for (int k = 0; ok && (int64_t)answer.len < p->answer_tokens * 4; k++) {
        int src = (2 * k) % n_src;
        const char *s = par[src];
        char cite[48];
        snprintf(cite, sizeof cite, "According to [%d], ", src + 1);
        size_t ql = quote_len(s);
        ok = sb_str(&answer, cite) && sb_add(&answer, s, ql) && sb_str(&answer, ". ") &&
             sb_str(&answer, CONNECT[k % 4]);
        quoted_chars += (int64_t)ql;
    }
    if (!ok) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "bench-lookup: out of memory");
        goto done;
    }
    w->n_prompt = tokenize(tok, prompt.s, true, &w->prompt, err);
    /* strip_first_space: the answer's first piece follows "\n" in the prompt */
    w->n_answer = w->n_prompt < 0 ? -1 : tokenize(tok, answer.s, false, &w->answer, err);
    if (w->n_prompt < 0 || w->n_answer < 0) {
        rc = w->n_prompt < 0 ? (int)w->n_prompt : (int)w->n_answer;
        goto done;
    }
    if (w->n_answer > p->answer_tokens) w->n_answer = p->answer_tokens;
    w->n_quoted = (int64_t)llround((double)w->n_answer * (double)quoted_chars / (double)answer.len);
done:
    free(par);
    free(pars.s);
    free(prompt.s);
    free(answer.s);
    return rc;
}

/* ---- the two decoders ------------------------------------------------------------------------ */

/* Plain teacher-forced decoding of answer tokens [i0, i1) (the cache holds everything before). */
static int run_plain(pf_context *ctx, pf_sampler *smp, const workload *w, int64_t i0, int64_t i1, float *logits,
                     double *secs, pf_error *err) {
    double t0 = now_s();
    int64_t pos = w->n_prompt - 1 + i0; /* position of `last` */
    int32_t last = i0 == 0 ? w->prompt[w->n_prompt - 1] : w->answer[i0 - 1];
    for (int64_t i = i0; i < i1; i++) {
        int rc = pf_decode(ctx, &last, 1, pos, logits, PF_LOGITS_LAST, err);
        if (rc != PF_OK) return rc;
        (void)pf_sampler_sample(smp, logits); /* what plain decoding spends on choosing a token */
        last = w->answer[i];
        pos++;
    }
    *secs += now_s() - t0;
    return PF_OK;
}

typedef struct lookup_counts {
    int64_t forwards, drafted, accepted;
} lookup_counts;

/* Answer tokens [i0, i1) with prompt lookup (pf_generate's algorithm, acceptance by the
 * reference); the lookup index holds the prompt and the answer before i0. */
static int run_lookup(pf_context *ctx, pf_sampler *smp, pf_lookup *lk, const workload *w, const pf_gen_params *gp,
                      int64_t i0, int64_t i1, float *logits, int32_t *batch, double *secs, lookup_counts *c,
                      pf_error *err) {
    const int64_t n_vocab = pf_model_get_hparams(pf_context_model(ctx))->n_vocab;
    pf_lookup_reset(lk);
    int rc = pf_lookup_add(lk, w->prompt, w->n_prompt - (i0 == 0), err);
    if (rc == PF_OK && i0 > 0) rc = pf_lookup_add(lk, w->answer, i0 - 1, err);
    if (rc != PF_OK) return rc;
    double t0 = now_s();
    int64_t done = i0; /* answer tokens emitted */
    int32_t last = i0 == 0 ? w->prompt[w->n_prompt - 1] : w->answer[i0 - 1];
    int64_t pos = w->n_prompt - 1 + i0; /* position of `last` */
    while (done < i1) {
        if ((rc = pf_lookup_add(lk, &last, 1, err)) != PF_OK) return rc;
        int64_t room = i1 - done - 1, k = gp->n_draft < room ? gp->n_draft : room;
        k = k > 0 ? pf_lookup_draft(lk, batch + 1, k) : 0;
        batch[0] = last;
        rc = pf_decode(ctx, batch, k + 1, pos, logits, k > 0 ? PF_LOGITS_ALL : PF_LOGITS_LAST, err);
        if (rc != PF_OK) return rc;
        c->forwards++, c->drafted += k;
        int64_t a = 0; /* accepted: the draft agrees with the answer */
        while (a < k && batch[1 + a] == w->answer[done + a]) a++;
        for (int64_t r = 0; r <= a; r++) (void)pf_sampler_sample(smp, logits + r * n_vocab);
        for (int64_t r = 0; r < a; r++)
            if ((rc = pf_lookup_add(lk, &w->answer[done + r], 1, err)) != PF_OK) return rc;
        c->accepted += a;
        done += a + 1; /* the accepted tokens and the one from row a */
        last = w->answer[done - 1], pos += a + 1;
    }
    *secs += now_s() - t0;
    return PF_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int pf_bench_lookup(const char *model_path, const pf_bench_lookup_params *params, pf_bench_lookup_result *out,
                    pf_error *err) {
    if (!model_path || !params || !out || params->n_sources < 1 || !params->sources || params->reps < 1 ||
        params->prompt_tokens < 64 || params->answer_tokens < 8 || params->answer_tokens > MAX_ANSWER)
        return pf_error_set(err, PF_ERR_ARG, "pf_bench_lookup: need a model, >= 1 source, reps >= 1, prompt >= 64 "
                                             "and 8..%d answer tokens", MAX_ANSWER);
    pf_bench_lookup_params p = *params;
    pf_gen_params gp = pf_gen_default_params();
    pf_gen_params_lookup_defaults(&gp);
    if (p.n_draft > 0) gp.n_draft = p.n_draft;
    if (p.ngram_min > 0) gp.ngram_min = p.ngram_min;
    if (p.ngram_max > 0) gp.ngram_max = p.ngram_max;
    memset(out, 0, sizeof *out);
    pf_model *m = NULL;
    pf_tokenizer *tok = NULL;
    pf_context *ctx = NULL;
    pf_sampler *smp = NULL;
    pf_lookup *lk = NULL;
    workload w = {0};
    float *logits = NULL;
    int32_t *batch = NULL;
    double *ts_plain = NULL, *ts_lookup = NULL;
    int rc = pf_model_load(model_path, &m, err);
    if (rc == PF_OK) rc = pf_tokenizer_load(pf_model_gguf(m), &tok, err);
    if (rc == PF_OK) rc = build_workload(&p, tok, &w, err);
    if (rc != PF_OK) goto done;
    const int64_t n_vocab = pf_model_get_hparams(m)->n_vocab;
    pf_context_params cp = pf_context_default_params();
    cp.n_threads = p.n_threads;
    cp.n_ctx = (w.n_prompt + w.n_answer + gp.n_draft + 64 + 255) / 256 * 256;
    pf_sampler_params sp = pf_sampler_default_params();
    sp.temperature = 0;
    if ((rc = pf_context_create(m, &cp, &ctx, err)) != PF_OK) goto done;
    if ((rc = pf_sampler_create(&sp, (int32_t)n_vocab, &smp, err)) != PF_OK) goto done;
    if ((rc = pf_lookup_create(w.n_prompt + w.n_answer + 1, gp.ngram_min, gp.ngram_max, &lk, err)) != PF_OK) goto done;
    const int64_t rows = gp.n_draft + 1 > 17 ? gp.n_draft + 1 : 17;
    logits = malloc((size_t)rows * (size_t)n_vocab * sizeof *logits);
    batch = malloc((size_t)(gp.n_draft + 1) * sizeof *batch);
    ts_plain = calloc((size_t)p.reps, sizeof *ts_plain);
    ts_lookup = calloc((size_t)p.reps, sizeof *ts_lookup);
    if (!logits || !batch || !ts_plain || !ts_lookup) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "bench-lookup: out of memory");
        goto done;
    }
    out->n_threads = pf_pool_n_threads(pf_compute_pool(pf_context_compute(ctx)));
    out->n_prompt = w.n_prompt, out->n_answer = w.n_answer, out->n_quoted = w.n_quoted;
    out->n_draft = gp.n_draft, out->ngram_min = gp.ngram_min, out->ngram_max = gp.ngram_max;
    double t0 = now_s();
    if ((rc = pf_decode(ctx, w.prompt, w.n_prompt - 1, 0, NULL, PF_LOGITS_LAST, err)) != PF_OK) goto done;
    out->prompt_s = now_s() - t0;
    /* Cost of one forward of n tokens at the end of the prompt (n = 1 is a plain step). */
    static const int sizes[] = {1, 2, 3, 5, 9, 17};
    for (int i = 0; i < 6 && rc == PF_OK; i++) {
        int32_t ids[17];
        for (int j = 0; j < sizes[i]; j++) ids[j] = w.answer[j];
        double best = INFINITY;
        for (int r = 0; r < 2 && rc == PF_OK; r++) {
            double s = now_s();
            rc = pf_decode(ctx, ids, sizes[i], w.n_prompt - 1, logits, PF_LOGITS_ALL, err);
            s = now_s() - s;
            best = s < best ? s : best;
        }
        out->batch_n[i] = sizes[i], out->batch_ms[i] = best * 1e3;
    }
    out->n_batch_points = 6;
    /* The machine's load drifts over seconds: plain and lookup alternate segment by segment
     * (SEGMENTS pieces of the answer), so both see the same conditions. */
    lookup_counts lc = {0};
    for (int r = 0; r < p.reps && rc == PF_OK; r++) {
        memset(&lc, 0, sizeof lc);
        for (int s = 0; s < SEGMENTS && rc == PF_OK; s++) {
            const int64_t i0 = w.n_answer * s / SEGMENTS, i1 = w.n_answer * (s + 1) / SEGMENTS;
            rc = run_plain(ctx, smp, &w, i0, i1, logits, &ts_plain[r], err);
            if (rc == PF_OK) rc = run_lookup(ctx, smp, lk, &w, &gp, i0, i1, logits, batch, &ts_lookup[r], &lc, err);
        }
    }
    if (rc != PF_OK) goto done;
    qsort(ts_plain, (size_t)p.reps, sizeof *ts_plain, cmp_double);
    qsort(ts_lookup, (size_t)p.reps, sizeof *ts_lookup, cmp_double);
    out->reps = p.reps;
    out->plain_tps_best = (double)w.n_answer / ts_plain[0];
    out->lookup_tps_best = (double)w.n_answer / ts_lookup[0];
    out->plain_tps_median = (double)w.n_answer / ts_plain[p.reps / 2];
    out->lookup_tps_median = (double)w.n_answer / ts_lookup[p.reps / 2];
    out->n_forward = lc.forwards, out->n_drafted = lc.drafted, out->n_accepted = lc.accepted;
done:
    free(ts_plain);
    free(ts_lookup);
    free(logits);
    free(batch);
    free(w.prompt);
    free(w.answer);
    pf_lookup_free(lk);
    pf_sampler_free(smp);
    pf_context_free(ctx);
    pf_tokenizer_free(tok);
    pf_model_free(m);
    return rc;
}
