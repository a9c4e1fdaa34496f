/* The tokenizer part of `phiforge convert`, following llama.cpp's Phi3MiniModel.set_vocab:
 *   1. vocab_size = config.json vocab_size (else the model's piece count); every id starts as
 *      "[PAD<id>]", score -10000, type UNUSED;
 *   2. tokenizer.model pieces fill their ids with their score and type (NORMAL, UNKNOWN, CONTROL,
 *      UNUSED, BYTE as SentencePiece flags them; USER_DEFINED pieces count as NORMAL, as the
 *      SentencePieceProcessor-based code does) — without tokenizer.model, tokenizer.json's
 *      model.vocab (byte pieces <0xNN> BYTE, others NORMAL with score -id: the order of merge
 *      priority in a SentencePiece BPE vocabulary);
 *   3. added_tokens.json, then tokenizer_config.json added_tokens_decoder, then tokenizer.json
 *      added_tokens overwrite their ids: score -1000, USER_DEFINED, or CONTROL when "special";
 * and gguf.SpecialVocab: bos/eos/unk/sep/pad/cls/mask ids from tokenizer_config.json's *_token
 * strings looked up in tokenizer.json's added_tokens, else config.json's *_token_id; add_bos /
 * add_eos from tokenizer_config.json; chat_template (a string, or the "default" entry of a list). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"

enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER = 4, T_UNUSED = 5, T_BYTE = 6 };

int pf_cv_read_json(const char *dir, const char *name, cJSON **out, pf_error *err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return PF_OK;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb, cap *= 2;
    }
    fclose(f);
    if (!buf) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    const size_t at = end ? (size_t)(end - buf) : 0;
    free(buf);
    if (*out == NULL || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return pf_error_set(err, PF_ERR_FORMAT, "%s: not a JSON object (error near byte %zu)", path, at);
    }
    return PF_OK;
}

typedef struct vocab {
    int64_t n;
    char **tok;
    float *score;
    int32_t *type;
} vocab;

static void vocab_free(vocab *v) {
    for (int64_t i = 0; v->tok && i < v->n; i++) free(v->tok[i]);
    free(v->tok), free(v->score), free(v->type);
}

static int set_token(vocab *v, int64_t id, const char *text, float score, int32_t type, const char *where, pf_error *err) {
    if (id < 0 || id >= v->n)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: token id %lld outside the vocabulary 0..%lld (config.json vocab_size)",
                            where, (long long)id, (long long)v->n - 1);
    char *t = strdup(text);
    if (!t) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    free(v->tok[id]);
    v->tok[id] = t, v->score[id] = score, v->type[id] = type;
    return PF_OK;
}

/* One added token (content, special) at id. */
static int added(vocab *v, int64_t id, const cJSON *content, const cJSON *special, const char *where, pf_error *err) {
    if (!cJSON_IsString(content)) return pf_error_set(err, PF_ERR_FORMAT, "%s: token %lld has no string \"content\"", where, (long long)id);
    return set_token(v, id, content->valuestring, -1000.0f, cJSON_IsTrue(special) ? T_CONTROL : T_USER, where, err);
}

static int json_id(const cJSON *j, int64_t *id) {
    if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int64_t)j->valuedouble) return -1;
    *id = (int64_t)j->valuedouble;
    return 0;
}

static int base_vocab(vocab *v, const char *dir, const cJSON *tok_json, pf_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        pf_spm_model m;
        int rc = pf_spm_load(path, &m, err);
        if (rc != PF_OK) return rc;
        if (m.n > v->n) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: %lld pieces but config.json vocab_size is %lld", path, (long long)m.n,
                              (long long)v->n);
        }
        for (int64_t i = 0; i < m.n && rc == PF_OK; i++) {
            const int32_t t = m.types[i] == T_USER ? T_NORMAL : m.types[i];
            rc = set_token(v, i, m.pieces[i], m.scores[i], t, path, err);
        }
        pf_spm_free(&m);
        return rc;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok_json, "model");
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(voc))
        return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: neither tokenizer.model nor a tokenizer.json with model.vocab", dir);
    for (const cJSON *e = voc->child; e; e = e->next) {
        int64_t id;
        if (json_id(e, &id) != 0)
            return pf_error_set(err, PF_ERR_FORMAT, "%s/tokenizer.json: model.vocab['%s'] is not an integer id", dir, e->string);
        const char *s = e->string;
        const int is_byte = strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>';
        int rc = set_token(v, id, s, is_byte ? 0.0f : -(float)id, is_byte ? T_BYTE : T_NORMAL, "tokenizer.json model.vocab", err);
        if (rc != PF_OK) return rc;
    }
    return PF_OK;
}

