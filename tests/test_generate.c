/* Generation, chat and their CLI on the tiny Phi-3 model: greedy output equals the argmax chain
 * computed with pf_decode (and its first token the argmax of llama.cpp's golden logits), the
 * streamed text is valid UTF-8 and equals the tokens' text, stop strings cut the text exactly
 * before their first occurrence, EOG / max tokens / full context / callback stops, prompt reuse;
 * the chat template renders exactly as spec 5.4, a conversation's tokens equal the tokenized
 * template text, a second turn decodes only the new suffix and its logits equal a fresh
 * context's; `phiforge generate` and `phiforge chat` through the binary. */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#define MODEL "tests/data/phi3-tiny-f16.gguf"
#define BIN "./build/phiforge"
#define NV 32064
#define CHAIN 24

typedef struct env {
    pf_model *m;
    pf_tokenizer *tok;
    int32_t chat_ids[64];
    int n_chat;
    int32_t chain[CHAIN]; /* argmax chain after chat.ids, cut at an EOG token */
    int n_chain;
    char text[8192];      /* streamed text of the greedy run */
} env;

static pf_context *make_ctx(pf_test *t, const env *v, int64_t n_ctx) {
    pf_context_params p = pf_context_default_params();
    p.n_ctx = n_ctx, p.n_threads = 2;
    pf_context *ctx = NULL;
    pf_error e = {0};
    CHECK(t, pf_context_create(v->m, &p, &ctx, &e) == PF_OK, "context: %s", e.msg);
    return ctx;
}

static pf_sampler *greedy(pf_test *t) {
    pf_sampler_params p = pf_sampler_default_params();
    p.temperature = 0;
    pf_sampler *s = NULL;
    CHECK(t, pf_sampler_create(&p, NV, &s, NULL) == PF_OK, "sampler");
    return s;
}

static int32_t argmax(const float *l) {
    int32_t b = 0;
    for (int32_t i = 1; i < NV; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* The reference: decode token by token, take the argmax, stop at an EOG token. */
static void compute_chain(pf_test *t, env *v) {
    pf_context *ctx = make_ctx(t, v, 128);
    float *l = malloc(NV * sizeof *l);
    pf_error e = {0};
    int rc = pf_decode(ctx, v->chat_ids, v->n_chat, 0, l, PF_LOGITS_LAST, &e);
    for (v->n_chain = 0; rc == PF_OK && v->n_chain < CHAIN;) {
        int32_t id = argmax(l);
        if (pf_token_is_eog(v->tok, id)) break;
        v->chain[v->n_chain++] = id;
        rc = pf_decode(ctx, &id, 1, v->n_chat + v->n_chain - 1, l, PF_LOGITS_LAST, &e);
    }
    CHECK(t, rc == PF_OK && v->n_chain > 0, "reference chain: %s", e.msg);
    free(l);
    pf_context_free(ctx);
}

/* ---- text capture --------------------------------------------------------------------------- */

typedef struct capture {
    char text[8192];
    size_t len;
    int calls, stop_after; /* stop_after > 0: return 1 on that call */
    bool bad_utf8;
} capture;

static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) || (c == 0xF0 && s[i + 1] < 0x90) ||
            (c == 0xF4 && s[i + 1] > 0x8F))
            return false;
        i += k;
    }
    return true;
}

static int on_text(void *user, const char *text, size_t len) {
    capture *c = user;
    c->calls++;
    if (!valid_utf8((const unsigned char *)text, len)) c->bad_utf8 = true;
    if (c->len + len < sizeof c->text) memcpy(c->text + c->len, text, len), c->len += len;
    c->text[c->len] = 0;
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

/* Text of the chain: concatenated pieces, no space stripped. */
static size_t chain_text(const env *v, const int32_t *ids, int n, char *buf, size_t cap) {
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = pf_token_to_piece(v->tok, ids[i], false, buf + w, (int64_t)(cap - w - 1));
        if (k > 0) w += (size_t)k;
    }
    buf[w] = 0;
    return w;
}

/* One greedy generation after chat.ids on a fresh context. */
static int gen(pf_test *t, const env *v, pf_gen_params *p, capture *cap, pf_gen_result *r, int32_t *out, int64_t n_ctx) {
    pf_context *ctx = make_ctx(t, v, n_ctx);
    pf_sampler *s = greedy(t);
    memset(cap, 0, sizeof *cap);
    p->on_text = on_text, p->user = cap, p->out_ids = out, p->out_cap = out ? 256 : 0;
    pf_error e = {0};
    int rc = pf_generate(ctx, v->tok, s, v->chat_ids, v->n_chat, p, r, &e);
    if (rc == PF_OK) CHECK(t, !cap->bad_utf8, "a streamed piece is not valid UTF-8: '%s' (stop '%s')", cap->text, p->n_stop ? p->stop[0] : "");
    int64_t past = pf_context_n_past(ctx);
    pf_sampler_free(s);
    pf_context_free(ctx);
    return rc == PF_OK ? (int)past : rc;
}

