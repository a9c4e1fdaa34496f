/* pf_tokenize: special-token partition, then SentencePiece BPE per text fragment
 * (llama.cpp's tokenize for LLAMA_VOCAB_TYPE_SPM). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* C-locale isspace, spelled out so that a caller's setlocale cannot change tokenization. */
static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

typedef struct frag_vec {
    pft_frag *v;
    int64_t n, cap;
} frag_vec;

static int frag_push(frag_vec *f, int64_t off, int64_t len, int32_t id) {
    if (f->n == f->cap) {
        int64_t cap = f->cap ? f->cap * 2 : 16;
        pft_frag *p = realloc(f->v, (size_t)cap * sizeof *p);
        if (!p) return PF_ERR_NOMEM;
        f->v = p;
        f->cap = cap;
    }
    f->v[f->n++] = (pft_frag){off, len, id};
    return PF_OK;
}

/* Splits every text fragment of `in` around occurrences of special token `id` into `out`. */
static int split_on(const pf_tokenizer *tok, const char *text, int32_t id, const frag_vec *in, frag_vec *out) {
    const char *st = tok->text + tok->text_off[id];
    size_t sl = tok->text_len[id];
    uint16_t a = tok->attr[id];
    out->n = 0;
    for (int64_t k = 0; k < in->n; k++) {
        pft_frag f = in->v[k];
        if (f.id >= 0) {
            if (frag_push(out, f.off, f.len, f.id)) return PF_ERR_NOMEM;
            continue;
        }
        int64_t off = f.off, end = f.off + f.len;
        const char *p;
        while (off < end && (p = memmem(text + off, (size_t)(end - off), st, sl)) != NULL) {
            int64_t m = p - text, left = m - off;
            if (a & PFT_LSTRIP)
                while (left > 0 && is_space(text[off + left - 1])) left--;
            if (left > 0 && frag_push(out, off, left, -1)) return PF_ERR_NOMEM;
            if (frag_push(out, m, (int64_t)sl, id)) return PF_ERR_NOMEM;
            off = m + (int64_t)sl;
            if (a & PFT_RSTRIP)
                while (off < end && is_space(text[off])) off++;
        }
        if (off < end && frag_push(out, off, end - off, -1)) return PF_ERR_NOMEM;
    }
    return PF_OK;
}

int pft_partition(const pf_tokenizer *tok, const char *text, size_t len, bool parse_special, pft_frag **frags,
                  int64_t *n_frags, pf_error *err) {
    frag_vec a = {0}, b = {0};
    int rc = len ? frag_push(&a, 0, (int64_t)len, -1) : PF_OK;
    /* Longest candidates first, each pass over the not-yet-split text: a longer token wins over a
     * shorter one it contains. Without parse_special only user-defined tokens are matched. */
    for (int32_t k = 0; k < tok->n_specials && !rc && a.n; k++) {
        int32_t id = tok->specials[k];
        if (!parse_special && (tok->attr[id] & PFT_HIDDEN_MASK)) continue;
        rc = split_on(tok, text, id, &a, &b);
        frag_vec t = a;
        a = b;
        b = t;
    }
    free(b.v);
    if (rc) {
        free(a.v);
        return pf_error_set(err, PF_ERR_NOMEM, "tokenize: out of memory");
    }
    *frags = a.v;
    *n_frags = a.n;
    return PF_OK;
}

int64_t pf_tokenize(const pf_tokenizer *tok, const char *text, size_t len, bool add_special, bool parse_special,
                    int32_t *ids, int64_t cap, pf_error *err) {
    if (!tok || (!text && len) || cap < 0 || (cap > 0 && !ids))
        return pf_error_set(err, PF_ERR_ARG, "pf_tokenize: invalid argument");
    pft_out out = {ids, cap, 0};
    if (add_special && tok->add_bos) pft_emit(&out, tok->bos);
    pft_frag *frags = NULL;
    int64_t n_frags = 0;
    int rc = pft_partition(tok, text, len, parse_special, &frags, &n_frags, err);
    pft_scratch sc = {0};
    bool prev_special = true; /* the start of the input counts as after a special token */
    for (int64_t k = 0; k < n_frags && !rc; k++) {
        if (frags[k].id >= 0) {
            pft_emit(&out, frags[k].id);
            prev_special = true;
            continue;
        }
        /* One space before text that starts the input or follows a special token, so that a
         * word there tokenizes as it does mid-sentence ("▁Hello"). */
        if (tok->wpm) rc = pft_wpm_fragment(tok, text + frags[k].off, (size_t)frags[k].len, &sc, &out, err);
        else rc = pft_spm_fragment(tok, text + frags[k].off, (size_t)frags[k].len,
                                   tok->add_space_prefix && prev_special, &sc, &out, err);
        prev_special = false;
    }
    pft_scratch_free(&sc);
    free(frags);
    if (rc) return rc;
    if (add_special && tok->add_eos) pft_emit(&out, tok->eos);
    return out.n;
}
