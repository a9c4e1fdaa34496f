/* TEMPORARY shim (see data_shim.h): a minimal dataset loader with DATA's contract so that
 * `phiforge finetune` runs end to end before DATA's branch lands; delete after the merge.
 * JSONL lines {"messages": [{"role","content"}...]} (loss on assistant turns), {"prompt",
 * "completion"} (loss on the completion), {"text"}, or .txt lines (loss on everything). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/data_shim.h"

struct pf_dataset {
    int64_t n_rows, n_samples, n_target, seq_len;
    int64_t *len;                  /* n_rows */
    int32_t *ids, *tg, *pos, *seg; /* n_rows × seq_len */
};

typedef struct sample {
    int32_t *tok;
    uint8_t *train; /* token i is a target (predicted from i-1) */
    int64_t n;
} sample;

pf_data_params pf_data_default_params(void) {
    return (pf_data_params){PF_DATA_AUTO, 512, true, false, NULL, 0.0, 42};
}

static int64_t tokenize(const pf_tokenizer *tok, const char *s, int32_t **out, pf_error *err) {
    const int64_t n = pf_tokenize(tok, s, strlen(s), true, true, NULL, 0, err);
    if (n < 0) return n;
    *out = malloc((size_t)(n + 1) * sizeof **out);
    if (!*out) return PF_ERR_NOMEM;
    return pf_tokenize(tok, s, strlen(s), true, true, *out, n, err);
}

/* Rendered text of msgs[0..n) (+ generation prompt), tokenized; count only when ids is NULL. */
static int64_t chat_tokens(const pf_tokenizer *tok, const pf_chat_format *fmt, const pf_chat_msg *m, int64_t n, bool gen,
                           int32_t **ids, pf_error *err) {
    const int64_t len = pf_chat_render(fmt, m, n, gen, NULL, 0, err);
    if (len < 0) return len;
    char *buf = malloc((size_t)len + 1);
    if (!buf) return PF_ERR_NOMEM;
    pf_chat_render(fmt, m, n, gen, buf, len + 1, err);
    int32_t *t = NULL;
    const int64_t k = tokenize(tok, buf, &t, err);
    free(buf);
    if (ids) *ids = t;
    else free(t);
    return k;
}

static int parse_line(const char *path, int64_t line, cJSON *j, const pf_tokenizer *tok, const pf_chat_format *fmt,
                      const pf_data_params *p, sample *s, pf_error *err) {
    cJSON *msgs = cJSON_GetObjectItem(j, "messages"), *text = cJSON_GetObjectItem(j, "text");
    cJSON *prompt = cJSON_GetObjectItem(j, "prompt"), *comp = cJSON_GetObjectItem(j, "completion");
    if (cJSON_IsArray(msgs)) {
        const int64_t n = cJSON_GetArraySize(msgs);
        pf_chat_msg *m = calloc((size_t)n + 1, sizeof *m);
        int64_t k = 0;
        if (p->system) m[k++] = (pf_chat_msg){PF_CHAT_SYSTEM, p->system};
        for (int64_t i = 0; i < n; i++) {
            cJSON *it = cJSON_GetArrayItem(msgs, (int)i), *r = cJSON_GetObjectItem(it, "role");
            cJSON *c = cJSON_GetObjectItem(it, "content");
            if (!cJSON_IsString(r) || !cJSON_IsString(c)) {
                free(m);
                return pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: messages[%lld] needs string role and content", path,
                                    (long long)line, (long long)i);
            }
            const char *rs = r->valuestring;
            pf_chat_role role = !strcmp(rs, "system") ? PF_CHAT_SYSTEM : !strcmp(rs, "user") ? PF_CHAT_USER
                              : !strcmp(rs, "assistant")                                  ? PF_CHAT_ASSISTANT
                                                                                          : (pf_chat_role)-1;
            if ((int)role < 0) {
                free(m);
                return pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: messages[%lld].role \"%s\" unknown", path,
                                    (long long)line, (long long)i, rs);
            }
            if (role == PF_CHAT_SYSTEM && k == 1 && p->system) k = 0; /* the sample's own system wins */
            m[k++] = (pf_chat_msg){role, c->valuestring};
        }
        s->n = chat_tokens(tok, fmt, m, k, false, &s->tok, err);
        if (s->n < 0) {
            free(m);
            return (int)s->n;
        }
        s->train = calloc((size_t)s->n + 1, 1);
        for (int64_t i = 0; i < k; i++) { /* tokens of assistant turn i: [prefix+gen, prefix+turn) */
            if (m[i].role != PF_CHAT_ASSISTANT && !p->train_on_prompt) continue;
            const int64_t a = chat_tokens(tok, fmt, m, i, m[i].role == PF_CHAT_ASSISTANT, NULL, err);
            const int64_t b = chat_tokens(tok, fmt, m, i + 1, false, NULL, err);
            for (int64_t q = a < 1 ? 1 : a; q < b && q < s->n; q++) s->train[q] = 1;
        }
        free(m);
        return PF_OK;
    }
    if (cJSON_IsString(prompt) && cJSON_IsString(comp)) {
        int32_t *pt = NULL;
        const int64_t np = tokenize(tok, prompt->valuestring, &pt, err);
        free(pt);
        const size_t lp = strlen(prompt->valuestring), lc = strlen(comp->valuestring);
        char *all = malloc(lp + lc + 1);
        memcpy(all, prompt->valuestring, lp), memcpy(all + lp, comp->valuestring, lc + 1);
        s->n = tokenize(tok, all, &s->tok, err);
        free(all);
        if (s->n < 0 || np < 0) return PF_ERR_FORMAT;
        s->train = calloc((size_t)s->n + 1, 1);
        for (int64_t q = p->train_on_prompt ? 1 : np; q < s->n; q++) s->train[q] = 1;
        return PF_OK;
    }
    if (cJSON_IsString(text)) {
        s->n = tokenize(tok, text->valuestring, &s->tok, err);
        if (s->n < 0) return (int)s->n;
        s->train = calloc((size_t)s->n + 1, 1);
        memset(s->train + 1, 1, (size_t)(s->n > 1 ? s->n - 1 : 0));
        return PF_OK;
    }
    return pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: expected \"messages\", \"prompt\"+\"completion\" or \"text\"", path,
                        (long long)line);
}

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void shuffle(int64_t *a, int64_t n, uint64_t seed) {
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = (int64_t)(mix(&seed) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j], a[j] = t;
    }
}