static void test_greedy(pf_test *t, env *v) {
    /* The golden's last row: llama.cpp's logits after chat.ids. */
    char path[256];
    size_t size = 0;
    float *golden = pf_test_data_path(path, sizeof path, "models", "phi3-tiny-f16.logits.f32")
                        ? pf_test_read_file(path, &size) : NULL;
    if (golden && size == (size_t)v->n_chat * NV * sizeof(float)) {
        const float *last = golden + (size_t)(v->n_chat - 1) * NV;
        int32_t a = argmax(last);
        float second = -INFINITY;
        for (int i = 0; i < NV; i++)
            if (i != a) second = fmaxf(second, last[i]);
        CHECK(t, v->chain[0] == a, "first generated token %d, golden argmax %d (margin %g)", v->chain[0], a,
              (double)(last[a] - second));
    } else {
        CHECK(t, 0, "golden logits missing");
    }
    free(golden);

    pf_gen_params p = pf_gen_default_params();
    p.max_tokens = CHAIN;
    capture cap;
    pf_gen_result r;
    int32_t out[256];
    int past = gen(t, v, &p, &cap, &r, out, 128);
    CHECK(t, r.n_gen == v->n_chain && !memcmp(out, v->chain, (size_t)v->n_chain * sizeof *out),
          "greedy ids differ from the argmax chain (%lld vs %d tokens)", (long long)r.n_gen, v->n_chain);
    CHECK(t, r.stop == (v->n_chain == CHAIN ? PF_STOP_MAX_TOKENS : PF_STOP_EOG), "stop reason %s", pf_stop_reason_str(r.stop));
    CHECK(t, r.n_prompt == v->n_chat && r.prompt_ms >= 0 && r.gen_ms >= 0, "timings: %lld prompt tokens",
          (long long)r.n_prompt);
    /* The last sampled token is never decoded. */
    CHECK(t, past == v->n_chat + v->n_chain - (r.stop == PF_STOP_MAX_TOKENS), "n_past %d", past);
    char want[8192];
    size_t wl = chain_text(v, v->chain, v->n_chain, want, sizeof want);
    if (valid_utf8((unsigned char *)want, wl))
        CHECK(t, cap.len == wl && !memcmp(cap.text, want, wl), "streamed text '%s' != pieces '%s'", cap.text, want);
    printf("greedy after chat.ids: %d tokens \"%s\"\n", v->n_chain, cap.text);

    /* strip_first_space drops exactly one leading space. */
    p = pf_gen_default_params(), p.max_tokens = CHAIN, p.strip_first_space = true;
    capture c2;
    gen(t, v, &p, &c2, &r, NULL, 128);
    CHECK(t, (want[0] == ' ' && !strcmp(c2.text, want + 1)) || (want[0] != ' ' && !strcmp(c2.text, want)) ||
                 !valid_utf8((unsigned char *)want, wl), "strip_first_space: '%s'", c2.text);
}

