/* WordPiece tokenization (tokenizer.ggml.model = "bert"), as llama.cpp's WPM session and
 * Hugging Face's BertTokenizer do it (spec 6.2 / 6.4):
 *   1. normalize each code point: canonical decomposition (NFD) and removal of nonspacing
 *      marks (Mn) when strip_accents, then lower-casing when lowercase (both per
 *      tokenizer.ggml.normalizer.*, default true; strip_accents follows lowercase);
 *      NUL, U+FFFD, invalid UTF-8 and control/format characters (Cc, Cf, Cs, Co) are dropped;
 *   2. split into words on whitespace; punctuation (P*), ASCII symbols and CJK ideographs are
 *      words of one character;
 *   3. each word, with the phantom space "▁" in front (the GGUF stores "##xyz" as "xyz" and
 *      every other vocabulary word as "▁" + word), is covered greedily by the longest
 *      vocabulary entry at each position; if some position has no entry, the whole word
 *      becomes [UNK].
 * Special ids: [CLS] (bos) and [SEP] (eos) wrap the sequence when add_special. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tokenizer_internal.h"

/* ---- character classes -------------------------------------------------------------------- */

typedef enum wpm_class { WC_SKIP, WC_SPACE, WC_SINGLE, WC_WORD } wpm_class;

/* CJK ideograph blocks of BERT's _is_chinese_char (with its 0x2B920 typo, as llama.cpp). */
static bool is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static wpm_class classify(int32_t c, bool strip_accents) {
    if (c == 0 || c == 0xFFFD) return WC_SKIP;
    if (c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85) return WC_SPACE;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return WC_SPACE;
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
        return WC_SKIP;
    case UTF8PROC_CATEGORY_MN:
        return strip_accents ? WC_SKIP : WC_WORD;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
        return WC_SINGLE;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO:
        return c < 0x7F ? WC_SINGLE : WC_WORD;
    default:
        return is_cjk(c) ? WC_SINGLE : WC_WORD;
    }
}

/* ---- the word buffer ("▁" + word, in the scratch buffer) ---------------------------------- */

#define PHANTOM "\xE2\x96\x81"
#define PHANTOM_LEN 3

typedef struct wpm_word {
    pft_scratch *sc;
    size_t n; /* bytes used, PHANTOM_LEN when the word is empty */
} wpm_word;

static int word_put(wpm_word *w, int32_t c) {
    if (w->n + 4 > w->sc->buf_cap) {
        size_t cap = w->sc->buf_cap ? 2 * w->sc->buf_cap : 256;
        char *p = realloc(w->sc->buf, cap);
        if (!p) return PF_ERR_NOMEM;
        w->sc->buf = p;
        w->sc->buf_cap = cap;
    }
    w->n += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)w->sc->buf + w->n);
    return PF_OK;
}

/* Greedy longest-match of w[0..n) (phantom space included); the whole word is [UNK] when some
 * position has no vocabulary entry. Empties the word. */
static void word_flush(const pf_tokenizer *tok, wpm_word *w, pft_out *out) {
    const char *s = w->sc->buf;
    const size_t n = w->n;
    if (n <= PHANTOM_LEN) return;
    w->n = PHANTOM_LEN;
    const int64_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = n - i < tok->wpm_max_len ? n : i + tok->wpm_max_len;
        int32_t id = -1;
        for (; j > i && (id = pft_lookup(tok, s + i, j - i)) < 0; j--) {}
        if (id < 0) {
            out->n = start; /* discard the word's pieces */
            break;
        }
        pft_emit(out, id);
        i = j;
    }
    if (out->n == start) pft_emit(out, tok->unk);
}

/* Next code point of text[*i..len): invalid UTF-8 bytes come back as U+FFFD, one per byte. */
static int32_t next_cp(const unsigned char *s, size_t len, size_t *i) {
    int l = pft_utf8_len(s + *i, len - *i);
    int32_t c = s[*i];
    if (l == 1 && c >= 0x80) c = 0xFFFD;
    else if (l == 2) c = (c & 0x1F) << 6 | (s[*i + 1] & 0x3F);
    else if (l == 3) c = (c & 0x0F) << 12 | (s[*i + 1] & 0x3F) << 6 | (s[*i + 2] & 0x3F);
    else if (l == 4) c = (c & 0x07) << 18 | (s[*i + 1] & 0x3F) << 12 | (s[*i + 2] & 0x3F) << 6 | (s[*i + 3] & 0x3F);
    *i += (size_t)l;
    return c;
}

/* One normalized code point into the word stream. */
static int feed(const pf_tokenizer *tok, wpm_word *w, int32_t c, pft_out *out) {
    switch (classify(c, tok->wpm_strip_accents)) {
    case WC_SKIP: return PF_OK;
    case WC_SPACE: word_flush(tok, w, out); return PF_OK;
    case WC_SINGLE: {
        word_flush(tok, w, out);
        int rc = word_put(w, tok->wpm_lowercase ? utf8proc_tolower(c) : c);
        word_flush(tok, w, out);
        return rc;
    }
    default: return word_put(w, tok->wpm_lowercase ? utf8proc_tolower(c) : c);
    }
}

