/* phiforge convert: a Hugging Face directory is built here from a GGUF (safetensors with HF names —
 * sharded with an index, or one F32 file —, config.json, a tokenizer.model protobuf written from the
 * GGUF vocabulary, tokenizer_config.json and tokenizer.json with the added tokens), converted back,
 * and compared with the original: every metadata key and value, every tensor's name, type, shape
 * and bytes, and the logits against llama.cpp's golden (tiny Phi-3, and the LongRoPE one with its
 * factors and attn_factor). Then hostile inputs: truncated / inconsistent safetensors, bad JSON,
 * missing tensor, wrong shape, truncated tokenizer.model. */
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"
#include "convert/convert_internal.h"

#define N_VOCAB 32064
static pf_test T;
static char g_tmp[64];

/* ---- building the HF directory ------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(&T, f != NULL, "open %s", path);
    if (!f) return;
    CHECK(&T, fwrite(data, 1, n, f) == n, "write %s", path);
    fclose(f);
}

static void write_json(const char *dir, const char *name, cJSON *j) {
    char path[512], *s = cJSON_PrintUnformatted(j);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, s, strlen(s));
    free(s);
}

/* The HF name of a GGUF tensor (NULL for rope factors, which live in config.json). */
static const char *hf_name(const char *gg, char *buf, size_t cap) {
    static const char *const map[][2] = {{"attn_norm", "input_layernorm"},          {"attn_qkv", "self_attn.qkv_proj"},
                                         {"attn_output", "self_attn.o_proj"},       {"ffn_norm", "post_attention_layernorm"},
                                         {"ffn_up", "mlp.gate_up_proj"},            {"ffn_down", "mlp.down_proj"}};
    int l;
    char part[64];
    if (!strcmp(gg, "token_embd.weight")) return "model.embed_tokens.weight";
    if (!strcmp(gg, "output_norm.weight")) return "model.norm.weight";
    if (!strcmp(gg, "output.weight")) return "lm_head.weight";
    if (sscanf(gg, "blk.%d.%63[a-z_].weight", &l, part) == 2)
        for (int k = 0; k < 6; k++)
            if (!strcmp(part, map[k][0])) {
                snprintf(buf, cap, "model.layers.%d.%s.weight", l, map[k][1]);
                return buf;
            }
    return NULL;
}

/* One safetensors file with the tensors of g whose index i satisfies pick(i); as_f32 widens F16. */
enum { AS_IS = 0, AS_F32 = 1, AS_BF16 = 2 };

static void write_safetensors(const char *path, const pf_gguf *g, int shard, int n_shards, int as, cJSON *weight_map,
                              const char *file_name) {
    cJSON *hdr = cJSON_CreateObject();
    cJSON_AddItemToObject(hdr, "__metadata__", cJSON_CreateObject());
    cJSON_AddStringToObject(cJSON_GetObjectItem(hdr, "__metadata__"), "format", "pt");
    size_t off = 0;
    uint8_t *data = NULL;
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        char buf[128];
        const char *hf = hf_name(t->name, buf, sizeof buf);
        if (!hf || i % n_shards != shard) continue;
        const int64_t n = pf_tensor_nelements(t);
        const bool widen = as == AS_F32 && t->type == PF_TYPE_F16, bf = as == AS_BF16;
        const size_t nb = widen ? (size_t)n * 4 : bf ? (size_t)n * 2 : t->nbytes;
        data = realloc(data, off + nb);
        if (bf) /* every tensor rounded to bfloat16, as Phi-3 checkpoints ship */
            for (int64_t k = 0; k < n; k++) {
                float f = 0;
                pf_type_get(t->type)->to_float((const uint8_t *)t->data + (t->type == PF_TYPE_F32 ? 4 : 2) * k, &f, 1);
                uint16_t h = pf_fp32_to_bf16(f);
                memcpy(data + off + 2 * k, &h, 2);
            }
        else if (widen)
            for (int64_t k = 0; k < n; k++) {
                uint16_t h;
                memcpy(&h, (const uint8_t *)t->data + 2 * k, 2);
                float f = pf_fp16_to_fp32(h);
                memcpy(data + off + 4 * k, &f, 4);
            }
        else
            memcpy(data + off, t->data, nb);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", bf ? "BF16" : widen || t->type == PF_TYPE_F32 ? "F32" : "F16");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = (int)t->n_dims - 1; d >= 0; d--) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(hdr, hf, e);
        if (weight_map) cJSON_AddStringToObject(weight_map, hf, file_name);
        off += nb;
    }
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hl = strlen(h), padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)padded >> (8 * k));
    fwrite(len8, 1, 8, f);
    fwrite(h, 1, hl, f);
    for (size_t k = hl; k < padded; k++) fputc(' ', f);
    if (off) fwrite(data, 1, off, f);
    fclose(f);
    free(h);
    free(data);
    cJSON_Delete(hdr);
}