/* Text cut before the first occurrence of any stop string; ids still as greedy. */
static void test_stop_strings(pf_test *t, env *v) {
    pf_gen_params p = pf_gen_default_params();
    p.max_tokens = CHAIN;
    capture full, cap;
    pf_gen_result r;
    gen(t, v, &p, &full, &r, NULL, 128);
    memcpy(v->text, full.text, full.len + 1);
    const char *T = full.text;
    size_t n = full.len;
    if (n < 24) {
        CHECK(t, 0, "greedy text too short for the stop-string tests (%zu bytes)", n);
        return;
    }
    /* Slices of the text that start on a character boundary (valid UTF-8 stop strings). */
    size_t from[3] = {10, 18, 12};
    for (int i = 0; i < 3; i++)
        while (((unsigned char)T[from[i]] & 0xC0) == 0x80) from[i]++;
    char s1[8], s2[8], s3[8], never[16];
    memcpy(s1, T + from[0], 4), s1[4] = 0; /* occurs at 10 (or earlier) */
    memcpy(s2, T + from[1], 5), s2[5] = 0;
    memcpy(s3, T, 3), s3[3] = 0;
    memcpy(never, T + from[2], 5), memcpy(never + 5, "\x01\x02", 3); /* a prefix occurs, the whole never */
    struct { const char *stops[2]; int n; } cases[] = {{{s1}, 1}, {{s2, s1}, 2}, {{s3}, 1}, {{never}, 1}, {{never, s2}, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        p = pf_gen_default_params();
        p.max_tokens = CHAIN, p.stop = cases[c].stops, p.n_stop = cases[c].n;
        gen(t, v, &p, &cap, &r, NULL, 128);
        size_t first = SIZE_MAX;
        for (int i = 0; i < cases[c].n; i++) {
            const char *at = strstr(T, cases[c].stops[i]);
            if (at && (size_t)(at - T) < first) first = (size_t)(at - T);
        }
        if (first == SIZE_MAX) {
            CHECK(t, cap.len == n && !memcmp(cap.text, T, n),
                  "case %zu: unmatched stop string changed the text: '%s'", c, cap.text);
            CHECK(t, r.stop != PF_STOP_STRING, "case %zu: stop %s", c, pf_stop_reason_str(r.stop));
        } else {
            CHECK(t, r.stop == PF_STOP_STRING && cap.len == first && !memcmp(cap.text, T, first),
                  "case %zu: got '%s' (%s), want the first %zu bytes of '%s'", c, cap.text, pf_stop_reason_str(r.stop), first, T);
        }
    }
    const char *empty[] = {""};
    p = pf_gen_default_params(), p.stop = empty, p.n_stop = 1;
    CHECK(t, gen(t, v, &p, &cap, &r, NULL, 128) == PF_ERR_ARG, "empty stop string accepted");
}

static void test_stops(pf_test *t, env *v) {
    pf_gen_params p = pf_gen_default_params();
    capture cap;
    pf_gen_result r;
    /* max_tokens */
    p.max_tokens = 3;
    int past = gen(t, v, &p, &cap, &r, NULL, 128);
    CHECK(t, r.stop == PF_STOP_MAX_TOKENS && r.n_gen == 3 && past == v->n_chat + 2, "max 3: %s %lld, n_past %d",
          pf_stop_reason_str(r.stop), (long long)r.n_gen, past);
    /* callback */
    p = pf_gen_default_params(), p.max_tokens = CHAIN;
    memset(&cap, 0, sizeof cap);
    pf_context *ctx = make_ctx(t, v, 128);
    pf_sampler *s = greedy(t);
    cap.stop_after = 2;
    p.on_text = on_text, p.user = &cap;
    pf_error e = {0};
    int rc = pf_generate(ctx, v->tok, s, v->chat_ids, v->n_chat, &p, &r, &e);
    CHECK(t, rc == PF_OK && r.stop == PF_STOP_CALLBACK && cap.calls == 2, "callback stop: %s after %d calls",
          pf_stop_reason_str(r.stop), cap.calls);
    /* full context: 23 prompt tokens in 28 positions -> 6 tokens, 5 decoded */
    pf_context *small = make_ctx(t, v, 28);
    p = pf_gen_default_params();
    rc = pf_generate(small, v->tok, s, v->chat_ids, v->n_chat, &p, &r, &e);
    bool full = r.stop == PF_STOP_CTX_FULL && r.n_gen == 28 - v->n_chat + 1 && pf_context_n_past(small) == 28;
    CHECK(t, rc == PF_OK && (full || (r.stop == PF_STOP_EOG && v->n_chain < 6)), "context full: %s, %lld tokens",
          pf_stop_reason_str(r.stop), (long long)r.n_gen);
    /* EOG: a -1000 presence penalty on a prompt made only of EOG tokens makes one of them win. */
    pf_sampler_params sp = pf_sampler_default_params();
    sp.temperature = 0, sp.presence_penalty = -1000;
    pf_sampler *eog = NULL;
    pf_sampler_create(&sp, NV, &eog, NULL);
    int32_t prompt[] = {32000, 32001, 32007};
    memset(&cap, 0, sizeof cap);
    p = pf_gen_default_params(), p.on_text = on_text, p.user = &cap;
    rc = pf_generate(ctx, v->tok, eog, prompt, 3, &p, &r, &e);
    CHECK(t, rc == PF_OK && r.stop == PF_STOP_EOG && r.n_gen == 0 && cap.len == 0 && pf_context_n_past(ctx) == 3,
          "EOG: %s, %lld tokens", pf_stop_reason_str(r.stop), (long long)r.n_gen);
    /* Reuse: the first n_cached prompt tokens are not decoded again; the result is unchanged. */
    p = pf_gen_default_params(), p.max_tokens = 4;
    int32_t a[8], b[8];
    p.out_ids = a, p.out_cap = 8;
    rc = pf_generate(ctx, v->tok, s, v->chat_ids, v->n_chat, &p, &r, &e);
    p.out_ids = b, p.n_cached = v->n_chat - 1;
    rc |= pf_generate(ctx, v->tok, s, v->chat_ids, v->n_chat, &p, &r, &e);
    CHECK(t, rc == PF_OK && r.n_prompt == 1 && !memcmp(a, b, sizeof(int32_t) * 4) && !memcmp(a, v->chain, 4 * sizeof *a),
          "n_cached: %lld decoded", (long long)r.n_prompt);
    /* Bad arguments. */
    p.n_cached = v->n_chat;
    CHECK(t, pf_generate(ctx, v->tok, s, v->chat_ids, v->n_chat, &p, &r, &e) == PF_ERR_ARG, "n_cached = n_prompt accepted");
    p.n_cached = 0;
    CHECK(t, pf_generate(small, v->tok, s, v->chat_ids, 40, &p, &r, &e) == PF_ERR_ARG && strstr(e.msg, "context"),
          "prompt beyond the context: %s", e.msg);
    pf_sampler *wrong = NULL;
    pf_sampler_create(&sp, 100, &wrong, NULL);
    CHECK(t, pf_generate(ctx, v->tok, wrong, v->chat_ids, v->n_chat, &p, &r, &e) == PF_ERR_ARG, "vocab mismatch accepted");
    pf_sampler_free(wrong);
    pf_sampler_free(eog);
    pf_sampler_free(s);
    pf_context_free(ctx);
    pf_context_free(small);
}

/* ---- chat template -------------------------------------------------------------------------- */

#define SYS "You are terse."
#define WITH_SYSTEM "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello there.<|end|>\n" \
                    "<|user|>\nAnd now?<|end|>\n<|assistant|>\n"
#define FOLDED "<|user|>\nYou are terse.\n\nHi<|end|>\n<|assistant|>\nHello there.<|end|>\n" \
               "<|user|>\nAnd now?<|end|>\n<|assistant|>\n"
#define XR7 "What is the maximum operating pressure of the XR-7 hydraulic pump?"

static const pf_chat_msg CONV[] = {{PF_CHAT_SYSTEM, SYS}, {PF_CHAT_USER, "Hi"}, {PF_CHAT_ASSISTANT, "Hello there."},
                                   {PF_CHAT_USER, "And now?"}};

static bool renders(const pf_chat_format *f, const pf_chat_msg *m, int n, bool gen, const char *want) {
    char buf[1024];
    int64_t len = pf_chat_render(f, m, n, gen, buf, sizeof buf, NULL);
    return len == (int64_t)strlen(want) && !strcmp(buf, want);
}

/* A GGUF holding only a chat template (or none), for pf_chat_format_from_gguf. */
static pf_chat_format format_of(const char *tmpl) {
    pf_gguf_writer *w = NULL;
    pf_gguf *g = NULL;
    pf_chat_format f = {.system = false};
    pf_gguf_writer_create(&w, NULL);
    pf_gguf_writer_set_str(w, "general.architecture", "phi3", NULL);
    if (tmpl) pf_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl, NULL);
    if (pf_gguf_writer_write(w, "build/tests/gen_tmpl.gguf", NULL, NULL, NULL) == PF_OK &&
        pf_gguf_open("build/tests/gen_tmpl.gguf", &g, NULL) == PF_OK)
        f = pf_chat_format_from_gguf(g);
    else
        f.system = 42; /* reported by the caller as a failure */
    pf_gguf_close(g);
    pf_gguf_writer_free(w);
    return f;
}

