/* Loading a tokenizer from GGUF metadata (vocabulary, text -> id hash, decoded pieces; the
 * special tokens are set up in specials.c) and the small accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define PFT_MAX_VOCAB (1 << 24) /* far above any real vocabulary; bounds hostile files */

int pft_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte (Unicode table 3-7) */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;        /* no overlongs  */
        else if (c == 0xED) hi = 0x9F;   /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;   /* <= U+10FFFF   */
    } else return 1;
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 1;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return len;
}

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

int32_t pft_lookup(const pf_tokenizer *tok, const char *s, size_t n) {
    for (uint32_t i = hash_bytes(s, n) & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        int32_t id = tok->slots[i];
        if (id < 0) return -1;
        if (tok->text_len[id] == n && !memcmp(tok->text + tok->text_off[id], s, n)) return id;
    }
}

static void hash_insert(pf_tokenizer *tok, int32_t id) {
    const char *s = tok->text + tok->text_off[id];
    size_t n = tok->text_len[id];
    for (uint32_t i = hash_bytes(s, n) & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        int32_t o = tok->slots[i];
        if (o < 0 || (tok->text_len[o] == n && !memcmp(tok->text + tok->text_off[o], s, n))) {
            tok->slots[i] = id; /* a later duplicate replaces the earlier id, as llama.cpp's map does */
            return;
        }
    }
}

static const char *tok_text(const pf_tokenizer *tok, int32_t id) { return tok->text + tok->text_off[id]; }

static int32_t lookup_cstr(const pf_tokenizer *tok, const char *s) { return pft_lookup(tok, s, strlen(s)); }

/* ---- reading the arrays ------------------------------------------------------------------ */

static const pf_gguf_value *get_array(const pf_gguf *g, const char *key, pf_gguf_type elem, uint64_t n, int *rc,
                                      pf_error *err) {
    const pf_gguf_value *v = pf_gguf_get(g, key);
    *rc = PF_OK;
    if (!v) return NULL;
    if (v->type != PF_GGUF_ARRAY || v->v.arr.type != elem || v->v.arr.n != n) {
        *rc = pf_error_set(err, PF_ERR_FORMAT, "%s: %s must be an array of %llu %s", pf_gguf_path(g), key,
                           (unsigned long long)n, pf_gguf_type_name(elem));
        return NULL;
    }
    return v;
}

/* Token-type value (llama_token_type) -> attribute. */
static uint16_t attr_of_type(int32_t t) {
    switch (t) {
    case 1: return PFT_NORMAL;
    case 2: return PFT_UNKNOWN;
    case 3: return PFT_CONTROL;
    case 4: return PFT_USER_DEFINED;
    case 5: return PFT_UNUSED;
    case 6: return PFT_BYTE;
    default: return PFT_UNDEFINED;
    }
}

static int load_vocab(pf_tokenizer *tok, const pf_gguf *g, pf_error *err) {
    const pf_gguf_value *toks = pf_gguf_get(g, "tokenizer.ggml.tokens");
    if (!toks) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no tokenizer.ggml.tokens", pf_gguf_path(g));
    if (toks->type != PF_GGUF_ARRAY || toks->v.arr.type != PF_GGUF_STRING || toks->v.arr.n == 0 ||
        toks->v.arr.n > PFT_MAX_VOCAB)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tokenizer.ggml.tokens must be a non-empty string array",
                            pf_gguf_path(g));
    int32_t n = (int32_t)toks->v.arr.n;
    int rc;
    const pf_gguf_value *scores = get_array(g, "tokenizer.ggml.scores", PF_GGUF_FLOAT32, (uint64_t)n, &rc, err);
    if (rc) return rc;
    const pf_gguf_value *types = get_array(g, "tokenizer.ggml.token_type", PF_GGUF_INT32, (uint64_t)n, &rc, err);
    if (rc) return rc;

    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        uint64_t len = toks->v.arr.items[i].v.str.len;
        if (len > UINT32_MAX) return pf_error_set(err, PF_ERR_FORMAT, "%s: token %d too long", pf_gguf_path(g), i);
        total += len + 1;
    }
    if (total > UINT32_MAX) return pf_error_set(err, PF_ERR_FORMAT, "%s: vocabulary text too large", pf_gguf_path(g));
    uint32_t slots = 1;
    while (slots < 2u * (uint32_t)n) slots <<= 1;
    tok->n_vocab = n;
    tok->text = malloc(total);
    tok->piece = malloc(total);
    tok->text_off = malloc(sizeof(uint32_t) * (size_t)n);
    tok->text_len = malloc(sizeof(uint32_t) * (size_t)n);
    tok->piece_off = malloc(sizeof(uint32_t) * (size_t)n);
    tok->piece_len = malloc(sizeof(uint32_t) * (size_t)n);
    tok->score = malloc(sizeof(float) * (size_t)n);
    tok->attr = malloc(sizeof(uint16_t) * (size_t)n);
    tok->slots = malloc(sizeof(int32_t) * slots);
    if (!tok->text || !tok->piece || !tok->text_off || !tok->text_len || !tok->piece_off || !tok->piece_len ||
        !tok->score || !tok->attr || !tok->slots)
        return pf_error_set(err, PF_ERR_NOMEM, "tokenizer: out of memory for %d tokens", n);
    tok->slot_mask = slots - 1;
    memset(tok->slots, 0xFF, sizeof(int32_t) * slots);

    uint32_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        const pf_gguf_value *s = &toks->v.arr.items[i];
        tok->text_off[i] = off;
        tok->text_len[i] = (uint32_t)s->v.str.len;
        if (s->v.str.len) memcpy(tok->text + off, s->v.str.ptr, s->v.str.len);
        off += (uint32_t)s->v.str.len;
        tok->text[off++] = '\0';
        float sc = 0.0f;
        int32_t ty = 1; /* NORMAL when the file has no token_type (llama.cpp's default) */
        if (scores) memcpy(&sc, (const char *)scores->v.arr.data + 4 * (size_t)i, 4);
        if (types) memcpy(&ty, (const char *)types->v.arr.data + 4 * (size_t)i, 4);
        tok->score[i] = sc;
        tok->attr[i] = attr_of_type(ty);
        if (tok->text_len[i]) hash_insert(tok, i); /* empty texts can never be matched */
    }
    return PF_OK;
}

