/* Generation loop: prompt decode, then sample -> stream text -> decode, until an end-of-
 * generation token, max_tokens, a stop string, a full context or the callback says stop. With
 * prompt lookup (n_draft > 0) each decode is a batch [token, draft...] (lookup.c) whose rows
 * of logits the sampler walks while its draws agree with the draft. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate/sampler_internal.h"

pf_gen_params pf_gen_default_params(void) { return (pf_gen_params){0}; }

void pf_gen_params_lookup_defaults(pf_gen_params *p) {
    if (!p) return;
    p->n_draft = PF_LOOKUP_DEFAULT_N_DRAFT;
    p->ngram_min = PF_LOOKUP_DEFAULT_NGRAM_MIN;
    p->ngram_max = PF_LOOKUP_DEFAULT_NGRAM_MAX;
}

const char *pf_stop_reason_str(pf_stop_reason r) {
    switch (r) {
    case PF_STOP_NONE: return "none";
    case PF_STOP_EOG: return "end of generation token";
    case PF_STOP_MAX_TOKENS: return "max tokens";
    case PF_STOP_STRING: return "stop string";
    case PF_STOP_CTX_FULL: return "context full";
    case PF_STOP_CALLBACK: return "stopped by callback";
    }
    return "unknown";
}

#define PF_MAX_DRAFT 256 /* most draft tokens per verification pass */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Text not yet handed to the callback: it could still turn into a stop string. */
typedef struct holdback {
    char *buf;
    size_t len;
    const pf_gen_params *p;
} holdback;

static bool emit(const holdback *h, const char *text, size_t n) {
    return n && h->p->on_text && h->p->on_text(h->p->user, text, n) != 0;
}

/* Emits what can no longer be part of a stop string. Returns PF_STOP_STRING when one
 * appeared (the text before it is emitted, the rest dropped), PF_STOP_CALLBACK when the
 * callback asked to stop, else PF_STOP_NONE. `final`: no more text comes, emit everything. */
static pf_stop_reason drain(holdback *h, bool final) {
    const pf_gen_params *p = h->p;
    size_t first = SIZE_MAX;
    for (int i = 0; i < p->n_stop; i++) {
        const char *at = memmem(h->buf, h->len, p->stop[i], strlen(p->stop[i]));
        if (at && (size_t)(at - h->buf) < first) first = (size_t)(at - h->buf);
    }
    if (first != SIZE_MAX) {
        /* A stop string that starts inside a character (not valid UTF-8 on its own) must not
         * leave half a character behind: the emitted text stays valid UTF-8. */
        while (first > 0 && ((unsigned char)h->buf[first] & 0xC0) == 0x80) first--;
        h->len = 0;
        return emit(h, h->buf, first) ? PF_STOP_CALLBACK : PF_STOP_STRING;
    }
    size_t keep = 0; /* longest tail that is a proper prefix of some stop string */
    for (int i = 0; i < p->n_stop && !final; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t k = sl - 1 < h->len ? sl - 1 : h->len; k > keep; k--)
            if (!memcmp(h->buf + h->len - k, p->stop[i], k)) {
                keep = k;
                break;
            }
    }
    size_t cut = h->len - keep;
    while (cut > 0 && cut < h->len && ((unsigned char)h->buf[cut] & 0xC0) == 0x80) cut--; /* whole chars */
    bool stop = emit(h, h->buf, cut);
    memmove(h->buf, h->buf + cut, h->len - cut);
    h->len -= cut;
    return stop ? PF_STOP_CALLBACK : PF_STOP_NONE;
}

