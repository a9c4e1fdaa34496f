/* Prompt packing for RAG answers.
 *
 * Order: system instructions, [earlier turns], then one user message holding the numbered
 * sources and, last, the question. Everything before the question depends only on the sources,
 * so two questions over the same sources share the [system + sources] token prefix (a KV cache
 * of that prefix can be reused).
 *
 * Budget: the rendered prompt (template, BOS) must fit p->max_tokens. Source blocks are counted
 * one by one (pf_tokenize of the block alone) and added in rank order; since tokenization at
 * block seams can differ by a token, the final prompt is rendered and tokenized once more and
 * sources are dropped from the end while it is over budget, so the bound is exact.
 *
 * Passages and the question are data, not markup: "<|" is written "< |" so that no text from a
 * document can become a chat control token (<|end|>, <|user|>, ...) when the prompt is
 * tokenized with special tokens parsed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phiforge.h"

static const char INSTRUCTIONS[] =
    "You answer questions using only the numbered sources given with the question. "
    "After every sentence that uses a source, cite it with its number in square brackets, like [1] or [2][3]. "
    "Do not cite sources that you did not use, and do not use knowledge from outside the sources. "
    "If the sources do not contain the answer, say that the knowledge base does not cover the question.";

const char *pf_rag_default_instructions(void) { return INSTRUCTIONS; }

pf_rag_prompt_params pf_rag_prompt_default_params(void) {
    return (pf_rag_prompt_params){.instructions = NULL, .max_tokens = 3584, .max_sources = 0,
                                  .min_source_tokens = 48, .history = NULL, .n_history = 0};
}

/* A growable string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->oom = true; return; }
        b->s = ns, b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Appends text[0..len) with every "<|" defused. */
static void sb_data(sbuf *b, const char *text, size_t len) {
    size_t from = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (text[i] == '<' && text[i + 1] == '|') {
            sb_put(b, text + from, i + 1 - from);
            sb_put(b, " ", 1);
            from = i + 1;
        }
    sb_put(b, text + from, len - from);
}