/* protobuf writers */
static void pb_varint(uint8_t **p, uint64_t v) {
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        *(*p)++ = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
}
static void pb_key(uint8_t **p, int field, int wt) { pb_varint(p, (uint64_t)(field << 3 | wt)); }

static const pf_gguf_value *arr(const pf_gguf *g, const char *key) { return pf_gguf_get(g, key); }

/* tokenizer.model: ids [0, n_spm) with the GGUF's pieces, scores and types, except that the ids the
 * added tokens override carry what a real SentencePiece model has there (score 0; <unk> UNKNOWN,
 * <s> and </s> CONTROL); trainer_spec with pad_id -1 (a 10-byte negative varint). */
static void write_spm(const char *path, const pf_gguf *g, int64_t n_spm) {
    const pf_gguf_value *tok = arr(g, "tokenizer.ggml.tokens"), *sc = arr(g, "tokenizer.ggml.scores"),
                        *ty = arr(g, "tokenizer.ggml.token_type");
    size_t cap = 64 << 20;
    uint8_t *buf = malloc(cap), *p = buf;
    for (int64_t i = 0; i < n_spm; i++) {
        uint8_t piece[512], *q = piece;
        const char *s = tok->v.arr.items[i].v.str.ptr;
        const size_t l = strlen(s);
        float score;
        int32_t type;
        memcpy(&score, (const uint8_t *)sc->v.arr.data + 4 * i, 4);
        memcpy(&type, (const uint8_t *)ty->v.arr.data + 4 * i, 4);
        if (i < 3) score = 0.0f, type = i == 0 ? 2 : 3;
        pb_key(&q, 1, 2), pb_varint(&q, l), memcpy(q, s, l), q += l;
        pb_key(&q, 2, 5), memcpy(q, &score, 4), q += 4;
        if (type != 1) pb_key(&q, 3, 0), pb_varint(&q, (uint64_t)type);
        pb_key(&p, 1, 2), pb_varint(&p, (uint64_t)(q - piece)), memcpy(p, piece, (size_t)(q - piece)), p += q - piece;
    }
    uint8_t tr[64], *q = tr;
    pb_key(&q, 3, 0), pb_varint(&q, 32000); /* vocab_size: a field the reader skips */
    pb_key(&q, 40, 0), pb_varint(&q, 0);
    pb_key(&q, 41, 0), pb_varint(&q, 1);
    pb_key(&q, 42, 0), pb_varint(&q, 2);
    pb_key(&q, 43, 0), pb_varint(&q, (uint64_t)(int64_t)-1);
    pb_key(&p, 2, 2), pb_varint(&p, (uint64_t)(q - tr)), memcpy(p, tr, (size_t)(q - tr)), p += q - tr;
    write_file(path, buf, (size_t)(p - buf));
    free(buf);
}

static int64_t get_u(const pf_gguf *g, const char *key) {
    int64_t v = -1;
    pf_gguf_get_int(g, key, &v, NULL);
    return v;
}