int pft_wpm_fragment(const pf_tokenizer *tok, const char *text, size_t len, pft_scratch *sc, pft_out *out,
                     pf_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    wpm_word w = {sc, 0};
    int rc = word_put(&w, 0x2581); /* the phantom space, kept in front of every word */
    for (size_t i = 0; i < len && !rc;) {
        const int32_t c = next_cp(s, len, &i);
        utf8proc_int32_t dec[16];
        utf8proc_ssize_t nd = 0;
        int last = 0;
        if (tok->wpm_strip_accents && c >= 0x80) nd = utf8proc_decompose_char(c, dec, 16, UTF8PROC_DECOMPOSE, &last);
        if (nd <= 0 || nd > 16) dec[0] = c, nd = 1;
        for (utf8proc_ssize_t k = 0; k < nd && !rc; k++) rc = feed(tok, &w, dec[k], out);
    }
    if (!rc) word_flush(tok, &w, out);
    return rc ? pf_error_set(err, rc, "tokenize: out of memory") : PF_OK;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* First valid id among the keys, then the vocabulary text `name`, then `dflt`; -1 if none. */
static int32_t find_id(const pf_tokenizer *tok, const pf_gguf *g, const char *k1, const char *k2, const char *name,
                       int32_t dflt) {
    const char *keys[2] = {k1, k2};
    for (int i = 0; i < 2; i++) {
        int64_t v;
        if (keys[i] && pf_gguf_get_int(g, keys[i], &v, NULL) == PF_OK && v >= 0 && v < tok->n_vocab) return (int32_t)v;
    }
    int32_t id = pft_lookup(tok, name, strlen(name));
    if (id >= 0) return id;
    return dflt < tok->n_vocab ? dflt : -1;
}

static bool flag(const pf_gguf *g, const char *key, bool dflt) {
    bool b;
    return pf_gguf_get_bool(g, key, &b, NULL) == PF_OK ? b : dflt;
}

int pft_wpm_setup(pf_tokenizer *tok, const pf_gguf *g, pf_error *err) {
    tok->wpm = true;
    tok->bos = find_id(tok, g, "tokenizer.ggml.cls_token_id", "tokenizer.ggml.bos_token_id", "[CLS]", 101);
    tok->eos = find_id(tok, g, "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.eos_token_id", "[SEP]", 102);
    tok->unk = find_id(tok, g, "tokenizer.ggml.unknown_token_id", NULL, "[UNK]", 100);
    tok->eot = -1;
    if (tok->unk < 0)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: WordPiece vocabulary without an unknown token "
                            "(tokenizer.ggml.unknown_token_id / [UNK])", pf_gguf_path(g));
    tok->add_bos = flag(g, "tokenizer.ggml.add_bos_token", true) && tok->bos >= 0;
    tok->add_eos = flag(g, "tokenizer.ggml.add_sep_token", flag(g, "tokenizer.ggml.add_eos_token", true)) &&
                   tok->eos >= 0;
    tok->add_space_prefix = true; /* decoding drops the phantom space of the first piece */
    tok->wpm_lowercase = flag(g, "tokenizer.ggml.normalizer.lowercase", true);
    tok->wpm_strip_accents = flag(g, "tokenizer.ggml.normalizer.strip_accents", tok->wpm_lowercase);
    tok->wpm_max_len = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        if (tok->text_len[i] > tok->wpm_max_len) tok->wpm_max_len = tok->text_len[i];
        tok->attr[i] &= (uint16_t)~PFT_EOG; /* SentencePiece end-of-generation names do not apply */
    }
    if (tok->eos >= 0) tok->attr[tok->eos] |= PFT_EOG;
    return PF_OK;
}

/* ---- public helpers ----------------------------------------------------------------------- */

const char *pf_tokenizer_model(const pf_tokenizer *tok) { return tok && tok->wpm ? "bert" : "llama"; }

int64_t pf_tokenize_truncate(const pf_tokenizer *tok, const char *text, size_t len, bool add_special,
                             int64_t max_tokens, int32_t *ids, bool *truncated, pf_error *err) {
    if (truncated) *truncated = false;
    if (!tok || !ids || max_tokens < 1 + (add_special && tok->add_eos))
        return pf_error_set(err, PF_ERR_ARG, "pf_tokenize_truncate: invalid argument (max_tokens %lld)",
                            (long long)max_tokens);
    int64_t n = pf_tokenize(tok, text, len, add_special, false, ids, max_tokens, err);
    if (n <= max_tokens) return n;
    if (add_special && tok->add_eos) ids[max_tokens - 1] = tok->eos; /* keep the closing [SEP] */
    if (truncated) *truncated = true;
    return max_tokens;
}
