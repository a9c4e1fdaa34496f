/* LoRA weights <-> a Hugging Face PEFT directory (spec §7.2): adapter_model.safetensors with
 * base_model.model.<module>.lora_A.weight [r, n_in] and .lora_B.weight [n_out, r], and
 * adapter_config.json as PEFT's save_pretrained writes it (json.dumps(indent=2, sort_keys=True)
 * of the LoraConfig). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lora/lora_internal.h"

#define KEY_PREFIX "base_model.model."

/* Writes text to dir/name through a .tmp file and rename. */
static int write_text(const char *dir, const char *name, const char *text, pf_error *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    const size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return pf_error_set(err, PF_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return PF_OK;
}

/* A number as Python's json would print it: an int, or a float via repr ("0.0", "0.05"; the
 * shortest form that reads back as the same float32). */
static void json_num(char *buf, size_t cap, double v, bool is_float) {
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, cap, is_float ? "%lld.0" : "%lld", (long long)v);
    else /* the fewest digits that read back as the same float32 */
        for (int p = 1; p <= 9; p++) {
            snprintf(buf, cap, "%.*g", p, v);
            if ((float)strtod(buf, NULL) == (float)v) break;
        }
}

/* adapter_config.json: the LoraConfig fields with PEFT's defaults, keys sorted. */
static char *config_json(const pf_lora_weights *w) {
    /* target_modules: the distinct module kinds adapted, in PEFT's usual order */
    static const char *const kinds[5] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"};
    bool used[5] = {0};
    for (int64_t i = 0; i < w->n; i++) {
        char mod[160];
        if (!pf_lora_peft_module(w->pairs[i].base, mod, sizeof mod)) continue;
        for (int k = 0; k < 5; k++) {
            const size_t a = strlen(mod), b = strlen(kinds[k]);
            if (a >= b && !strcmp(mod + a - b, kinds[k])) used[k] = true;
        }
    }
    char targets[256] = "", alpha[64], dropout[64], base[600];
    for (int k = 0; k < 5; k++)
        if (used[k]) {
            const size_t n = strlen(targets);
            snprintf(targets + n, sizeof targets - n, "%s\n    \"%s\"", n ? "," : "", kinds[k]);
        }
    json_num(alpha, sizeof alpha, w->alpha, false); /* PEFT users give lora_alpha as an int */
    json_num(dropout, sizeof dropout, w->dropout, true);
    { /* base_model_name_or_path as a JSON string (null when unknown) */
        size_t o = 0;
        if (!w->base_model[0]) snprintf(base, sizeof base, "null");
        else {
            base[o++] = '"';
            for (const char *s = w->base_model; *s && o < sizeof base - 8; s++) {
                if (*s == '"' || *s == '\\') base[o++] = '\\', base[o++] = *s;
                else if ((unsigned char)*s < 0x20) o += (size_t)snprintf(base + o, sizeof base - o, "\\u%04x", (unsigned char)*s);
                else base[o++] = *s;
            }
            base[o++] = '"', base[o] = 0;
        }
    }
    char *out = malloc(4096);
    if (!out) return NULL;
    snprintf(out, 4096,
             "{\n"
             "  \"alpha_pattern\": {},\n"
             "  \"auto_mapping\": null,\n"
             "  \"base_model_name_or_path\": %s,\n"
             "  \"bias\": \"none\",\n"
             "  \"fan_in_fan_out\": false,\n"
             "  \"inference_mode\": true,\n"
             "  \"init_lora_weights\": true,\n"
             "  \"layer_replication\": null,\n"
             "  \"layers_pattern\": null,\n"
             "  \"layers_to_transform\": null,\n"
             "  \"loftq_config\": {},\n"
             "  \"lora_alpha\": %s,\n"
             "  \"lora_dropout\": %s,\n"
             "  \"megatron_config\": null,\n"
             "  \"megatron_core\": \"megatron.core\",\n"
             "  \"modules_to_save\": null,\n"
             "  \"peft_type\": \"LORA\",\n"
             "  \"r\": %d,\n"
             "  \"rank_pattern\": {},\n"
             "  \"revision\": null,\n"
             "  \"target_modules\": [%s\n  ],\n"
             "  \"task_type\": \"CAUSAL_LM\",\n"
             "  \"use_dora\": false,\n"
             "  \"use_rslora\": %s\n"
             "}",
             base, alpha, dropout, (int)(w->rank > 0 ? w->rank : w->pairs[0].r), targets, w->rslora ? "true" : "false");
    return out;
}