/* The whole HF directory for the GGUF at src. */
static void make_hf_dir(const char *dir, const pf_gguf *g, bool sharded, int as, bool with_spm) {
    mkdir(dir, 0755);
    char path[512];
    const pf_gguf_value *tok = arr(g, "tokenizer.ggml.tokens"), *ty = arr(g, "tokenizer.ggml.token_type");
    const int64_t n_vocab = (int64_t)tok->v.arr.n;
    /* the SentencePiece part ends where the added tokens begin (after the first three) */
    int64_t n_spm = 3;
    for (; n_spm < n_vocab; n_spm++) {
        int32_t t;
        memcpy(&t, (const uint8_t *)ty->v.arr.data + 4 * n_spm, 4);
        if (t == 3 || t == 4 || t == 5) break;
    }
    CHECK(&T, n_spm == 32000, "SentencePiece pieces: %lld", (long long)n_spm);

    /* config.json */
    cJSON *c = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString("Phi3ForCausalLM"));
    const int64_t n_embd = get_u(g, "phi3.embedding_length"), n_head = get_u(g, "phi3.attention.head_count");
    cJSON_AddNumberToObject(c, "hidden_size", (double)n_embd);
    cJSON_AddNumberToObject(c, "intermediate_size", (double)get_u(g, "phi3.feed_forward_length"));
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)get_u(g, "phi3.block_count"));
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)n_head);
    cJSON_AddNumberToObject(c, "num_key_value_heads", (double)get_u(g, "phi3.attention.head_count_kv"));
    cJSON_AddNumberToObject(c, "max_position_embeddings", (double)get_u(g, "phi3.context_length"));
    cJSON_AddNumberToObject(c, "original_max_position_embeddings", (double)get_u(g, "phi3.rope.scaling.original_context_length"));
    double eps = 0, theta = 0;
    pf_gguf_get_float(g, "phi3.attention.layer_norm_rms_epsilon", &eps, NULL);
    pf_gguf_get_float(g, "phi3.rope.freq_base", &theta, NULL);
    cJSON_AddNumberToObject(c, "rms_norm_eps", eps);
    cJSON_AddNumberToObject(c, "rope_theta", theta);
    cJSON_AddNumberToObject(c, "vocab_size", (double)n_vocab);
    cJSON_AddNumberToObject(c, "bos_token_id", (double)get_u(g, "tokenizer.ggml.bos_token_id"));
    cJSON_AddNumberToObject(c, "eos_token_id", (double)get_u(g, "tokenizer.ggml.eos_token_id"));
    cJSON_AddNumberToObject(c, "pad_token_id", (double)get_u(g, "tokenizer.ggml.padding_token_id"));
    const int64_t lf = pf_gguf_find_tensor(g, "rope_factors_long.weight"), sf = pf_gguf_find_tensor(g, "rope_factors_short.weight");
    if (lf >= 0 && sf >= 0) {
        cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "longrope");
        for (int k = 0; k < 2; k++) {
            const pf_tensor_info *t = pf_gguf_tensor(g, k == 0 ? lf : sf);
            cJSON *fa = cJSON_AddArrayToObject(rs, k == 0 ? "long_factor" : "short_factor");
            for (int64_t i = 0; i < t->ne[0]; i++) {
                float f;
                memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
                cJSON_AddItemToArray(fa, cJSON_CreateNumber(f));
            }
        }
    } else {
        cJSON_AddNullToObject(c, "rope_scaling");
    }
    write_json(dir, "config.json", c);
    cJSON_Delete(c);

    /* tokenizer_config.json and tokenizer.json: the added tokens (GGUF CONTROL = special) */
    cJSON *tc = cJSON_CreateObject(), *tj = cJSON_CreateObject();
    cJSON *atd = cJSON_AddObjectToObject(tc, "added_tokens_decoder"), *at = cJSON_AddArrayToObject(tj, "added_tokens");
    cJSON *model = cJSON_AddObjectToObject(tj, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *voc = cJSON_AddObjectToObject(model, "vocab");
    for (int64_t i = 0; i < n_vocab; i++) {
        int32_t t;
        memcpy(&t, (const uint8_t *)ty->v.arr.data + 4 * i, 4);
        const char *s = tok->v.arr.items[i].v.str.ptr;
        if (i < n_spm && i >= 3) cJSON_AddNumberToObject(voc, s, (double)i);
        if (t != 3 && t != 4) continue;
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)i);
        cJSON *e = cJSON_AddObjectToObject(atd, id);
        cJSON_AddStringToObject(e, "content", s);
        cJSON_AddBoolToObject(e, "special", t == 3);
        cJSON *e2 = cJSON_CreateObject();
        cJSON_AddNumberToObject(e2, "id", (double)i);
        cJSON_AddStringToObject(e2, "content", s);
        cJSON_AddBoolToObject(e2, "special", t == 3);
        cJSON_AddItemToArray(at, e2);
    }
    static const char *const sp[4][2] = {{"bos_token", "tokenizer.ggml.bos_token_id"}, {"eos_token", "tokenizer.ggml.eos_token_id"},
                                         {"unk_token", "tokenizer.ggml.unknown_token_id"}, {"pad_token", "tokenizer.ggml.padding_token_id"}};
    for (int k = 0; k < 4; k++) cJSON_AddStringToObject(tc, sp[k][0], tok->v.arr.items[get_u(g, sp[k][1])].v.str.ptr);
    bool b = false;
    pf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, NULL);
    cJSON_AddBoolToObject(tc, "add_bos_token", b);
    pf_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, NULL);
    cJSON_AddBoolToObject(tc, "add_eos_token", b);
    const char *tmpl = NULL;
    pf_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL);
    cJSON_AddStringToObject(tc, "chat_template", tmpl);
    cJSON_AddStringToObject(tc, "tokenizer_class", "LlamaTokenizer");
    write_json(dir, "tokenizer_config.json", tc);
    write_json(dir, "tokenizer.json", tj);
    cJSON_Delete(tc);
    cJSON_Delete(tj);
    if (with_spm) {
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        write_spm(path, g, n_spm);
    }

    /* weights */
    if (sharded) {
        cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
        for (int s = 0; s < 2; s++) {
            char name[64];
            snprintf(name, sizeof name, "model-%05d-of-00002.safetensors", s + 1);
            snprintf(path, sizeof path, "%s/%s", dir, name);
            write_safetensors(path, g, s, 2, as, wm, name);
        }
        write_json(dir, "model.safetensors.index.json", idx);
        cJSON_Delete(idx);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_safetensors(path, g, 0, 1, as, NULL, NULL);
    }
}