/* Whether any entry holds a "▁" at byte offset > 0 not preceded by another "▁": such an entry
 * could be merged across a word start, and then BPE must see whole fragments. */
static bool words_separable(const pf_tokenizer *tok) {
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const char *t = tok_text(tok, i), *p = t;
        size_t l = tok->text_len[i];
        while ((p = memmem(p, l - (size_t)(p - t), "\xE2\x96\x81", 3)) != NULL) {
            if (p > t && (p - t < 3 || memcmp(p - 3, "\xE2\x96\x81", 3))) return false;
            p++;
        }
    }
    return true;
}

/* Decoded pieces (llama.cpp token_to_piece with special = true) and the byte-fallback table. */
static void build_pieces(pf_tokenizer *tok) {
    uint32_t off = 0;
    tok->max_piece = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const char *t = tok_text(tok, i);
        uint32_t l = tok->text_len[i], m = 0;
        char *p = tok->piece + off;
        uint16_t a = tok->attr[i];
        if (a & (PFT_HIDDEN_MASK | PFT_USER_DEFINED)) {
            memcpy(p, t, l);
            m = l;
        } else if (a & PFT_NORMAL) {
            for (uint32_t j = 0; j < l; j++) {
                if (j + 2 < l && !memcmp(t + j, "\xE2\x96\x81", 3)) { p[m++] = ' '; j += 2; }
                else p[m++] = t[j];
            }
        } else if (a & PFT_BYTE) {
            unsigned v;
            char tail;
            if (sscanf(t, "<0x%2X%c", &v, &tail) == 2 && tail == '>') p[m++] = (char)v;
        }
        tok->piece_off[i] = off;
        tok->piece_len[i] = m;
        off += m;
        if (m > tok->max_piece) tok->max_piece = m;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_id[b] = lookup_cstr(tok, name);
    }
}

int pf_tokenizer_load(const pf_gguf *g, pf_tokenizer **out, pf_error *err) {
    if (!g || !out) return pf_error_set(err, PF_ERR_ARG, "pf_tokenizer_load: NULL argument");
    *out = NULL;
    const char *model = NULL;
    if (pf_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL) != PF_OK)
        return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no tokenizer (tokenizer.ggml.model missing)", pf_gguf_path(g));
    const bool wpm = !strcmp(model, "bert"); /* WordPiece: wordpiece.c */
    if (strcmp(model, "llama") != 0 && !wpm)
        return pf_error_set(err, PF_ERR_UNSUPPORTED,
                            "%s: tokenizer.ggml.model \"%s\" is not supported (only \"llama\", SentencePiece BPE, "
                            "and \"bert\", WordPiece)", pf_gguf_path(g), model);
    pf_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return pf_error_set(err, PF_ERR_NOMEM, "tokenizer: out of memory");
    int rc = load_vocab(tok, g, err);
    if (!rc) rc = pft_setup_specials(tok, g, err);
    if (!rc && wpm) rc = pft_wpm_setup(tok, g, err);
    if (rc) {
        pf_tokenizer_free(tok);
        return rc;
    }
    build_pieces(tok);
    tok->split_words = words_separable(tok);
    *out = tok;
    return PF_OK;
}

void pf_tokenizer_free(pf_tokenizer *tok) {
    if (!tok) return;
    free(tok->text);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->score);
    free(tok->attr);
    free(tok->piece);
    free(tok->piece_off);
    free(tok->piece_len);
    free(tok->slots);
    free(tok->specials);
    free(tok);
}

int32_t pf_tokenizer_n_vocab(const pf_tokenizer *tok) { return tok->n_vocab; }
int32_t pf_token_bos(const pf_tokenizer *tok) { return tok->bos; }
int32_t pf_token_eos(const pf_tokenizer *tok) { return tok->eos; }
int32_t pf_token_eot(const pf_tokenizer *tok) { return tok->eot; }
bool pf_tokenizer_add_bos(const pf_tokenizer *tok) { return tok->add_bos; }

bool pf_token_is_eog(const pf_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && (tok->attr[id] & PFT_EOG);
}

bool pf_token_is_control(const pf_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && (tok->attr[id] & PFT_HIDDEN_MASK);
}

const char *pf_token_text(const pf_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = tok->text_len[id];
    return tok_text(tok, id);
}

int32_t pf_token_lookup(const pf_tokenizer *tok, const char *text, size_t len) {
    return text ? pft_lookup(tok, text, len) : -1;
}
