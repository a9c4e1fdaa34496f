/* Phi-3 chat template (spec 5.4), built in rather than interpreting the file's Jinja: every
 * Phi-3 release uses the same role tags and only differs in whether a system branch exists. */
#include <string.h>

#include "phiforge.h"

pf_chat_format pf_chat_format_from_gguf(const pf_gguf *g) {
    pf_chat_format f = {.system = true};
    const char *t = NULL;
    if (g && pf_gguf_get_str(g, "tokenizer.chat_template", &t, NULL) == PF_OK && t)
        /* A literal system tag, or role tags built from the role name ("<|" + role + "|>"). */
        f.system = strstr(t, "<|system|>") || strstr(t, "message['role'] + '|>'");
    return f;
}

typedef struct writer {
    char *dst; /* NULL: only measure */
    int64_t len;
} writer;

static void put(writer *w, const char *s) {
    size_t n = strlen(s);
    if (w->dst) memcpy(w->dst + w->len, s, n);
    w->len += (int64_t)n;
}

/* One pass over the messages; writes when w->dst is set. */
static void render(const pf_chat_format *f, const pf_chat_msg *msgs, int64_t n, bool gen, writer *w) {
    int64_t fold_from = 0; /* first system message not yet folded into a user message */
    for (int64_t i = 0; i < n; i++) {
        const char *c = msgs[i].content;
        switch (msgs[i].role) {
        case PF_CHAT_SYSTEM:
            if (f->system && c[0]) put(w, "<|system|>\n"), put(w, c), put(w, "<|end|>\n");
            break;
        case PF_CHAT_USER:
            put(w, "<|user|>\n");
            for (int64_t j = fold_from; j < i && !f->system; j++)
                if (msgs[j].role == PF_CHAT_SYSTEM && msgs[j].content[0]) put(w, msgs[j].content), put(w, "\n\n");
            fold_from = i + 1;
            put(w, c), put(w, "<|end|>\n");
            break;
        case PF_CHAT_ASSISTANT: put(w, "<|assistant|>\n"), put(w, c), put(w, "<|end|>\n"); break;
        }
    }
    if (gen) put(w, "<|assistant|>\n");
}

int64_t pf_chat_render(const pf_chat_format *f, const pf_chat_msg *msgs, int64_t n, bool add_generation_prompt,
                       char *buf, int64_t cap, pf_error *err) {
    if (!f || n < 0 || (n > 0 && !msgs) || cap < 0 || (cap > 0 && !buf))
        return pf_error_set(err, PF_ERR_ARG, "pf_chat_render: invalid argument");
    for (int64_t i = 0; i < n; i++) {
        if (msgs[i].role != PF_CHAT_SYSTEM && msgs[i].role != PF_CHAT_USER && msgs[i].role != PF_CHAT_ASSISTANT)
            return pf_error_set(err, PF_ERR_ARG, "pf_chat_render: message %lld has unknown role %d", (long long)i,
                                (int)msgs[i].role);
        if (!msgs[i].content)
            return pf_error_set(err, PF_ERR_ARG, "pf_chat_render: message %lld has no content", (long long)i);
    }
    writer w = {0};
    render(f, msgs, n, add_generation_prompt, &w);
    if (w.len < cap) {
        int64_t len = w.len;
        w = (writer){.dst = buf};
        render(f, msgs, n, add_generation_prompt, &w);
        buf[len] = 0;
    }
    return w.len;
}