/* ---- comparisons ----------------------------------------------------------------------------- */

static bool same_value(const pf_gguf_value *a, const pf_gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case PF_GGUF_STRING: return a->v.str.len == b->v.str.len && !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len);
    case PF_GGUF_ARRAY:
        if (a->v.arr.type != b->v.arr.type || a->v.arr.n != b->v.arr.n) return false;
        if (a->v.arr.type == PF_GGUF_STRING || a->v.arr.type == PF_GGUF_ARRAY) {
            for (uint64_t i = 0; i < a->v.arr.n; i++)
                if (!same_value(&a->v.arr.items[i], &b->v.arr.items[i])) return false;
            return true;
        }
        return !memcmp(a->v.arr.data, b->v.arr.data, a->v.arr.n * pf_gguf_type_size(a->v.arr.type));
    case PF_GGUF_FLOAT32:
    case PF_GGUF_FLOAT64: return a->v.f == b->v.f;
    case PF_GGUF_INT8: case PF_GGUF_INT16: case PF_GGUF_INT32: case PF_GGUF_INT64: return a->v.i == b->v.i;
    default: return a->v.u == b->v.u;
    }
}

/* Every key of the original in the converted file with an equal value (scores excepted when the
 * vocabulary came from tokenizer.json), the converter's additions listed; tensors identical. */
static void compare_gguf(const char *what, const pf_gguf *orig, const pf_gguf *conv, bool scores) {
    int missing = 0, differ = 0;
    for (int64_t i = 0; i < pf_gguf_n_kv(orig); i++) {
        const char *k = pf_gguf_key(orig, i);
        const pf_gguf_value *b = pf_gguf_get(conv, k);
        if (!b) {
            missing++;
            fprintf(stderr, "%s: key %s missing\n", what, k);
        } else if (!strcmp(k, "tokenizer.ggml.token_type")) {
            /* the padding ids "[PAD<id>]" past the added tokens: the tiny GGUF was made by an older
             * convert_hf_to_gguf.py that typed them UNKNOWN (2); the current one types them UNUSED (5) */
            const pf_gguf_value *a = pf_gguf_value_at(orig, i), *tok = pf_gguf_get(orig, "tokenizer.ggml.tokens");
            int d = a->v.arr.n != b->v.arr.n, pads = 0;
            for (uint64_t j = 0; !d && j < a->v.arr.n; j++) {
                int32_t ta, tb;
                memcpy(&ta, (const uint8_t *)a->v.arr.data + 4 * j, 4);
                memcpy(&tb, (const uint8_t *)b->v.arr.data + 4 * j, 4);
                const bool pad = !strncmp(tok->v.arr.items[j].v.str.ptr, "[PAD", 4);
                pads += pad && ta == 2 && tb == 5;
                d += !(ta == tb || (pad && ta == 2 && tb == 5));
            }
            if (d) fprintf(stderr, "%s: %d token types differ\n", what, d);
            differ += d != 0;
            CHECK(&T, pads == 0 || pads == 53, "%s: %d padding ids retyped UNUSED", what, pads);
        } else if (!same_value(pf_gguf_value_at(orig, i), b) && (scores || strcmp(k, "tokenizer.ggml.scores"))) {
            differ++;
            fprintf(stderr, "%s: key %s differs\n", what, k);
        }
    }
    CHECK(&T, missing == 0 && differ == 0, "%s: %d keys missing, %d differ", what, missing, differ);
    CHECK(&T, pf_gguf_n_kv(conv) == pf_gguf_n_kv(orig) + 1 && pf_gguf_get(conv, "phi3.attention.sliding_window"),
          "%s: one key added (attention.sliding_window, as current llama.cpp writes): %lld vs %lld", what,
          (long long)pf_gguf_n_kv(conv), (long long)pf_gguf_n_kv(orig));
    CHECK(&T, pf_gguf_n_tensors(conv) == pf_gguf_n_tensors(orig), "%s: %lld tensors", what, (long long)pf_gguf_n_tensors(conv));
    int bad = 0;
    for (int64_t i = 0; i < pf_gguf_n_tensors(orig) && i < pf_gguf_n_tensors(conv); i++) {
        const pf_tensor_info *a = pf_gguf_tensor(orig, i), *b = pf_gguf_tensor(conv, i);
        const bool ok = !strcmp(a->name, b->name) && a->type == b->type && a->n_dims == b->n_dims &&
                        !memcmp(a->ne, b->ne, sizeof a->ne) && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
        if (!ok) fprintf(stderr, "%s: tensor %s / %s differs\n", what, a->name, b->name);
        bad += !ok;
    }
    CHECK(&T, bad == 0, "%s: %d tensors differ (name, order, type, shape or bytes)", what, bad);
}