static void test_template(pf_test *t, const env *v) {
    pf_chat_format with = {.system = true}, without = {.system = false};
    CHECK(t, renders(&with, CONV, 4, true, WITH_SYSTEM), "template with system role");
    CHECK(t, renders(&without, CONV, 4, true, FOLDED), "system folded into the first user message");
    const char *nosys = "<|user|>\nHi<|end|>\n<|assistant|>\nHello there.<|end|>\n<|user|>\nAnd now?<|end|>\n<|assistant|>\n";
    CHECK(t, renders(&with, CONV + 1, 3, true, nosys) && renders(&without, CONV + 1, 3, true, nosys),
          "no system message");
    pf_chat_msg empty[] = {{PF_CHAT_SYSTEM, ""}, {PF_CHAT_USER, "Hi"}};
    CHECK(t, renders(&with, empty, 2, true, "<|user|>\nHi<|end|>\n<|assistant|>\n") &&
                 renders(&without, empty, 2, false, "<|user|>\nHi<|end|>\n"), "empty system / no generation prompt");
    char buf[256];
    memset(buf, 'x', sizeof buf);
    int64_t len = pf_chat_render(&with, CONV, 4, true, buf, (int64_t)strlen(WITH_SYSTEM), NULL);
    CHECK(t, len == (int64_t)strlen(WITH_SYSTEM) && buf[0] == 'x', "too small a buffer is written: %lld", (long long)len);
    pf_chat_msg bad[] = {{(pf_chat_role)7, "?"}};
    CHECK(t, pf_chat_render(&with, bad, 1, true, buf, sizeof buf, NULL) == PF_ERR_ARG, "bad role accepted");

    CHECK(t, !pf_chat_format_from_gguf(pf_model_gguf(v->m)).system, "tiny model: April template has no system role");
    pf_chat_format f35 = format_of("{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
                                   "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}");
    pf_chat_format none = format_of(NULL);
    CHECK(t, f35.system == true && none.system == true, "system role: Phi-3.5 template %d, no template %d", f35.system,
          none.system);
}

