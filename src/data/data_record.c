/* One JSONL record -> one sample. Chat-like records (messages, alpaca, prompt/completion) are
 * rendered with the Phi-3 template and tokenized message by message: the tokenizer partitions
 * its input at special tokens first and every message's text starts with its role token, so
 * tokenizing the pieces gives exactly the tokens of the whole rendered text (the test checks
 * this) while telling which tokens belong to assistant turns. An assistant piece is
 * `<|assistant|>` + content + `<|end|>` (the "\n" after each special token is dropped by the
 * RSTRIP rule): every token after the role token is a target, `<|end|>` included. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

#define MAX_FIELD 96

/* A record's messages, their contents borrowed from the cJSON tree or the scratch strings. */
typedef struct msgs {
    pf_chat_msg *m;
    int64_t n;
    char *owned;   /* alpaca "instruction\n\ninput" */
} msgs;

static int fail(const pf_data_ctx *c, int64_t ln, const char *field, const char *why, pf_error *err) {
    return pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: %s: %s", c->name, (long long)ln, field, why);
}

/* String field `key` of o: required (missing -> error), or optional (*out NULL when absent or null). */
static int get_str(const pf_data_ctx *c, int64_t ln, const cJSON *o, const char *key, bool required,
                   const char **out, pf_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (v == NULL || (!required && cJSON_IsNull(v)))
        return required ? fail(c, ln, key, "missing", err) : PF_OK;
    if (!cJSON_IsString(v) || v->valuestring == NULL) return fail(c, ln, key, "not a string", err);
    *out = v->valuestring;
    return PF_OK;
}

static int role_of(const char *s, pf_chat_role *r) {
    if (!strcmp(s, "system")) *r = PF_CHAT_SYSTEM;
    else if (!strcmp(s, "user")) *r = PF_CHAT_USER;
    else if (!strcmp(s, "assistant")) *r = PF_CHAT_ASSISTANT;
    else return -1;
    return 0;
}

static int add_msg(msgs *ms, pf_chat_role role, const char *content, pf_error *err) {
    pf_chat_msg *m = realloc(ms->m, (size_t)(ms->n + 1) * sizeof *m);
    if (!m) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
    ms->m = m;
    m[ms->n++] = (pf_chat_msg){.role = role, .content = content};
    return PF_OK;
}

static int parse_messages(const pf_data_ctx *c, int64_t ln, const cJSON *o, msgs *ms, pf_error *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (arr == NULL) return fail(c, ln, "messages", "missing", err);
    if (!cJSON_IsArray(arr)) return fail(c, ln, "messages", "not an array", err);
    if (cJSON_GetArraySize(arr) == 0) return fail(c, ln, "messages", "empty", err);
    bool has_system = false, has_assistant = false;
    int64_t i = 0;
    char field[MAX_FIELD];
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        snprintf(field, sizeof field, "messages[%lld]", (long long)i);
        if (!cJSON_IsObject(e)) return fail(c, ln, field, "not an object", err);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        snprintf(field, sizeof field, "messages[%lld].role", (long long)i);
        if (role == NULL) return fail(c, ln, field, "missing", err);
        if (!cJSON_IsString(role)) return fail(c, ln, field, "not a string", err);
        pf_chat_role r;
        if (role_of(role->valuestring, &r) != 0) {
            char why[MAX_FIELD + 64];
            snprintf(why, sizeof why, "unknown role '%.64s' (system, user or assistant)", role->valuestring);
            return fail(c, ln, field, why, err);
        }
        snprintf(field, sizeof field, "messages[%lld].content", (long long)i);
        if (content == NULL) return fail(c, ln, field, "missing", err);
        if (!cJSON_IsString(content)) return fail(c, ln, field, "not a string", err);
        if (r == PF_CHAT_ASSISTANT && !content->valuestring[0]) return fail(c, ln, field, "empty assistant message", err);
        has_system |= r == PF_CHAT_SYSTEM;
        has_assistant |= r == PF_CHAT_ASSISTANT;
        int rc = add_msg(ms, r, content->valuestring, err);
        if (rc != PF_OK) return rc;
    }
    if (!has_assistant && !c->p->train_on_prompt) return fail(c, ln, "messages", "no assistant message", err);
    if (!has_system && c->p->system && c->p->system[0]) { /* default system prompt goes first */
        int rc = add_msg(ms, PF_CHAT_SYSTEM, c->p->system, err);
        if (rc != PF_OK) return rc;
        memmove(ms->m + 1, ms->m, (size_t)(ms->n - 1) * sizeof *ms->m);
        ms->m[0] = (pf_chat_msg){.role = PF_CHAT_SYSTEM, .content = c->p->system};
    }
    return PF_OK;
}