static void check_logits(const char *path, const char *ids_name, const char *golden, int64_t n_ctx) {
    int32_t ids[128];
    int n = pf_test_read_ids(ids_name, ids, 128);
    float *want = n ? pf_test_read_golden_f32(golden, (size_t)n * N_VOCAB) : NULL;
    if (!want) {
        printf("SKIP: %s / %s not found\n", ids_name, golden);
        return;
    }
    pf_error e = {0};
    pf_model *m = NULL;
    pf_context *ctx = NULL;
    CHECK(&T, pf_model_load(path, &m, &e) == PF_OK, "load %s: %s", path, e.msg);
    pf_context_params p = pf_context_default_params();
    p.n_ctx = n_ctx, p.n_threads = 2;
    if (m) CHECK(&T, pf_context_create(m, &p, &ctx, &e) == PF_OK, "context: %s", e.msg);
    float *got = malloc((size_t)n * N_VOCAB * sizeof(float));
    if (ctx) {
        CHECK(&T, pf_decode(ctx, ids, n, 0, got, PF_LOGITS_ALL, &e) == PF_OK, "decode: %s", e.msg);
        pf_test_compare_logits(&T, path, got, want, n, N_VOCAB, 0.99999, 0.002, true);
    }
    free(got), free(want);
    pf_context_free(ctx);
    pf_model_free(m);
}

/* converts dir -> out with default params and name "Phi3"; returns the status */
static int convert(const char *dir, const char *out, pf_type t, pf_error *e) {
    pf_convert_params p = pf_convert_default_params();
    p.name = "Phi3";
    p.outtype = t;
    return pf_convert_hf(dir, out, &p, e);
}

static void roundtrip(const char *model, const char *ids, const char *golden, int64_t n_ctx, bool sharded, int as) {
    char src[512], dir[512], out[512];
    if (!pf_test_data_path(src, sizeof src, "models", model)) {
        printf("SKIP: %s not found\n", model);
        return;
    }
    pf_gguf *g = NULL, *c = NULL;
    pf_error e = {0};
    CHECK(&T, pf_gguf_open(src, &g, &e) == PF_OK, "open %s: %s", src, e.msg);
    if (!g) return;
    snprintf(dir, sizeof dir, "%s/%s.hf", g_tmp, model);
    snprintf(out, sizeof out, "%s/%s.conv.gguf", g_tmp, model);
    make_hf_dir(dir, g, sharded, as, true);
    int rc = convert(dir, out, PF_TYPE_F16, &e);
    CHECK(&T, rc == PF_OK, "convert %s: %s", dir, e.msg);
    if (rc == PF_OK && pf_gguf_open(out, &c, &e) == PF_OK) {
        compare_gguf(model, g, c, true);
        pf_gguf_close(c);
        check_logits(out, ids, golden, n_ctx);
    }
    /* tokenizer.json only: same tokens and types (scores are the id order, not SentencePiece's) */
    char spm[600];
    snprintf(spm, sizeof spm, "%s/tokenizer.model", dir);
    unlink(spm);
    rc = convert(dir, out, PF_TYPE_F16, &e);
    CHECK(&T, rc == PF_OK, "convert without tokenizer.model: %s", e.msg);
    if (rc == PF_OK && pf_gguf_open(out, &c, &e) == PF_OK) {
        compare_gguf("tokenizer.json vocabulary", g, c, false);
        pf_gguf_close(c);
    }
    /* Q8_0: the 2-D weights as the reference quantizer makes them from the F16 values */
    rc = convert(dir, out, PF_TYPE_Q8_0, &e);
    CHECK(&T, rc == PF_OK, "convert q8_0: %s", e.msg);
    if (rc == PF_OK && pf_gguf_open(out, &c, &e) == PF_OK) {
        int bad = 0;
        for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
            const pf_tensor_info *a = pf_gguf_tensor(g, i), *b = pf_gguf_tensor(c, i);
            if (a->type != PF_TYPE_F16) {
                bad += b->type != a->type;
                continue;
            }
            const int64_t n = pf_tensor_nelements(a);
            float *f = malloc((size_t)n * 4);
            uint8_t *q = malloc(pf_row_size(PF_TYPE_Q8_0, a->ne[0]) * (size_t)a->ne[1]);
            pf_type_get(PF_TYPE_F16)->to_float(a->data, f, n);
            for (int64_t r = 0; r < a->ne[1]; r++)
                pf_type_get(PF_TYPE_Q8_0)->from_float(f + r * a->ne[0], q + r * pf_row_size(PF_TYPE_Q8_0, a->ne[0]), a->ne[0]);
            bad += b->type != PF_TYPE_Q8_0 || b->nbytes != pf_row_size(PF_TYPE_Q8_0, a->ne[0]) * (size_t)a->ne[1] ||
                   memcmp(q, b->data, b->nbytes);
            free(f), free(q);
        }
        int64_t ft = get_u(c, "general.file_type");
        CHECK(&T, bad == 0 && ft == 7, "q8_0: %d tensors differ from the reference quantizer; file_type %lld", bad, (long long)ft);
        pf_gguf_close(c);
    }
    pf_gguf_close(g);
}