/* Packs samples idx[0..n) greedily into rows of seq_len (each sample truncated to seq_len + 1). */
static pf_dataset *pack(const sample *s, const int64_t *idx, int64_t n, const pf_data_params *p) {
    pf_dataset *d = calloc(1, sizeof *d);
    const int64_t S = p->seq_len;
    d->seq_len = S;
    d->len = calloc((size_t)n + 1, sizeof *d->len);
    const size_t cells = (size_t)(n + 1) * (size_t)S;
    d->ids = calloc(cells, 4), d->tg = calloc(cells, 4), d->pos = calloc(cells, 4), d->seg = calloc(cells, 4);
    for (int64_t k = 0; k < n; k++) {
        const sample *x = &s[idx[k]];
        const int64_t m = (x->n - 1 < S ? x->n - 1 : S); /* input positions */
        if (m < 1) continue;
        if (d->n_rows == 0 || !p->pack || d->len[d->n_rows - 1] + m > S) d->n_rows++;
        const int64_t r = d->n_rows - 1, o = d->len[r];
        const int32_t sg = o == 0 ? 0 : d->seg[r * S + o - 1] + 1;
        for (int64_t i = 0; i < m; i++) {
            d->ids[r * S + o + i] = x->tok[i];
            d->tg[r * S + o + i] = x->train[i + 1] ? x->tok[i + 1] : -1;
            d->pos[r * S + o + i] = (int32_t)i, d->seg[r * S + o + i] = sg;
            d->n_target += x->train[i + 1];
        }
        d->len[r] += m;
        d->n_samples++;
    }
    return d;
}