/* A user/assistant pair: alpaca (instruction [+ input] / output) or prompt / completion. */
static int parse_pair(const pf_data_ctx *c, int64_t ln, const cJSON *o, bool alpaca, msgs *ms, pf_error *err) {
    const char *user = NULL, *input = NULL, *answer = NULL, *answer_key = alpaca ? "output" : "completion";
    int rc = get_str(c, ln, o, alpaca ? "instruction" : "prompt", true, &user, err);
    if (rc == PF_OK && alpaca) rc = get_str(c, ln, o, "input", false, &input, err);
    if (rc != PF_OK) return rc;
    if (!alpaca && !cJSON_GetObjectItemCaseSensitive(o, "completion") && cJSON_GetObjectItemCaseSensitive(o, "response"))
        answer_key = "response";
    if ((rc = get_str(c, ln, o, answer_key, true, &answer, err)) != PF_OK) return rc;
    if (!answer[0]) return fail(c, ln, answer_key, "empty assistant message", err);
    if (input && input[0]) {
        const size_t a = strlen(user), b = strlen(input);
        if (!(ms->owned = malloc(a + b + 3))) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
        memcpy(ms->owned, user, a), memcpy(ms->owned + a, "\n\n", 2), memcpy(ms->owned + a + 2, input, b + 1);
        user = ms->owned;
    }
    if (c->p->system && c->p->system[0] && (rc = add_msg(ms, PF_CHAT_SYSTEM, c->p->system, err)) != PF_OK) return rc;
    if ((rc = add_msg(ms, PF_CHAT_USER, user, err)) != PF_OK) return rc;
    return add_msg(ms, PF_CHAT_ASSISTANT, answer, err);
}

static int render_len(const pf_data_ctx *c, const msgs *ms, int64_t n, int64_t *len, pf_error *err) {
    *len = pf_chat_render(&c->fmt, ms->m, n, false, NULL, 0, err);
    return *len < 0 ? (int)*len : PF_OK;
}

/* BOS, then the rendered conversation piece by piece (piece i = the text message i adds). */
static int chat_sample(const pf_data_ctx *c, int64_t ln, const msgs *ms, pf_samples *s, pf_error *err) {
    int64_t total;
    int rc = render_len(c, ms, ms->n, &total, err);
    if (rc != PF_OK) return rc;
    char *text = malloc((size_t)total + 1);
    if (!text) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory");
    pf_chat_render(&c->fmt, ms->m, ms->n, false, text, total + 1, err);
    const uint8_t all = c->p->train_on_prompt ? 1 : 0;
    if (pf_tokenizer_add_bos(c->tok) && pf_token_bos(c->tok) >= 0) rc = pf_samples_token(s, pf_token_bos(c->tok), 0, err);
    int64_t prev = 0;
    for (int64_t i = 0; i < ms->n && rc == PF_OK; i++) {
        int64_t end;
        if ((rc = render_len(c, ms, i + 1, &end, err)) != PF_OK) break;
        if (end == prev) continue; /* a folded or empty system message adds nothing yet */
        const int64_t first = s->n_tok;
        const bool asst = ms->m[i].role == PF_CHAT_ASSISTANT;
        rc = pf_samples_text(s, c->tok, text + prev, (size_t)(end - prev), asst ? 1 : all, NULL, err);
        if (rc != PF_OK) break;
        if (asst) { /* the role token itself is input, not target */
            if (s->n_tok == first || s->tok[first] != c->assistant_id) {
                rc = fail(c, ln, "messages", "assistant turn does not start with the <|assistant|> token", err);
                break;
            }
            s->loss[first] = all;
        }
        prev = end;
    }
    free(text);
    return rc;
}