/* ---- hostile inputs -------------------------------------------------------------------------- */

static void expect_fail(const char *what, const char *dir, int want_rc, const char *needle) {
    char out[512];
    pf_error e = {0};
    snprintf(out, sizeof out, "%s/hostile.gguf", g_tmp);
    int rc = convert(dir, out, PF_TYPE_F16, &e);
    CHECK(&T, rc == want_rc && strstr(e.msg, needle) != NULL, "%s: rc %d (want %d), message \"%s\" should name \"%s\"", what, rc,
          want_rc, e.msg, needle);
}

static void copy_file(const char *from, const char *to, size_t keep) {
    size_t n = 0;
    uint8_t *d = pf_test_read_file(from, &n);
    if (!d) return;
    write_file(to, d, keep < n ? keep : n);
    free(d);
}

static void hostile(void) {
    char src[512], dir[512], path[600], good[600];
    pf_gguf *g = NULL;
    if (!pf_test_data_path(src, sizeof src, "models", "phi3-tiny-f16.gguf") || pf_gguf_open(src, &g, NULL) != PF_OK) return;
    snprintf(dir, sizeof dir, "%s/hostile.hf", g_tmp);
    make_hf_dir(dir, g, false, AS_IS, true);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(good, sizeof good, "%s/good.safetensors", g_tmp);
    copy_file(path, good, SIZE_MAX);
    size_t n = 0;
    uint8_t *st = pf_test_read_file(good, &n);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = hl << 8 | st[k];

    copy_file(good, path, n - 100); /* truncated data */
    expect_fail("truncated safetensors", dir, PF_ERR_FORMAT, "model.safetensors");
    copy_file(good, path, 8 + hl / 2); /* truncated header */
    expect_fail("truncated header", dir, PF_ERR_FORMAT, "header length");
    copy_file(good, path, 5);
    expect_fail("5-byte file", dir, PF_ERR_FORMAT, "too short");
    /* header JSON without its closing brace, same length */
    uint8_t *bad = malloc(n);
    memcpy(bad, st, n);
    for (size_t k = 8 + hl - 1; k > 8; k--)
        if (bad[k] == '}') {
            bad[k] = ' ';
            break;
        }
    write_file(path, bad, n);
    expect_fail("bad header JSON", dir, PF_ERR_FORMAT, "not a JSON object");
    /* a dtype the converter does not read, and offsets past the end (same header length) */
    memcpy(bad, st, n);
    char *f16 = strstr((char *)bad + 8, "\"F16\"");
    if (f16) memcpy(f16, "\"I16\"", 5);
    write_file(path, bad, n);
    expect_fail("unsupported dtype", dir, PF_ERR_UNSUPPORTED, "I16");
    free(bad);
    /* a missing tensor: the file without its last tensor is written from scratch */
    {
        cJSON *hdr = cJSON_ParseWithLength((const char *)st + 8, hl);
        cJSON_DeleteItemFromObject(hdr, "model.layers.1.mlp.down_proj.weight");
        char *h = cJSON_PrintUnformatted(hdr);
        size_t l = strlen(h);
        uint8_t len8[8];
        for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)l >> (8 * k));
        FILE *f = fopen(path, "wb");
        fwrite(len8, 1, 8, f), fwrite(h, 1, l, f), fwrite(st + 8 + hl, 1, n - 8 - hl, f);
        fclose(f);
        free(h);
        cJSON_Delete(hdr);
        expect_fail("missing tensor", dir, PF_ERR_NOT_FOUND, "model.layers.1.mlp.down_proj.weight");
    }
    copy_file(good, path, SIZE_MAX);
    /* config.json: broken JSON, wrong architecture, a shape it contradicts */
    char cfg[600], cfg_good[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(cfg_good, sizeof cfg_good, "%s/config.good", g_tmp);
    copy_file(cfg, cfg_good, SIZE_MAX);
    write_file(cfg, "{\"hidden_size\": 64,", 19);
    expect_fail("bad config.json", dir, PF_ERR_FORMAT, "config.json");
    write_file(cfg, "{\"architectures\": [\"LlamaForCausalLM\"]}", 39);
    expect_fail("other architecture", dir, PF_ERR_UNSUPPORTED, "LlamaForCausalLM");
    size_t cn = 0;
    char *c = pf_test_read_file(cfg_good, &cn);
    cJSON *cj = cJSON_ParseWithLength(c, cn);
    cJSON_ReplaceItemInObject(cj, "intermediate_size", cJSON_CreateNumber(96));
    write_json(dir, "config.json", cj);
    expect_fail("shape vs config", dir, PF_ERR_FORMAT, "mlp.gate_up_proj");
    cJSON_Delete(cj);
    free(c);
    copy_file(cfg_good, cfg, SIZE_MAX);
    /* tokenizer.model cut inside a piece */
    char spm[600];
    snprintf(spm, sizeof spm, "%s/tokenizer.model", dir);
    size_t sn = 0;
    uint8_t *sd = pf_test_read_file(spm, &sn);
    write_file(spm, sd, 1001);
    expect_fail("truncated tokenizer.model", dir, PF_ERR_FORMAT, "tokenizer.model");
    write_file(spm, sd, sn);
    free(sd);
    /* and the repaired directory converts again */
    char out[600];
    pf_error e = {0};
    snprintf(out, sizeof out, "%s/hostile.gguf", g_tmp);
    CHECK(&T, convert(dir, out, PF_TYPE_F16, &e) == PF_OK, "repaired directory converts: %s", e.msg);
    free(st);
    pf_gguf_close(g);
}

