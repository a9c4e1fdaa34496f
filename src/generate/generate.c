/* Generation loop: prompt decode, then sample -> stream text -> decode, until an end-of-
 * generation token, max_tokens, a stop string, a full context or the callback says stop. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate/sampler_internal.h"

pf_gen_params pf_gen_default_params(void) { return (pf_gen_params){0}; }

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
    const int64_t n_vocab = smp->n_vocab, n_ctx = pf_context_n_ctx(ctx);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    holdback h = {.buf = malloc(max_stop + (size_t)pf_detok_stream_max(tok) + 8), .p = p};
    if (!logits || !h.buf) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "pf_generate: out of memory");
        goto done;
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
    while (stop == PF_STOP_NONE) {
        int32_t id = pf_sampler_sample(smp, logits);
        if (pf_token_is_eog(tok, id)) {
            stop = PF_STOP_EOG;
            break;
        }
        pf_sampler_accept(smp, id);
        if (p->out_ids && res->n_gen < p->out_cap) p->out_ids[res->n_gen] = id;
        res->n_gen++;
        stop = push_text(&ds, &h, id, false);
        if (stop != PF_STOP_NONE) break;
        if (p->max_tokens > 0 && res->n_gen >= p->max_tokens) stop = PF_STOP_MAX_TOKENS;
        else if (pf_context_n_past(ctx) >= n_ctx) stop = PF_STOP_CTX_FULL;
        else rc = pf_decode(ctx, &id, 1, pf_context_n_past(ctx), logits, PF_LOGITS_LAST, err);
        if (rc != PF_OK) break;
    }
    /* Natural ends release what was held back (and an incomplete UTF-8 tail as U+FFFD). */
    if (rc == PF_OK && stop != PF_STOP_STRING && stop != PF_STOP_CALLBACK) {
        pf_stop_reason last = push_text(&ds, &h, 0, true);
        if (last != PF_STOP_NONE) stop = last;
    }
    res->stop = stop;
    res->gen_ms = now_ms() - t1;
done:
    free(logits);
    free(h.buf);
    return rc;
}