/* ---- chat session --------------------------------------------------------------------------- */

static bool same_ids(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && !memcmp(a, b, (size_t)na * sizeof *a);
}

static pf_chat *session(pf_test *t, const env *v, pf_context *ctx, const pf_chat_format *f, const char *sys) {
    pf_chat *c = NULL;
    pf_error e = {0};
    CHECK(t, pf_chat_create(ctx, v->tok, f, sys, &c, &e) == PF_OK, "chat: %s", e.msg);
    return c;
}

static void test_conversation_tokens(pf_test *t, const env *v) {
    pf_context *ctx = make_ctx(t, v, 256);
    pf_chat_format fmt = pf_chat_format_from_gguf(pf_model_gguf(v->m)), with = {.system = true};
    int32_t got[256], want[256];
    pf_chat *c = session(t, v, ctx, &fmt, NULL);
    pf_chat_add(c, PF_CHAT_USER, XR7, NULL);
    int64_t n = pf_chat_prompt(c, got, 256, NULL);
    CHECK(t, same_ids(got, n, v->chat_ids, v->n_chat), "one question: %lld tokens, chat.ids has %d", (long long)n, v->n_chat);
    pf_chat_free(c);
    const pf_chat_format *fmts[] = {&fmt, &with};
    const char *texts[] = {FOLDED, WITH_SYSTEM};
    for (int k = 0; k < 2; k++) {
        c = session(t, v, ctx, fmts[k], SYS);
        for (int i = 1; i < 4; i++) pf_chat_add(c, CONV[i].role, CONV[i].content, NULL);
        n = pf_chat_prompt(c, got, 256, NULL);
        int64_t m = pf_tokenize(v->tok, texts[k], strlen(texts[k]), true, true, want, 256, NULL);
        CHECK(t, n > 20 && same_ids(got, n, want, m) && got[0] == 1, "multi-turn tokens (%s): %lld vs %lld",
              k ? "system role" : "folded", (long long)n, (long long)m);
        pf_chat_free(c);
    }
    pf_context_free(ctx);
}

/* Max |a - b| relative to max |b|. */
static double rel_diff(const float *a, const float *b) {
    double d = 0, mx = 0;
    for (int i = 0; i < NV; i++) d = fmax(d, fabs((double)a[i] - b[i])), mx = fmax(mx, fabs((double)b[i]));
    return d / (mx > 0 ? mx : 1);
}

/* Logits of the whole prompt on a fresh context. */
static void fresh_logits(pf_test *t, const env *v, const int32_t *ids, int64_t n, float *out) {
    pf_context *ctx = make_ctx(t, v, 256);
    CHECK(t, ctx && pf_decode(ctx, ids, n, 0, out, PF_LOGITS_LAST, NULL) == PF_OK, "fresh decode");
    pf_context_free(ctx);
}