/* SentencePiece reader on hand-made bytes: unknown fields skipped, a group refused. */
static void spm_unit(void) {
    uint8_t b[64], *p = b;
    pb_key(&p, 7, 0), pb_varint(&p, 300);              /* unknown varint field */
    pb_key(&p, 1, 2), pb_varint(&p, 11);               /* piece "ab", score 0.5, type BYTE */
    pb_key(&p, 1, 2), pb_varint(&p, 2), *p++ = 'a', *p++ = 'b';
    const float half = 0.5f;
    pb_key(&p, 2, 5);
    memcpy(p, &half, 4), p += 4;
    pb_key(&p, 3, 0), pb_varint(&p, 6);
    pb_key(&p, 9, 1), memset(p, 0, 8), p += 8;         /* unknown fixed64 field */
    pf_spm_model m;
    pf_error e = {0};
    int rc = pf_spm_parse(b, (size_t)(p - b), "unit", &m, &e);
    CHECK(&T, rc == PF_OK && m.n == 1 && !strcmp(m.pieces[0], "ab") && m.scores[0] == 0.5f && m.types[0] == 6 &&
                  m.bos_id == 1 && m.pad_id == -1,
          "hand-made model: %s", e.msg);
    if (rc == PF_OK) pf_spm_free(&m);
    uint8_t g[4] = {0x0b, 0x00, 0x00, 0x00}; /* field 1, wire type 3 (group) */
    CHECK(&T, pf_spm_parse(g, 4, "unit", &m, &e) == PF_ERR_FORMAT && strstr(e.msg, "wire type"), "group refused: %s", e.msg);
    uint8_t lng[3] = {0x0a, 0x7f, 0x00};     /* a piece longer than the file */
    CHECK(&T, pf_spm_parse(lng, 3, "unit", &m, &e) == PF_ERR_FORMAT && strstr(e.msg, "byte"), "overlong piece: %s", e.msg);
}