int pf_lora_save_peft(const pf_lora_weights *w, const pf_model *base, const char *dir, pf_error *err) {
    if (!w || !dir) return pf_error_set(err, PF_ERR_ARG, "pf_lora_save_peft: NULL argument");
    if (w->n < 1) return pf_error_set(err, PF_ERR_ARG, "%s: the adapter has no pairs", dir);
    int rc = pf_lora_check_base(w, base, dir, err);
    if (rc != PF_OK) return rc;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return pf_error_set(err, PF_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    st_out *t = calloc((size_t)w->n * 2, sizeof *t);
    char (*names)[192] = calloc((size_t)w->n * 2, sizeof *names);
    if (!t || !names) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
    for (int64_t i = 0; rc == PF_OK && i < w->n; i++) {
        const pf_lora_pair *p = &w->pairs[i];
        char mod[160];
        if (!p->a || !p->b || p->r < 1) rc = pf_error_set(err, PF_ERR_ARG, "%s: pair %s is incomplete", dir, p->base);
        else if (!pf_lora_peft_module(p->base, mod, sizeof mod))
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: pair %s is not a Phi-3 linear PEFT can name", dir, p->base);
        if (rc != PF_OK) break;
        snprintf(names[2 * i], sizeof names[0], KEY_PREFIX "%s.lora_A.weight", mod);
        snprintf(names[2 * i + 1], sizeof names[0], KEY_PREFIX "%s.lora_B.weight", mod);
        t[2 * i] = (st_out){names[2 * i], 2, {p->r, p->n_in}, p->a};
        t[2 * i + 1] = (st_out){names[2 * i + 1], 2, {p->n_out, p->r}, p->b};
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (rc == PF_OK) rc = st_write_f32(path, t, w->n * 2, err);
    char *cfg = rc == PF_OK ? config_json(w) : NULL;
    if (rc == PF_OK && !cfg) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
    if (rc == PF_OK) rc = write_text(dir, "adapter_config.json", cfg, err);
    free(cfg), free(t), free(names);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------- */

static int read_config(const char *dir, pf_lora_weights *w, pf_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = PF_OK;
    for (;;) {
        if (n + 4096 > cap) {
            char *b = cap > (16u << 20) ? NULL : realloc(buf, cap = cap ? cap * 2 : 8192);
            if (!b) { rc = pf_error_set(err, PF_ERR_FORMAT, "%s: too large", path); break; }
            buf = b;
        }
        const size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    cJSON *c = rc == PF_OK ? cJSON_ParseWithLength(buf, n) : NULL;
    free(buf);
    if (rc != PF_OK) return rc;
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        return pf_error_set(err, PF_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *v;
#define FAIL(code, ...) do { rc = pf_error_set(err, code, __VA_ARGS__); goto done; } while (0)
    if ((v = cJSON_GetObjectItemCaseSensitive(c, "peft_type")) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "LORA")))
        FAIL(PF_ERR_UNSUPPORTED, "%s: peft_type: only \"LORA\" is supported", path);
    v = cJSON_GetObjectItemCaseSensitive(c, "lora_alpha");
    if (!cJSON_IsNumber(v)) FAIL(PF_ERR_FORMAT, "%s: lora_alpha: missing or not a number", path);
    w->alpha = (float)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(c, "r");
    if (v && !cJSON_IsNumber(v)) FAIL(PF_ERR_FORMAT, "%s: r: not a number", path);
    if (v) w->rank = (int32_t)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(c, "use_rslora")) && !cJSON_IsBool(v)) FAIL(PF_ERR_FORMAT, "%s: use_rslora: not a boolean", path);
    w->rslora = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(c, "lora_dropout")) && cJSON_IsNumber(v)) w->dropout = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(c, "base_model_name_or_path")) && cJSON_IsString(v))
        snprintf(w->base_model, sizeof w->base_model, "%s", v->valuestring);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_dora")))
        FAIL(PF_ERR_UNSUPPORTED, "%s: use_dora: DoRA adapters are not supported", path);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "fan_in_fan_out")))
        FAIL(PF_ERR_UNSUPPORTED, "%s: fan_in_fan_out: transposed (Conv1D) weights are not supported", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(c, "bias")) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none")))
        FAIL(PF_ERR_UNSUPPORTED, "%s: bias: only \"none\" is supported", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(c, "alpha_pattern")) && cJSON_IsObject(v) && v->child)
        FAIL(PF_ERR_UNSUPPORTED, "%s: alpha_pattern: per-module alpha is not supported", path);