static int check_args(pf_context *ctx, const pf_tokenizer *tok, const pf_sampler *smp, const int32_t *prompt,
                      int64_t n_prompt, const pf_gen_params *p, size_t *max_stop, pf_error *err) {
    if (!ctx || !tok || !smp || !prompt || n_prompt < 1)
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: %s", n_prompt < 1 ? "empty prompt" : "NULL argument");
    int64_t n_vocab = pf_model_get_hparams(pf_context_model(ctx))->n_vocab;
    if (smp->n_vocab != n_vocab || pf_tokenizer_n_vocab(tok) < n_vocab)
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: vocabulary sizes differ (model %lld, sampler %d, tokenizer %d)",
                            (long long)n_vocab, smp->n_vocab, pf_tokenizer_n_vocab(tok));
    if (n_prompt > pf_context_n_ctx(ctx))
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: prompt of %lld tokens does not fit in the context of %lld",
                            (long long)n_prompt, (long long)pf_context_n_ctx(ctx));
    if (p->n_cached < 0 || p->n_cached >= n_prompt || p->n_cached > pf_context_n_past(ctx))
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: n_cached %lld outside [0, min(%lld, %lld)]",
                            (long long)p->n_cached, (long long)n_prompt - 1, (long long)pf_context_n_past(ctx));
    if (p->n_draft < 0 || p->n_draft > PF_MAX_DRAFT)
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: n_draft %d outside [0, %d]", (int)p->n_draft, PF_MAX_DRAFT);
    const int32_t gmin = p->ngram_min ? p->ngram_min : PF_LOOKUP_DEFAULT_NGRAM_MIN;
    const int32_t gmax = p->ngram_max ? p->ngram_max : PF_LOOKUP_DEFAULT_NGRAM_MAX;
    if (p->n_draft > 0 && (gmin < 1 || gmax < gmin || gmax > 64))
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: need 1 <= ngram_min (%d) <= ngram_max (%d) <= 64", (int)gmin,
                            (int)gmax);
    if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop))
        return pf_error_set(err, PF_ERR_ARG, "pf_generate: bad stop string list");
    *max_stop = 0;
    for (int i = 0; i < p->n_stop; i++) {
        if (!p->stop[i] || !p->stop[i][0])
            return pf_error_set(err, PF_ERR_ARG, "pf_generate: stop string %d is empty", i);
        size_t l = strlen(p->stop[i]);
        if (l > *max_stop) *max_stop = l;
    }
    return PF_OK;
}

/* Feeds one token through the detokenizer into the holdback buffer and drains it. */
static pf_stop_reason push_text(pf_detok_stream *ds, holdback *h, int32_t id, bool flush) {
    int64_t n = flush ? pf_detok_stream_flush(ds, h->buf + h->len, INT64_MAX)
                      : pf_detok_stream_push(ds, id, h->buf + h->len, INT64_MAX);
    if (n > 0) h->len += (size_t)n; /* the buffer has room for one push (see pf_generate) */
    return drain(h, flush);
}

/* Draft tokens worth decoding after the token at position `pos`: the draft and the token after
 * it must fit in the context, and with max_tokens only tokens that can still be emitted count
 * (the token sampled from the last draft row is the (k+1)-th after the current one). */
static int64_t draft_room(const pf_gen_params *p, int64_t n_ctx, int64_t pos, int64_t n_gen) {
    int64_t k = p->n_draft;
    if (k > n_ctx - pos - 1) k = n_ctx - pos - 1;
    if (p->max_tokens > 0 && k > p->max_tokens - n_gen - 1) k = p->max_tokens - n_gen - 1;
    return k < 0 ? 0 : k;
}