/* A BF16 checkpoint converted to bf16 keeps its weights bit for bit (norms widened to F32 exactly);
 * then the command line: f32 output, a bad --outtype, -h. */
static void bf16_and_cli(void) {
    char src[512], dir[512], out[512];
    pf_gguf *g = NULL, *c = NULL;
    pf_error e = {0};
    if (!pf_test_data_path(src, sizeof src, "models", "phi3-tiny-f16.gguf") || pf_gguf_open(src, &g, &e) != PF_OK) return;
    snprintf(dir, sizeof dir, "%s/bf16.hf", g_tmp);
    snprintf(out, sizeof out, "%s/bf16.gguf", g_tmp);
    make_hf_dir(dir, g, false, AS_BF16, true);
    int rc = convert(dir, out, PF_TYPE_BF16, &e);
    CHECK(&T, rc == PF_OK, "convert bf16: %s", e.msg);
    if (rc == PF_OK && pf_gguf_open(out, &c, &e) == PF_OK) {
        int bad = 0;
        for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
            const pf_tensor_info *a = pf_gguf_tensor(g, i), *b = pf_gguf_tensor(c, i);
            const int64_t n = pf_tensor_nelements(a);
            bad += b->type != (a->n_dims == 2 ? PF_TYPE_BF16 : PF_TYPE_F32) || pf_tensor_nelements(b) != n;
            if (pf_tensor_nelements(b) != n) continue;
            float *fa = malloc((size_t)n * 4), *fb = malloc((size_t)n * 4);
            pf_type_get(a->type)->to_float(a->data, fa, n);
            pf_type_get(b->type)->to_float(b->data, fb, n);
            for (int64_t k = 0; k < n; k++) bad += fb[k] != pf_bf16_to_fp32(pf_fp32_to_bf16(fa[k]));
            free(fa), free(fb);
        }
        CHECK(&T, bad == 0 && get_u(c, "general.file_type") == 32, "bf16 checkpoint -> bf16 GGUF: %d values differ", bad);
        pf_gguf_close(c);
    }
    pf_gguf_close(g);
    if (access("./build/phiforge", X_OK) != 0) {
        printf("SKIP: ./build/phiforge not built, command-line checks skipped\n");
        return;
    }
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "./build/phiforge convert %s %s/cli.gguf --outtype f32 --name Tiny > %s/cli.txt 2>&1", dir, g_tmp, g_tmp);
    CHECK(&T, system(cmd) == 0, "%s", cmd);
    snprintf(out, sizeof out, "%s/cli.gguf", g_tmp);
    if (pf_gguf_open(out, &c, &e) == PF_OK) {
        const char *name = NULL;
        pf_gguf_get_str(c, "general.name", &name, NULL);
        const pf_tensor_info *t = pf_gguf_tensor(c, pf_gguf_find_tensor(c, "blk.0.attn_qkv.weight"));
        CHECK(&T, name && !strcmp(name, "Tiny") && t && t->type == PF_TYPE_F32 && get_u(c, "general.file_type") == 0,
              "CLI: f32 file named Tiny");
        pf_gguf_close(c);
    } else {
        CHECK(&T, 0, "CLI output: %s", e.msg);
    }
    snprintf(cmd, sizeof cmd, "./build/phiforge convert %s %s/x.gguf --outtype q4 > /dev/null 2>&1", dir, g_tmp);
    CHECK(&T, system(cmd) != 0, "bad --outtype fails");
    snprintf(cmd, sizeof cmd, "./build/phiforge convert %s/nonexistent %s/x.gguf > /dev/null 2>&1", g_tmp, g_tmp);
    CHECK(&T, system(cmd) != 0, "missing directory fails");
    CHECK(&T, system("./build/phiforge convert -h > /dev/null") == 0, "convert -h");
    CHECK(&T, system("./build/phiforge bench-nf4 -h > /dev/null") == 0, "bench-nf4 -h");
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/pf_test_convert_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    spm_unit();
    roundtrip("phi3-tiny-f16.gguf", "chat.ids", "phi3-tiny-f16.logits.f32", 0, true, AS_IS);
    roundtrip("phi3-tiny-longrope-f16.gguf", "long.ids", "phi3-tiny-longrope-f16.logits.f32", 512, false, AS_F32);
    bf16_and_cli();
    hostile();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    if (getenv("PF_TEST_KEEP")) printf("kept %s (PF_TEST_KEEP)\n", g_tmp);
    else if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return TEST_REPORT(&T);
}