static const char *const k_special[7] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
static const char *const k_special_key[7] = {"tokenizer.ggml.bos_token_id",       "tokenizer.ggml.eos_token_id",
                                             "tokenizer.ggml.unknown_token_id",   "tokenizer.ggml.seperator_token_id",
                                             "tokenizer.ggml.padding_token_id",   "tokenizer.ggml.cls_token_id",
                                             "tokenizer.ggml.mask_token_id"};

int pf_cv_add_vocab(pf_gguf_writer *w, const char *dir, const cJSON *config, pf_error *err) {
    cJSON *tcfg = NULL, *tjson = NULL, *atj = NULL;
    vocab v = {0};
    int rc = pf_cv_read_json(dir, "tokenizer_config.json", &tcfg, err);
    if (rc == PF_OK) rc = pf_cv_read_json(dir, "tokenizer.json", &tjson, err);
    if (rc == PF_OK) rc = pf_cv_read_json(dir, "added_tokens.json", &atj, err);
    if (rc != PF_OK) goto done;
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(tcfg, "tokenizer_class");
    if (cJSON_IsString(cls) && !strcmp(cls->valuestring, "GPT2Tokenizer")) {
        rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s/tokenizer_config.json: GPT2Tokenizer (Phi-4) vocabularies are not supported", dir);
        goto done;
    }
    int64_t n = -1;
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(config, "vocab_size");
    if (vs && (json_id(vs, &n) != 0 || n <= 0 || n > 10000000)) {
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: vocab_size is not a positive integer", dir);
        goto done;
    }
    if (n < 0) { /* no vocab_size: the model's own piece count */
        pf_spm_model m;
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        if ((rc = pf_spm_load(path, &m, err)) != PF_OK) goto done;
        n = m.n;
        pf_spm_free(&m);
    }
    v.n = n;
    v.tok = calloc((size_t)n, sizeof *v.tok);
    v.score = malloc((size_t)n * sizeof *v.score);
    v.type = malloc((size_t)n * sizeof *v.type);
    if (!v.tok || !v.score || !v.type) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory for %lld tokens", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%lld]", (long long)i);
        if ((v.tok[i] = strdup(buf)) == NULL) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
            goto done;
        }
        v.score[i] = -10000.0f, v.type[i] = T_UNUSED;
    }
    if ((rc = base_vocab(&v, dir, tjson, err)) != PF_OK) goto done;
    for (const cJSON *e = atj ? atj->child : NULL; e && rc == PF_OK; e = e->next) {
        int64_t id;
        if (json_id(e, &id) != 0) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s/added_tokens.json: '%s' is not an integer id", dir, e->string);
            break;
        }
        if (id >= n) continue; /* llama.cpp: "ignore token: id is out of range" */
        rc = set_token(&v, id, e->string, -1000.0f, T_USER, "added_tokens.json", err);
    }
    const cJSON *atd = cJSON_GetObjectItemCaseSensitive(tcfg, "added_tokens_decoder");
    for (const cJSON *e = atd ? atd->child : NULL; e && rc == PF_OK; e = e->next) {
        char *end = NULL;
        long long id = strtoll(e->string, &end, 10);
        if (!e->string[0] || *end) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s/tokenizer_config.json: added_tokens_decoder key '%s' is not an id", dir, e->string);
            break;
        }
        rc = added(&v, id, cJSON_GetObjectItemCaseSensitive(e, "content"), cJSON_GetObjectItemCaseSensitive(e, "special"),
                   "tokenizer_config.json added_tokens_decoder", err);
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(tjson, "added_tokens");
    for (const cJSON *e = cJSON_IsArray(at) ? at->child : NULL; e && rc == PF_OK; e = e->next) {
        int64_t id;
        if (json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) != 0) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s/tokenizer.json: an added_tokens entry has no integer \"id\"", dir);
            break;
        }
        rc = added(&v, id, cJSON_GetObjectItemCaseSensitive(e, "content"), cJSON_GetObjectItemCaseSensitive(e, "special"),
                   "tokenizer.json added_tokens", err);
    }
    if (rc != PF_OK) goto done;

    if ((rc = pf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err)) != PF_OK) goto done;
    if ((rc = pf_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default", err)) != PF_OK) goto done;
    if ((rc = pf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, (uint64_t)n, err)) != PF_OK) goto done;
    if ((rc = pf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PF_GGUF_FLOAT32, v.score, (uint64_t)n, err)) != PF_OK) goto done;
    if ((rc = pf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PF_GGUF_INT32, v.type, (uint64_t)n, err)) != PF_OK) goto done;

    /* special ids: first the *_token strings resolved through tokenizer.json's added tokens, then
     * config.json's *_token_id for the rest; written in the order they were found */
    int64_t ids[7];
    int order[7], n_order = 0;
    for (int k = 0; k < 7; k++) ids[k] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 7; k++) {
            if (ids[k] >= 0) continue;
            int64_t id = -1;
            char key[32];
            if (pass == 0) {
                snprintf(key, sizeof key, "%s_token", k_special[k]);
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(tcfg, key);
                const cJSON *c = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "content") : e;
                if (!cJSON_IsString(c)) continue;
                for (const cJSON *a = cJSON_IsArray(at) ? at->child : NULL; a; a = a->next) {
                    const cJSON *ac = cJSON_GetObjectItemCaseSensitive(a, "content");
                    if (cJSON_IsString(ac) && !strcmp(ac->valuestring, c->valuestring)) {
                        json_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &id);
                        break;
                    }
                }
            } else {
                snprintf(key, sizeof key, "%s_token_id", k_special[k]);
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(config, key);
                if (e && json_id(e, &id) != 0) id = -1;
            }
            if (id >= 0 && id < n) ids[k] = id, order[n_order++] = k;
        }
    for (int i = 0; i < n_order && rc == PF_OK; i++)
        rc = pf_gguf_writer_set_u32(w, k_special_key[order[i]], (uint32_t)ids[order[i]], err);
    for (int k = 0; k < 7 && rc == PF_OK; k++) {
        char key[32], gkey[64];
        snprintf(key, sizeof key, "add_%s_token", k_special[k]);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(tcfg, key);
        if (!cJSON_IsBool(e)) continue;
        snprintf(gkey, sizeof gkey, "tokenizer.ggml.add_%s_token", k_special[k]);
        rc = pf_gguf_writer_set_bool(w, gkey, cJSON_IsTrue(e), err);
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(tcfg, "chat_template");
    if (cJSON_IsArray(ct)) { /* [{"name": ..., "template": ...}]: "default" is the main one */
        for (const cJSON *e = ct->child; e && rc == PF_OK; e = e->next) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (!cJSON_IsString(nm) || !cJSON_IsString(tp)) continue;
            char key[256];
            if (!strcmp(nm->valuestring, "default")) snprintf(key, sizeof key, "tokenizer.chat_template");
            else snprintf(key, sizeof key, "tokenizer.chat_template.%s", nm->valuestring);
            rc = pf_gguf_writer_set_str(w, key, tp->valuestring, err);
        }
    } else if (cJSON_IsString(ct) && rc == PF_OK) {
        rc = pf_gguf_writer_set_str(w, "tokenizer.chat_template", ct->valuestring, err);
    }
done:
    vocab_free(&v);
    cJSON_Delete(tcfg);
    cJSON_Delete(tjson);
    cJSON_Delete(atj);
    return rc;
}