size_t pf_rag_source_label(const pf_search_hit *h, bool short_source, char *buf, size_t cap) {
    if (!h || !buf || !cap) return 0;
    const char *src = h->source ? h->source : (h->doc_key ? h->doc_key : "?");
    if (short_source) { /* the last two path components: enough to tell files apart */
        const char *last = strrchr(src, '/');
        if (last && last != src) {
            const char *prev = last - 1;
            while (prev > src && *prev != '/') prev--;
            src = *prev == '/' ? prev + 1 : prev;
        }
    }
    int n = snprintf(buf, cap, "%s", src);
    if (h->page > 0 && n >= 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, " p.%d", h->page);
    if (h->heading && h->heading[0] && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " \xE2\x80\xBA %s", h->heading);
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

/* "[n] "Title" — LABEL\nTEXT" with the hit's text cut to text_len bytes. */
static void put_block(sbuf *b, int n, const pf_search_hit *h, size_t text_len) {
    char head[1024];
    int k = snprintf(head, sizeof head, "[%d] ", n);
    sb_put(b, head, (size_t)k);
    /* the title, unless the heading path already starts with it (markdown's first # heading) */
    if (h->title && h->title[0] && !(h->heading && !strncmp(h->heading, h->title, strlen(h->title)))) {
        sb_str(b, "\"");
        sb_data(b, h->title, strlen(h->title));
        sb_str(b, "\" \xE2\x80\x94 ");
    }
    size_t ln = pf_rag_source_label(h, true, head, sizeof head);
    sb_data(b, head, ln);
    sb_str(b, "\n");
    sb_data(b, h->text ? h->text : "", text_len);
}

typedef struct packer {
    const pf_tokenizer *tok;
    const pf_chat_format *fmt;
    const pf_rag_prompt_params *p;
    const char *system, *question;
    const pf_search_hit *hits;
    pf_rag_source *src;
    int32_t n_src;
    pf_error *err;
} packer;

/* The user message for the current sources. */
static char *user_message(const packer *k) {
    sbuf b = {0};
    if (k->n_src > 0) {
        sb_str(&b, "Sources:\n\n");
        for (int32_t i = 0; i < k->n_src; i++) {
            put_block(&b, i + 1, &k->hits[k->src[i].hit], (size_t)k->src[i].text_len);
            sb_str(&b, "\n\n");
        }
    }
    sb_str(&b, "Question: ");
    sb_data(&b, k->question, strlen(k->question));
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* Renders system + history + user with the generation prompt and tokenizes it (BOS as the
 * tokenizer says). ids may be NULL to count only. */
static int64_t render_count(const packer *k, const char *user, int32_t **ids) {
    int64_t nm = 0;
    pf_chat_msg *msgs = malloc(((size_t)k->p->n_history + 2) * sizeof *msgs);
    if (!msgs) return pf_error_set(k->err, PF_ERR_NOMEM, "rag prompt: out of memory");
    if (k->system[0]) msgs[nm++] = (pf_chat_msg){PF_CHAT_SYSTEM, k->system};
    for (int64_t i = 0; i < k->p->n_history; i++) msgs[nm++] = k->p->history[i];
    msgs[nm++] = (pf_chat_msg){PF_CHAT_USER, user};
    int64_t len = pf_chat_render(k->fmt, msgs, nm, true, NULL, 0, k->err), n = len;
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (len >= 0 && !text) n = pf_error_set(k->err, PF_ERR_NOMEM, "rag prompt: out of memory");
    if (text) pf_chat_render(k->fmt, msgs, nm, true, text, len + 1, k->err);
    if (text) n = pf_tokenize(k->tok, text, (size_t)len, true, true, NULL, 0, k->err);
    if (text && n >= 0 && ids) {
        *ids = malloc(((size_t)n + 1) * sizeof **ids);
        if (!*ids) n = pf_error_set(k->err, PF_ERR_NOMEM, "rag prompt: out of memory");
        else n = pf_tokenize(k->tok, text, (size_t)len, true, true, *ids, n, k->err);
    }
    free(text);
    free(msgs);
    return n;
}

/* Tokens of one source block followed by its separator. */
static int64_t block_tokens(const packer *k, int n, const pf_search_hit *h, size_t text_len) {
    sbuf b = {0};
    put_block(&b, n, h, text_len);
    sb_str(&b, "\n\n");
    if (b.oom) { free(b.s); return pf_error_set(k->err, PF_ERR_NOMEM, "rag prompt: out of memory"); }
    int64_t c = pf_tokenize(k->tok, b.s, b.n, false, false, NULL, 0, k->err);
    free(b.s);
    return c;
}

/* The longest prefix of text (ending before a space or newline, or at a character boundary
 * when there is none) whose block fits `room` tokens; 0 when none does. Binary search: the
 * token count grows with the prefix. */
static int64_t cut_to_fit(const packer *k, int n, const pf_search_hit *h, size_t len, int64_t room) {
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        int64_t c = block_tokens(k, n, h, mid);
        if (c < 0) return c;
        if (c <= room) lo = mid; else hi = mid - 1;
    }
    size_t cut = lo;
    while (cut > 0 && cut < len && h->text[cut] != ' ' && h->text[cut] != '\n') cut--;
    if (cut == 0) cut = lo; /* one long word: cut inside it */
    while (cut > 0 && cut < len && ((unsigned char)h->text[cut] & 0xC0) == 0x80) cut--;
    while (cut > 0 && (h->text[cut - 1] == ' ' || h->text[cut - 1] == '\n')) cut--;
    return (int64_t)cut;
}

int pf_rag_build_prompt(const pf_tokenizer *tok, const pf_chat_format *fmt, const char *question,
                        const pf_search_hit *hits, int32_t n_hits, const pf_rag_prompt_params *p, pf_rag_prompt *out,
                        pf_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!tok || !fmt || !question || !out || n_hits < 0 || (n_hits && !hits))
        return pf_error_set(err, PF_ERR_ARG, "pf_rag_build_prompt: invalid argument");
    pf_rag_prompt_params def = pf_rag_prompt_default_params();
    if (!p) p = &def;
    if (p->max_tokens <= 0 || p->n_history < 0 || (p->n_history && !p->history))
        return pf_error_set(err, PF_ERR_ARG, "pf_rag_build_prompt: max_tokens must be > 0 and history valid");
    packer k = {tok, fmt, p, p->instructions ? p->instructions : INSTRUCTIONS, question, hits, NULL, 0, err};
    int rc = PF_OK;
    char *user = NULL;
    k.src = calloc((size_t)n_hits + 1, sizeof *k.src);
    if (!k.src) return pf_error_set(err, PF_ERR_NOMEM, "rag prompt: out of memory");

    /* the prompt without sources, then with the "Sources:" header */
    int64_t base = (user = user_message(&k)) ? render_count(&k, user, NULL) : PF_ERR_NOMEM;
    free(user), user = NULL;
    if (base < 0) { rc = (int)base; goto fail; }
    if (base > p->max_tokens) {
        rc = pf_error_set(err, PF_ERR_ARG, "the question and instructions alone take %lld tokens, more than the %lld the prompt may use",
                          (long long)base, (long long)p->max_tokens);
        goto fail;
    }
    int64_t header = pf_tokenize(tok, "Sources:\n\n", 10, false, false, NULL, 0, err);
    if (header < 0) { rc = (int)header; goto fail; }
    int64_t room = p->max_tokens - base - header;
    int32_t limit = p->max_sources > 0 && p->max_sources < n_hits ? p->max_sources : n_hits;
    for (int32_t i = 0; i < limit && room > 0; i++) {
        const pf_search_hit *h = &hits[i];
        size_t len = h->text ? strlen(h->text) : 0;
        int64_t c = block_tokens(&k, k.n_src + 1, h, len);
        if (c < 0) { rc = (int)c; goto fail; }
        if (c <= room) {
            k.src[k.n_src++] = (pf_rag_source){i, (int64_t)len, false};
            room -= c;
            continue;
        }
        if (room < p->min_source_tokens) break;
        int64_t cut = cut_to_fit(&k, k.n_src + 1, h, len, room);
        if (cut < 0) { rc = (int)cut; goto fail; }
        if (cut > 0) k.src[k.n_src++] = (pf_rag_source){i, cut, true};
        break;
    }
    /* exact check on the final text */
    for (;;) {
        user = user_message(&k);
        if (!user) { rc = pf_error_set(err, PF_ERR_NOMEM, "rag prompt: out of memory"); goto fail; }
        int32_t *ids = NULL;
        int64_t n = render_count(&k, user, &ids);
        if (n < 0) { rc = (int)n; goto fail; }
        if (n <= p->max_tokens || k.n_src == 0) {
            out->ids = ids, out->n_ids = n;
            break;
        }
        free(ids);
        free(user), user = NULL;
        k.n_src--;
    }
    out->system = strdup(k.system);
    if (!out->system) { rc = pf_error_set(err, PF_ERR_NOMEM, "rag prompt: out of memory"); goto fail; }
    out->user = user, user = NULL;
    out->sources = k.src, k.src = NULL;
    out->n_sources = 0;
    out->n_sources = (int32_t)(k.n_src);
    out->n_dropped = n_hits - out->n_sources;
    return PF_OK;
fail:
    free(user);
    free(k.src);
    pf_rag_prompt_free(out);
    return rc;
}

void pf_rag_prompt_free(pf_rag_prompt *p) {
    if (!p) return;
    free(p->system);
    free(p->user);
    free(p->ids);
    free(p->sources);
    memset(p, 0, sizeof *p);
}