static void test_reuse(pf_test *t, const env *v) {
    pf_context *ctx = make_ctx(t, v, 256);
    pf_chat_format fmt = pf_chat_format_from_gguf(pf_model_gguf(v->m));
    float *l = malloc(NV * sizeof *l), *ref = malloc(NV * sizeof *ref);
    int32_t p1[256], p2[256];
    pf_error e = {0};
    /* Given messages: turn 1's prompt is a token prefix of turn 2's, so all of it is reused. */
    pf_chat *c = session(t, v, ctx, &fmt, SYS);
    pf_chat_add(c, PF_CHAT_USER, "Hi", NULL);
    int64_t n1 = pf_chat_prompt(c, p1, 256, NULL);
    int rc = pf_chat_prefill(c, l, &e);
    pf_chat_stats s = pf_chat_last_stats(c);
    CHECK(t, rc == PF_OK && s.n_prompt == n1 && s.n_reused == 0 && s.n_decoded == n1, "turn 1: %s", e.msg);
    pf_chat_add(c, PF_CHAT_ASSISTANT, "Hello there.", NULL);
    pf_chat_add(c, PF_CHAT_USER, "And now?", NULL);
    int64_t n2 = pf_chat_prompt(c, p2, 256, NULL);
    rc = pf_chat_prefill(c, l, &e);
    s = pf_chat_last_stats(c);
    CHECK(t, rc == PF_OK && s.n_prompt == n2 && s.n_reused == n1 && s.n_decoded == n2 - n1,
          "turn 2 decoded %lld of %lld tokens, want %lld", (long long)s.n_decoded, (long long)n2, (long long)(n2 - n1));
    fresh_logits(t, v, p2, n2, ref);
    double d = rel_diff(l, ref);
    CHECK(t, d < 1e-5, "turn 2 logits differ from a fresh context's by %.3g (relative)", d);
    printf("chat reuse: turn 2 decoded %lld of %lld tokens, logits within %.2g of a fresh context\n",
           (long long)s.n_decoded, (long long)n2, d);
    pf_chat_free(c);

    /* Generated answers: reuse is the longest common prefix with what the cache holds. */
    pf_sampler *g = greedy(t);
    c = session(t, v, ctx, &fmt, SYS);
    capture cap = {0};
    int32_t out[64], out2[64];
    pf_gen_params p = pf_gen_default_params();
    p.max_tokens = 6, p.on_text = on_text, p.user = &cap, p.out_ids = out, p.out_cap = 64;
    pf_gen_result r;
    rc = pf_chat_respond(c, "Hi", g, &p, &r, &e);
    const pf_chat_msg *ans = pf_chat_message(c, 2);
    CHECK(t, rc == PF_OK && pf_chat_n_messages(c) == 3 && ans && ans->role == PF_CHAT_ASSISTANT &&
                 !strcmp(ans->content, cap.text), "answer recorded: %s", e.msg);
    CHECK(t, pf_chat_last_stats(c).n_reused == 0, "first turn reused tokens");
    int32_t kv[256];
    int64_t n_kv = pf_context_n_past(ctx);
    n1 = pf_chat_prompt(c, p1, 256, NULL); /* now includes the answer; rebuild turn 1's KV content */
    pf_chat *tmp = session(t, v, ctx, &fmt, SYS);
    pf_chat_add(tmp, PF_CHAT_USER, "Hi", NULL);
    int64_t n0 = pf_chat_prompt(tmp, kv, 256, NULL);
    pf_chat_free(tmp);
    memcpy(kv + n0, out, (size_t)r.n_gen * sizeof *out);
    CHECK(t, n_kv == n0 + r.n_gen - (r.stop != PF_STOP_EOG), "KV after turn 1: %lld", (long long)n_kv);
    memset(&cap, 0, sizeof cap);
    p.out_ids = out2;
    rc = pf_chat_respond(c, "And now?", g, &p, &r, &e);
    n2 = pf_chat_prompt(c, p2, 256, NULL); /* includes answer 2; its prompt part is what was decoded */
    s = pf_chat_last_stats(c);
    int64_t lcp = 0;
    while (lcp < n_kv && lcp < s.n_prompt - 1 && kv[lcp] == p2[lcp]) lcp++;
    CHECK(t, rc == PF_OK && s.n_reused == lcp && s.n_reused >= n0 && s.n_decoded == s.n_prompt - lcp,
          "turn 2 reused %lld tokens, common prefix %lld", (long long)s.n_reused, (long long)lcp);
    printf("chat reuse with a generated answer: %lld of %lld prompt tokens cached (KV held %lld)\n",
           (long long)s.n_reused, (long long)s.n_prompt, (long long)n_kv);
    fresh_logits(t, v, p2, s.n_prompt, ref);
    CHECK(t, r.n_gen == 0 || out2[0] == argmax(ref), "turn 2's first token %d, fresh argmax %d", out2[0], argmax(ref));
    (void)n1;
    /* Reset keeps the system prompt; "Hi" again is all cached but the last token. */
    pf_chat_reset(c);
    CHECK(t, pf_chat_n_messages(c) == 1 && pf_chat_message(c, 0)->role == PF_CHAT_SYSTEM, "reset");
    pf_chat_add(c, PF_CHAT_USER, "Hi", NULL);
    rc = pf_chat_prefill(c, l, &e);
    s = pf_chat_last_stats(c);
    CHECK(t, rc == PF_OK && s.n_prompt == n0 && s.n_decoded == 1, "after reset decoded %lld", (long long)s.n_decoded);
    pf_chat_free(c);

    /* A conversation longer than the context: error, and the message is not kept. */
    pf_context *small = make_ctx(t, v, 24);
    c = session(t, v, small, &fmt, NULL);
    rc = pf_chat_respond(c, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
                            " sixteen seventeen eighteen nineteen twenty", g, &p, &r, &e);
    CHECK(t, rc == PF_ERR_ARG && pf_chat_n_messages(c) == 0 && strstr(e.msg, "context"), "overflow: %d %s", rc, e.msg);
    pf_chat_free(c);
    pf_context_free(small);
    pf_sampler_free(g);
    pf_context_free(ctx);
    free(l);
    free(ref);
}

