/* Chat session: the conversation as messages plus a mirror of the token ids in the KV cache.
 * Every turn re-renders and re-tokenizes the whole conversation, so the prompt is always the
 * canonical tokenization of the template text; the longest prefix that the cache already holds
 * is kept and only the rest is decoded (pf_decode with pos0 = that length). */
#include <stdlib.h>
#include <string.h>

#include "phiforge.h"

struct pf_chat {
    pf_context *ctx;
    const pf_tokenizer *tok;
    pf_chat_format fmt;
    pf_chat_msg *msgs;         /* contents are owned copies                        */
    int64_t n_msgs, cap_msgs, n_fixed; /* n_fixed: leading system prompt kept by reset */
    int32_t *kv;               /* ids at KV positions 0..n_kv; n_ctx of room       */
    int64_t n_kv;
    int32_t *prompt;           /* tokens of the current prompt                     */
    int64_t n_prompt, cap_prompt;
    char *text;                /* rendered conversation                            */
    int64_t cap_text;
    char *answer;              /* text of the answer being generated               */
    size_t answer_len, answer_cap;
    const pf_gen_params *fwd;  /* caller's callback, called through collect()      */
    pf_chat_stats stats;
};

int pf_chat_create(pf_context *ctx, const pf_tokenizer *tok, const pf_chat_format *fmt, const char *system,
                   pf_chat **out, pf_error *err) {
    if (out) *out = NULL;
    if (!ctx || !tok || !fmt || !out) return pf_error_set(err, PF_ERR_ARG, "pf_chat_create: NULL argument");
    pf_chat *c = calloc(1, sizeof *c);
    if (!c) return pf_error_set(err, PF_ERR_NOMEM, "pf_chat_create: out of memory");
    c->ctx = ctx, c->tok = tok, c->fmt = *fmt;
    c->kv = malloc((size_t)pf_context_n_ctx(ctx) * sizeof *c->kv);
    if (!c->kv) {
        pf_chat_free(c);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_chat_create: out of memory");
    }
    if (system && system[0]) {
        int rc = pf_chat_add(c, PF_CHAT_SYSTEM, system, err);
        if (rc != PF_OK) {
            pf_chat_free(c);
            return rc;
        }
        c->n_fixed = 1;
    }
    *out = c;
    return PF_OK;
}

static void truncate_msgs(pf_chat *c, int64_t n) {
    while (c->n_msgs > n) free((char *)c->msgs[--c->n_msgs].content);
}

void pf_chat_free(pf_chat *c) {
    if (!c) return;
    truncate_msgs(c, 0);
    free(c->msgs);
    free(c->kv);
    free(c->prompt);
    free(c->text);
    free(c->answer);
    free(c);
}

void pf_chat_reset(pf_chat *c) {
    if (c) truncate_msgs(c, c->n_fixed);
}

int pf_chat_add(pf_chat *c, pf_chat_role role, const char *content, pf_error *err) {
    if (!c || !content || (role != PF_CHAT_SYSTEM && role != PF_CHAT_USER && role != PF_CHAT_ASSISTANT))
        return pf_error_set(err, PF_ERR_ARG, "pf_chat_add: invalid argument");
    if (c->n_msgs == c->cap_msgs) {
        int64_t cap = c->cap_msgs ? 2 * c->cap_msgs : 8;
        pf_chat_msg *m = realloc(c->msgs, (size_t)cap * sizeof *m);
        if (!m) return pf_error_set(err, PF_ERR_NOMEM, "pf_chat_add: out of memory");
        c->msgs = m, c->cap_msgs = cap;
    }
    char *copy = strdup(content);
    if (!copy) return pf_error_set(err, PF_ERR_NOMEM, "pf_chat_add: out of memory");
    c->msgs[c->n_msgs++] = (pf_chat_msg){.role = role, .content = copy};
    return PF_OK;
}

int64_t pf_chat_n_messages(const pf_chat *c) { return c ? c->n_msgs : 0; }

const pf_chat_msg *pf_chat_message(const pf_chat *c, int64_t i) {
    return c && i >= 0 && i < c->n_msgs ? &c->msgs[i] : NULL;
}

pf_chat_stats pf_chat_last_stats(const pf_chat *c) { return c ? c->stats : (pf_chat_stats){0}; }

/* Grows *buf to hold n elements of size `size`. */
static int reserve(void **buf, int64_t *cap, int64_t n, size_t size) {
    if (n <= *cap) return PF_OK;
    void *p = realloc(*buf, (size_t)n * size);
    if (!p) return PF_ERR_NOMEM;
    *buf = p, *cap = n;
    return PF_OK;
}

/* Renders and tokenizes the conversation + generation prompt into c->prompt. */
static int build(pf_chat *c, pf_error *err) {
    int64_t len = pf_chat_render(&c->fmt, c->msgs, c->n_msgs, true, NULL, 0, err);
    if (len < 0) return (int)len;
    if (reserve((void **)&c->text, &c->cap_text, len + 1, 1) != PF_OK)
        return pf_error_set(err, PF_ERR_NOMEM, "chat: out of memory for a %lld-byte prompt", (long long)len);
    pf_chat_render(&c->fmt, c->msgs, c->n_msgs, true, c->text, c->cap_text, err);
    for (;;) {
        int64_t n = pf_tokenize(c->tok, c->text, (size_t)len, true, true, c->prompt, c->cap_prompt, err);
        if (n < 0) return (int)n;
        if (n <= c->cap_prompt) {
            c->n_prompt = n;
            return PF_OK;
        }
        if (reserve((void **)&c->prompt, &c->cap_prompt, n, sizeof *c->prompt) != PF_OK)
            return pf_error_set(err, PF_ERR_NOMEM, "chat: out of memory for %lld tokens", (long long)n);
    }
}