int pf_generate(pf_context *ctx, const pf_tokenizer *tok, pf_sampler *smp, const int32_t *prompt, int64_t n_prompt,
                const pf_gen_params *p, pf_gen_result *res, pf_error *err) {
    pf_gen_params defaults = pf_gen_default_params();
    pf_gen_result local;
    if (!p) p = &defaults;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    size_t max_stop = 0;
    int rc = check_args(ctx, tok, smp, prompt, n_prompt, p, &max_stop, err);
    if (rc != PF_OK) return rc;
    const int64_t n_vocab = smp->n_vocab, n_ctx = pf_context_n_ctx(ctx), n_rows = (int64_t)p->n_draft + 1;
    /* With lookup, one row of logits per token of a verification batch [token, draft...]. */
    float *logits = malloc((size_t)(n_rows * n_vocab) * sizeof *logits);
    int32_t *batch = malloc((size_t)n_rows * sizeof *batch);
    holdback h = {.buf = malloc(max_stop + (size_t)pf_detok_stream_max(tok) + 8), .p = p};
    pf_lookup *lk = NULL;
    if (!logits || !batch || !h.buf) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "pf_generate: out of memory");
        goto done;
    }
    if (p->n_draft > 0) {
        rc = pf_lookup_create(n_ctx + 1, p->ngram_min ? p->ngram_min : PF_LOOKUP_DEFAULT_NGRAM_MIN,
                              p->ngram_max ? p->ngram_max : PF_LOOKUP_DEFAULT_NGRAM_MAX, &lk, err);
        if (rc == PF_OK) rc = pf_lookup_add(lk, prompt, n_prompt, err);
        if (rc != PF_OK) goto done;
    }
    pf_sampler_clear_history(smp); /* the penalty window starts from the prompt, as in llama.cpp */
    for (int64_t i = 0; i < n_prompt; i++) pf_sampler_accept(smp, prompt[i]);

    double t0 = now_ms();
    rc = pf_decode(ctx, prompt + p->n_cached, n_prompt - p->n_cached, p->n_cached, logits, PF_LOGITS_LAST, err);
    if (rc != PF_OK) goto done;
    double t1 = now_ms();
    res->n_prompt = n_prompt - p->n_cached;
    res->prompt_ms = t1 - t0;

    pf_detok_stream ds;
    pf_detok_stream_init(&ds, tok, false, p->strip_first_space);
    pf_stop_reason stop = PF_STOP_NONE;
    const float *row = logits;  /* the logits that predict the token at position pos        */
    int64_t pos = n_prompt;     /* where the next sampled token goes = positions kept so far */
    int64_t n_pend = 0, i_pend = 0; /* draft tokens batch[1..n_pend] decoded after row's token; */
                                    /* batch[1 + i_pend] sits at position pos                   */
    while (stop == PF_STOP_NONE) {
        /* The same draw as plain decoding; a draft token is kept iff the draw equals it. */
        bool hit = false;
        int32_t id = pf_sampler_verify(smp, row, i_pend < n_pend ? batch[1 + i_pend] : -1, &hit);
        if (hit) res->n_accepted++;
        if (pf_token_is_eog(tok, id)) {
            stop = PF_STOP_EOG;
            break;
        }
        pf_sampler_accept(smp, id);
        if (p->out_ids && res->n_gen < p->out_cap) p->out_ids[res->n_gen] = id;
        res->n_gen++;
        if (lk && (rc = pf_lookup_add(lk, &id, 1, err)) != PF_OK) break;
        stop = push_text(&ds, &h, id, false);
        if (stop != PF_STOP_NONE) break;
        if (p->max_tokens > 0 && res->n_gen >= p->max_tokens) stop = PF_STOP_MAX_TOKENS;
        else if (pos >= n_ctx) stop = PF_STOP_CTX_FULL;
        if (stop != PF_STOP_NONE) break;
        if (hit) { /* its K/V are in the cache already and its logits are the next row */
            i_pend++, pos++;
            row += n_vocab;
            continue;
        }
        /* Decode the token (and a fresh draft after it) at pos; positions of rejected draft
         * tokens beyond pos are overwritten (pf_decode rewinds to pos). */
        int64_t k = lk ? draft_room(p, n_ctx, pos, res->n_gen) : 0;
        if (k > 0) k = pf_lookup_draft(lk, batch + 1, k);
        batch[0] = id;
        rc = pf_decode(ctx, batch, k + 1, pos, logits, k > 0 ? PF_LOGITS_ALL : PF_LOGITS_LAST, err);
        if (rc != PF_OK) break;
        res->n_forward++;
        res->n_drafted += k;
        row = logits;
        n_pend = k, i_pend = 0, pos++;
    }
    /* As after plain decoding, the cache holds everything before the last token sampled. */
    if (rc == PF_OK && pf_context_n_past(ctx) > pos) rc = pf_context_truncate(ctx, pos, err);
    /* Natural ends release what was held back (and an incomplete UTF-8 tail as U+FFFD). */
    if (rc == PF_OK && stop != PF_STOP_STRING && stop != PF_STOP_CALLBACK) {
        pf_stop_reason last = push_text(&ds, &h, 0, true);
        if (last != PF_STOP_NONE) stop = last;
    }
    res->stop = stop;
    res->gen_ms = now_ms() - t1;
done:
    pf_lookup_free(lk);
    free(logits);
    free(batch);
    free(h.buf);
    return rc;
}