/* ---- CLI ------------------------------------------------------------------------------------ */

static int parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    char *end;
    for (long x; n < cap && (x = strtol(s, &end, 10), end != s); s = end) ids[n++] = (int32_t)x;
    return n;
}

/* In-process greedy answers of a fresh session: "Hi", then after a reset "And now?". */
static void chat_answers(pf_test *t, const env *v, char *want, size_t cap) {
    pf_context *ctx = make_ctx(t, v, 256);
    pf_chat_format fmt = pf_chat_format_from_gguf(pf_model_gguf(v->m));
    pf_chat *c = session(t, v, ctx, &fmt, SYS);
    pf_sampler *g = greedy(t);
    pf_gen_params p = pf_gen_default_params();
    p.max_tokens = 6;
    pf_chat_respond(c, "Hi", g, &p, NULL, NULL);
    snprintf(want, cap, "%s\n", pf_chat_message(c, 2)->content);
    pf_chat_reset(c);
    pf_chat_respond(c, "And now?", g, &p, NULL, NULL);
    snprintf(want + strlen(want), cap - strlen(want), "%s\n", pf_chat_message(c, 2)->content);
    pf_sampler_free(g);
    pf_chat_free(c);
    pf_context_free(ctx);
}

static void test_cli(pf_test *t, const env *v) {
    static char out[16384], err[4096];
    int32_t ids[256];
    char cmd[1024];
    setenv("PF_PROMPT", "<|user|>\n" XR7 "<|end|>\n<|assistant|>\n", 1);
    const char *forms[] = {"-p \"$PF_PROMPT\"", "--chat -p '" XR7 "'"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, BIN " generate -m " MODEL " %s -n %d --temp 0 -t 2 --print-ids --verbose-prompt"
                 " 2>build/tests/gen_err.txt", forms[k], CHAIN);
        int rc = pf_test_run(cmd, out, sizeof out);
        int n = parse_ids(out, ids, 256);
        CHECK(t, rc == 0 && same_ids(ids, n, v->chain, v->n_chain), "generate %s: rc %d, %d ids '%.200s'", forms[k], rc, n, out);
        FILE *f = fopen("build/tests/gen_err.txt", "r");
        size_t k2 = f ? fread(err, 1, sizeof err - 1, f) : 0;
        err[k2] = 0;
        if (f) fclose(f);
        const char *pi = strstr(err, "prompt ids (");
        n = pi ? parse_ids(strchr(pi, ':') + 1, ids, 256) : 0;
        CHECK(t, same_ids(ids, n, v->chat_ids, v->n_chat), "generate %s: prompt ids are not chat.ids: %s", forms[k], err);
        CHECK(t, strstr(err, "tok/s") && strstr(err, "prompt: 23 tokens"), "timings missing: %s", err);
    }
    /* Text output: what pf_generate streamed; with --stop the text before it. */
    int rc = pf_test_run(BIN " generate -m " MODEL " -p \"$PF_PROMPT\" -n 24 --temp 0 -t 2 2>/dev/null", out, sizeof out);
    CHECK(t, rc == 0 && !strcmp(out, v->text), "generate text '%s' != '%s'", out, v->text);
    if (strlen(v->text) > 16) {
        char stop[8];
        memcpy(stop, v->text + 8, 4), stop[4] = 0;
        setenv("PF_STOP", stop, 1);
        rc = pf_test_run(BIN " generate -m " MODEL " -p \"$PF_PROMPT\" -n 24 --temp 0 --stop \"$PF_STOP\" --stop zzzzqqq 2>&1 >"
                 "build/tests/gen_out.txt | grep -c 'stop: stop string'; cat build/tests/gen_out.txt", out, sizeof out);
        size_t first = (size_t)(strstr(v->text, stop) - v->text);
        CHECK(t, rc == 0 && !strncmp(out, "1\n", 2) && strlen(out + 2) == first && !strncmp(out + 2, v->text, first),
              "--stop: '%s'", out);
    }
    /* Sampling is reproducible from the seed. */
    char a[4096];
    rc = pf_test_run(BIN " generate -m " MODEL " -p Hello -n 12 --seed 7 --temp 1.2 --top-k 0 --print-ids 2>/dev/null", a, sizeof a);
    pf_test_run(BIN " generate -m " MODEL " -p Hello -n 12 --seed 7 --temp 1.2 --top-k 0 --print-ids 2>/dev/null", out, sizeof out);
    CHECK(t, rc == 0 && parse_ids(a, ids, 256) == 12 && !strcmp(a, out), "--seed: '%s' vs '%s'", a, out);

    /* chat through a pipe: no prompt marker, answers one per line, /reset and /quit. */
    char want[4096];
    chat_answers(t, v, want, sizeof want);
    rc = pf_test_run("printf 'Hi\\n/reset\\nAnd now?\\n/quit\\nignored\\n' | " BIN " chat -m " MODEL " --system '" SYS
             "' --temp 0 -n 6 -t 2 2>/dev/null", out, sizeof out);
    CHECK(t, rc == 0 && !strcmp(out, want), "chat output '%s', want '%s'", out, want);
    rc = pf_test_run("printf 'Hi' | " BIN " chat -m " MODEL " --system '" SYS "' --temp 0 -n 6 2>/dev/null", out, sizeof out);
    CHECK(t, rc == 0 && !strncmp(out, want, strlen(out)) && strchr(out, '\n') == out + strlen(out) - 1,
          "chat to EOF without newline: '%s'", out);

    /* Exit codes and help. */
    struct { const char *cmd, *expect; int rc; } cases[] = {
        {BIN " generate -h", "usage: phiforge generate", 0},
        {BIN " chat -h", "usage: phiforge chat", 0},
        {BIN " generate -p hi 2>&1", "usage: phiforge generate", 1},
        {BIN " generate -m " MODEL " -p hi --temp abc 2>&1", "bad --temp", 1},
        {BIN " generate -m " MODEL " -p hi --top-k -3 2>&1", "bad --top-k", 1},
        {BIN " generate -m " MODEL " -p hi --system x 2>&1", "--system needs --chat", 1},
        {BIN " generate -m tests/data/nope.gguf -p hi 2>&1", "nope.gguf", 1},
        {BIN " generate -m " MODEL " -p hi --repeat-penalty 0 2>&1", "repeat_penalty", 1},
        {"echo hi | " BIN " chat -m tests/data/nope.gguf 2>&1", "nope.gguf", 1},
        {BIN " chat -m " MODEL " extra 2>&1", "usage: phiforge chat", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc = pf_test_run(cases[i].cmd, out, sizeof out);
        CHECK(t, rc == cases[i].rc && strstr(out, cases[i].expect), "%s: rc %d, '%.300s'", cases[i].cmd, rc, out);
    }
}

int main(void) {
    pf_test t = {0};
    env v = {0};
    pf_error e = {0};
    FILE *f = fopen("tests/data/chat.ids", "r");
    while (f && v.n_chat < 64 && fscanf(f, "%d", &v.chat_ids[v.n_chat]) == 1) v.n_chat++;
    if (f) fclose(f);
    if (pf_model_load(MODEL, &v.m, &e) != PF_OK || v.n_chat != 23 ||
        pf_tokenizer_load(pf_model_gguf(v.m), &v.tok, &e) != PF_OK) {
        CHECK(&t, 0, "cannot load %s / chat.ids: %s", MODEL, e.msg);
        return TEST_REPORT(&t);
    }
    compute_chain(&t, &v);
    test_greedy(&t, &v);
    test_stop_strings(&t, &v);
    test_stops(&t, &v);
    test_template(&t, &v);
    test_conversation_tokens(&t, &v);
    test_reuse(&t, &v);
    test_cli(&t, &v);
    pf_tokenizer_free(v.tok);
    pf_model_free(v.m);
    return TEST_REPORT(&t);
}