/* build() and the reusable prefix; at least one token is always decoded, for its logits. */
static int prepare(pf_chat *c, int64_t *lcp, pf_error *err) {
    int rc = build(c, err);
    if (rc != PF_OK) return rc;
    int64_t n = c->n_prompt, n_ctx = pf_context_n_ctx(c->ctx), past = pf_context_n_past(c->ctx);
    if (n > n_ctx)
        return pf_error_set(err, PF_ERR_ARG, "chat: the conversation (%lld tokens) exceeds the context (%lld)",
                            (long long)n, (long long)n_ctx);
    int64_t m = c->n_kv < past ? c->n_kv : past, k = 0;
    while (k < m && k < n - 1 && c->kv[k] == c->prompt[k]) k++;
    *lcp = k;
    c->stats = (pf_chat_stats){.n_prompt = n, .n_reused = k, .n_decoded = n - k};
    return PF_OK;
}

int64_t pf_chat_prompt(pf_chat *c, int32_t *ids, int64_t cap, pf_error *err) {
    if (!c || cap < 0 || (cap > 0 && !ids)) return pf_error_set(err, PF_ERR_ARG, "pf_chat_prompt: invalid argument");
    int rc = build(c, err);
    if (rc != PF_OK) return rc;
    if (c->n_prompt <= cap) memcpy(ids, c->prompt, (size_t)c->n_prompt * sizeof *ids);
    return c->n_prompt;
}

int pf_chat_prefill(pf_chat *c, float *logits, pf_error *err) {
    if (!c) return pf_error_set(err, PF_ERR_ARG, "pf_chat_prefill: NULL session");
    int64_t lcp = 0;
    int rc = prepare(c, &lcp, err);
    if (rc != PF_OK) return rc;
    c->n_kv = lcp; /* positions from lcp on are rewritten (or lost on failure) */
    rc = pf_decode(c->ctx, c->prompt + lcp, c->n_prompt - lcp, lcp, logits, PF_LOGITS_LAST, err);
    if (rc != PF_OK) return rc;
    memcpy(c->kv, c->prompt, (size_t)c->n_prompt * sizeof *c->kv);
    c->n_kv = c->n_prompt;
    return PF_OK;
}

/* Text callback of a turn: keeps the answer and passes it on to the caller's callback. */
static int collect(void *user, const char *text, size_t len) {
    pf_chat *c = user;
    if (c->answer_len + len + 1 > c->answer_cap) {
        size_t cap = 2 * (c->answer_len + len + 1);
        char *p = realloc(c->answer, cap);
        if (!p) return 1; /* out of memory: stop, the answer keeps what fit */
        c->answer = p, c->answer_cap = cap;
    }
    memcpy(c->answer + c->answer_len, text, len);
    c->answer_len += len;
    return c->fwd->on_text ? c->fwd->on_text(c->fwd->user, text, len) : 0;
}

int pf_chat_respond(pf_chat *c, const char *user, pf_sampler *smp, const pf_gen_params *p, pf_gen_result *res,
                    pf_error *err) {
    if (!c || !smp) return pf_error_set(err, PF_ERR_ARG, "pf_chat_respond: NULL argument");
    pf_gen_params defaults = pf_gen_default_params();
    if (!p) p = &defaults;
    int64_t n_before = c->n_msgs, lcp = 0;
    int rc = user ? pf_chat_add(c, PF_CHAT_USER, user, err) : PF_OK;
    if (rc == PF_OK) rc = prepare(c, &lcp, err);
    if (rc == PF_OK) {
        pf_gen_params gp = *p;
        gp.n_cached = lcp;
        gp.strip_first_space = true; /* the answer starts a new text after the template */
        gp.on_text = collect, gp.user = c;
        gp.out_ids = c->kv + c->n_prompt;
        gp.out_cap = pf_context_n_ctx(c->ctx) - c->n_prompt;
        c->fwd = p;
        c->answer_len = 0;
        c->n_kv = lcp;
        memcpy(c->kv, c->prompt, (size_t)c->n_prompt * sizeof *c->kv);
        pf_gen_result local;
        if (!res) res = &local;
        rc = pf_generate(c->ctx, c->tok, smp, c->prompt, c->n_prompt, &gp, res, err);
        if (rc == PF_OK && p->out_ids && p->out_cap > 0) {
            int64_t k = res->n_gen < p->out_cap ? res->n_gen : p->out_cap;
            memcpy(p->out_ids, gp.out_ids, (size_t)k * sizeof *p->out_ids);
        }
    }
    if (rc != PF_OK) {
        truncate_msgs(c, n_before);
        return rc;
    }
    c->n_kv = pf_context_n_past(c->ctx); /* the prompt and every generated token but the last */
    if (!c->answer) { /* no text in any turn yet (collect() keeps room for the NUL) */
        if (!(c->answer = malloc(c->answer_cap = 64))) {
            c->answer_cap = 0;
            return pf_error_set(err, PF_ERR_NOMEM, "chat: out of memory for the answer");
        }
    }
    c->answer[c->answer_len] = 0;
    return pf_chat_add(c, PF_CHAT_ASSISTANT, c->answer, err);
}