#undef FAIL
done:
    cJSON_Delete(c);
    return rc;
}

/* "base_model.model.<module>.lora_X.weight" -> module, X; false when not of that form. */
static bool split_key(const char *key, char *module, size_t cap, char *which) {
    const size_t np = strlen(KEY_PREFIX), n = strlen(key), ns = strlen(".lora_A.weight");
    if (n <= np + ns || strncmp(key, KEY_PREFIX, np) != 0) return false;
    const char *suf = key + n - ns;
    if (strcmp(suf, ".lora_A.weight") != 0 && strcmp(suf, ".lora_B.weight") != 0) return false;
    const size_t m = n - np - ns;
    if (m >= cap) return false;
    memcpy(module, key + np, m), module[m] = 0;
    *which = suf[6];
    return true;
}

int pf_lora_read_peft(const char *dir, pf_lora_weights *w, pf_error *err) {
    int rc = read_config(dir, w, err);
    if (rc != PF_OK) return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_file f;
    if ((rc = st_read(path, &f, err)) != PF_OK) return rc;
    w->rank = 0; /* the largest r of the tensors (rank_pattern may vary it per module) */
    for (int64_t i = 0; rc == PF_OK && i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        char mod[160], base[96], which;
        if (!split_key(t->name, mod, sizeof mod, &which)) {
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: tensor %s: not a lora_A/lora_B weight (DoRA magnitudes, biases "
                              "and modules_to_save are not supported)", path, t->name);
            break;
        }
        if (!pf_lora_gguf_base(mod, base, sizeof base)) {
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: tensor %s: module %s is not a fused Phi-3 linear (qkv_proj, o_proj, "
                              "gate_up_proj, down_proj, lm_head)", path, t->name, mod);
            break;
        }
        if (which != 'A') continue; /* pairs are formed from the A side */
        char bkey[256];
        snprintf(bkey, sizeof bkey, KEY_PREFIX "%s.lora_B.weight", mod);
        const st_tensor *tb = NULL;
        for (int64_t j = 0; j < f.n && !tb; j++)
            if (!strcmp(f.t[j].name, bkey)) tb = &f.t[j];
        if (!tb) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: its %s is missing", path, t->name, bkey);
            break;
        }
        if (t->n_dims != 2 || tb->n_dims != 2 || t->shape[0] != tb->shape[1] || t->shape[0] < 1 || t->shape[1] < 1 ||
            tb->shape[0] < 1) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: shapes [%lld, %lld] and [%lld, %lld] are not [r, n_in] and "
                              "[n_out, r]", path, t->name, (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                              (long long)tb->shape[0], (long long)(tb->n_dims > 1 ? tb->shape[1] : 0));
            break;
        }
        pf_lora_pair *p = pf_lora_weights_add(w);
        if (!p) { rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path); break; }
        snprintf(p->base, sizeof p->base, "%s", base);
        p->r = t->shape[0], p->n_in = t->shape[1], p->n_out = tb->shape[0];
        p->a = malloc((size_t)(p->r * p->n_in) * sizeof(float));
        p->b = malloc((size_t)(p->n_out * p->r) * sizeof(float));
        if (!p->a || !p->b) { rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path); break; }
        st_to_f32(t, p->a), st_to_f32(tb, p->b);
        if (p->r > w->rank) w->rank = (int32_t)p->r;
    }
    /* every B needs its A */
    for (int64_t i = 0; rc == PF_OK && i < f.n; i++) {
        char mod[160], which, akey[256];
        if (!split_key(f.t[i].name, mod, sizeof mod, &which) || which != 'B') continue;
        snprintf(akey, sizeof akey, KEY_PREFIX "%s.lora_A.weight", mod);
        bool found = false;
        for (int64_t j = 0; j < f.n && !found; j++) found = !strcmp(f.t[j].name, akey);
        if (!found) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: its %s is missing", path, f.t[i].name, akey);
    }
    st_free(&f);
    if (rc == PF_OK && w->n == 0) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: no lora_A/lora_B pairs", path);
    if (rc == PF_OK) pf_lora_sort_pairs(w);
    return rc;
}