int pf_dataset_load(const char *path, const pf_tokenizer *tok, const pf_chat_format *fmt, const pf_data_params *p,
                    pf_dataset **train, pf_dataset **val, pf_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return pf_error_set(err, PF_ERR_IO, "dataset: cannot open %s", path);
    const size_t pl = strlen(path);
    const bool txt = p->format == PF_DATA_TEXT || (pl > 4 && !strcmp(path + pl - 4, ".txt"));
    sample *s = NULL;
    int64_t n = 0, cap = 0, line = 0;
    char *buf = NULL;
    size_t bcap = 0;
    int rc = PF_OK;
    while (rc == PF_OK && getline(&buf, &bcap, f) >= 0) {
        line++;
        size_t l = strlen(buf);
        while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r')) buf[--l] = 0;
        if (l == 0) continue;
        if (n == cap) s = realloc(s, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *s);
        memset(&s[n], 0, sizeof *s);
        if (txt) {
            s[n].n = tokenize(tok, buf, &s[n].tok, err);
            s[n].train = calloc((size_t)s[n].n + 1, 1);
            memset(s[n].train + 1, 1, (size_t)(s[n].n > 1 ? s[n].n - 1 : 0));
        } else {
            cJSON *j = cJSON_Parse(buf);
            if (!j) rc = pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: not valid JSON", path, (long long)line);
            else rc = parse_line(path, line, j, tok, fmt, p, &s[n], err);
            cJSON_Delete(j);
        }
        n++;
    }
    free(buf);
    fclose(f);
    int64_t *idx = malloc((size_t)(n + 1) * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    if (rc == PF_OK && n == 0) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: no samples", path);
    if (rc == PF_OK) {
        shuffle(idx, n, p->seed);
        const int64_t nv = val ? (int64_t)(p->val_fraction * (double)n) : 0;
        *train = pack(s, idx + nv, n - nv, p);
        if (val) *val = nv > 0 ? pack(s, idx, nv, p) : NULL;
    }
    for (int64_t i = 0; i < n; i++) free(s[i].tok), free(s[i].train);
    free(s), free(idx);
    return rc;
}

void pf_dataset_free(pf_dataset *d) {
    if (!d) return;
    free(d->len), free(d->ids), free(d->tg), free(d->pos), free(d->seg), free(d);
}
int64_t pf_dataset_n_rows(const pf_dataset *d) { return d->n_rows; }
int64_t pf_dataset_n_samples(const pf_dataset *d) { return d->n_samples; }
int64_t pf_dataset_n_target_tokens(const pf_dataset *d) { return d->n_target; }

int pf_dataset_row(const pf_dataset *d, int64_t i, pf_train_row *out, pf_error *err) {
    if (i < 0 || i >= d->n_rows) return pf_error_set(err, PF_ERR_ARG, "dataset: row %lld out of range", (long long)i);
    const int64_t o = i * d->seq_len;
    *out = (pf_train_row){d->len[i], d->ids + o, d->tg + o, d->pos + o, d->seg + o};
    return PF_OK;
}

void pf_dataset_epoch_order(const pf_dataset *d, uint64_t seed, int64_t epoch, int64_t *perm) {
    for (int64_t i = 0; i < d->n_rows; i++) perm[i] = i;
    shuffle(perm, d->n_rows, seed ^ ((uint64_t)(epoch + 1) * 0xD6E8FEB86659FD93ull));
}

/* llama.cpp LoRA GGUF: general.type adapter, adapter.type lora, adapter.lora.alpha (alpha·√r
 * with rsLoRA so that llama.cpp's alpha/r is the trained scale); <base>.lora_a ne [n_in, r],
 * <base>.lora_b ne [r, n_out]. */
int pf_lora_save_gguf(const pf_lora_weights *w, const pf_model *base, const char *path, pf_type t, pf_error *err) {
    if (t != PF_TYPE_F32) return pf_error_set(err, PF_ERR_UNSUPPORTED, "adapter: shim writes F32 only");
    pf_gguf_writer *g = NULL;
    int rc = pf_gguf_writer_create(&g, err);
    if (rc != PF_OK) return rc;
    const float alpha = w->rslora ? w->alpha * sqrtf((float)w->rank) : w->alpha;
    rc = pf_gguf_writer_set_str(g, "general.architecture", "phi3", err);
    if (!rc) rc = pf_gguf_writer_set_str(g, "general.type", "adapter", err);
    if (!rc) rc = pf_gguf_writer_set_str(g, "adapter.type", "lora", err);
    if (!rc) rc = pf_gguf_writer_set_f32(g, "adapter.lora.alpha", alpha, err);
    char name[128];
    for (int64_t i = 0; i < w->n && !rc; i++) {
        const pf_lora_pair *pr = &w->pairs[i];
        char stem[96];
        snprintf(stem, sizeof stem, "%s", pr->base);
        char *dot = strstr(stem, ".weight");
        if (dot) *dot = 0;
        const int64_t na[2] = {pr->n_in, pr->r}, nb[2] = {pr->r, pr->n_out};
        snprintf(name, sizeof name, "%s.weight.lora_a", stem);
        rc = pf_gguf_writer_add_tensor(g, name, PF_TYPE_F32, 2, na, pr->a, err);
        snprintf(name, sizeof name, "%s.weight.lora_b", stem);
        if (!rc) rc = pf_gguf_writer_add_tensor(g, name, PF_TYPE_F32, 2, nb, pr->b, err);
    }
    if (!rc) rc = pf_gguf_writer_write(g, path, NULL, NULL, err);
    pf_gguf_writer_free(g);
    (void)base;
    return rc;
}

int pf_lora_save_peft(const pf_lora_weights *w, const pf_model *base, const char *dir, pf_error *err) {
    (void)w, (void)base;
    return pf_error_set(err, PF_ERR_UNSUPPORTED, "PEFT adapter (%s): written by DATA's pf_lora_save_peft, not merged yet",
                        dir);
}