static int text_sample(const pf_data_ctx *c, const char *text, size_t len, pf_samples *s, pf_error *err) {
    int rc = PF_OK;
    if (pf_tokenizer_add_bos(c->tok) && pf_token_bos(c->tok) >= 0) rc = pf_samples_token(s, pf_token_bos(c->tok), 1, err);
    if (rc == PF_OK) rc = pf_samples_text(s, c->tok, text, len, 1, NULL, err);
    if (rc == PF_OK && pf_token_eos(c->tok) >= 0) rc = pf_samples_token(s, pf_token_eos(c->tok), 1, err);
    return rc;
}

static pf_data_format detect(const cJSON *o) {
    if (cJSON_GetObjectItemCaseSensitive(o, "messages")) return PF_DATA_CHAT;
    if (cJSON_GetObjectItemCaseSensitive(o, "instruction")) return PF_DATA_ALPACA;
    if (cJSON_GetObjectItemCaseSensitive(o, "prompt")) return PF_DATA_COMPLETION;
    if (cJSON_GetObjectItemCaseSensitive(o, "text")) return PF_DATA_TEXT;
    return PF_DATA_AUTO;
}

int pf_data_record(const pf_data_ctx *c, const char *line, size_t len, int64_t ln, pf_samples *s, pf_error *err) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (o == NULL) {
        const long col = end ? (long)(end - line) + 1 : 1;
        char why[64];
        snprintf(why, sizeof why, "invalid JSON near column %ld", col);
        return fail(c, ln, "record", why, err);
    }
    for (const char *r = end; r && r < line + len; r++)
        if (*r != ' ' && *r != '\t' && *r != '\r') {
            cJSON_Delete(o);
            return fail(c, ln, "record", "data after the JSON value", err);
        }
    msgs ms = {0};
    int rc = PF_OK;
    pf_data_format f = c->p->format == PF_DATA_AUTO ? detect(o) : c->p->format;
    if (!cJSON_IsObject(o)) rc = fail(c, ln, "record", "not a JSON object", err);
    else if (f == PF_DATA_AUTO)
        rc = fail(c, ln, "record", "no known field (messages, instruction/output, prompt/completion or text)", err);
    else if (f == PF_DATA_TEXT) {
        const char *t = NULL;
        if ((rc = get_str(c, ln, o, "text", true, &t, err)) == PF_OK) {
            if (!t[0]) rc = fail(c, ln, "text", "empty", err);
            else rc = text_sample(c, t, strlen(t), s, err);
        }
    } else {
        rc = f == PF_DATA_CHAT ? parse_messages(c, ln, o, &ms, err) : parse_pair(c, ln, o, f == PF_DATA_ALPACA, &ms, err);
        if (rc == PF_OK) rc = chat_sample(c, ln, &ms, s, err);
    }
    if (rc == PF_OK) rc = pf_samples_close(s, err);
    else pf_samples_rollback(s);
    free(ms.m);
    free(ms.owned);
    cJSON_Delete(o);
    return rc;
}

int pf_data_text_file(const pf_data_ctx *c, const char *text, size_t len, pf_samples *s, pf_error *err) {
    pf_samples whole = {0};
    int rc = text_sample(c, text, len, &whole, err);
    const int64_t n = whole.n_tok, w = c->p->seq_len;
    for (int64_t k = 0; rc == PF_OK && k + 1 < n; k += w) { /* window [k, k + w], sharing token k */
        const int64_t m = n - k < w + 1 ? n - k : w + 1;
        for (int64_t j = 0; j < m && rc == PF_OK; j++) rc = pf_samples_token(s, whole.tok[k + j], 1, err);
        if (rc == PF_OK) rc = pf_samples_close(s, err);
    }
    pf_samples_free(&whole);
    return rc;
}
