/* Decoding: token pieces, whole-sequence detokenization (llama.cpp rules) and a streaming
 * detokenizer that only ever emits complete, well-formed UTF-8. */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* Piece of `id` as the caller asked for it (hidden control tokens -> empty). */
static const char *piece_of(const pf_tokenizer *tok, int32_t id, bool render_special, uint32_t *len) {
    *len = (tok->attr[id] & PFT_HIDDEN_MASK) && !render_special ? 0 : tok->piece_len[id];
    return tok->piece + tok->piece_off[id];
}

int64_t pf_token_to_piece(const pf_tokenizer *tok, int32_t id, bool render_special, char *buf, int64_t cap) {
    if (!tok || id < 0 || id >= tok->n_vocab) return PF_ERR_ARG;
    uint32_t n;
    const char *p = piece_of(tok, id, render_special, &n);
    if ((int64_t)n <= cap && buf) memcpy(buf, p, n);
    return n;
}

int64_t pf_detokenize(const pf_tokenizer *tok, const int32_t *ids, int64_t n, bool render_special, char *buf,
                      int64_t cap, pf_error *err) {
    if (!tok || n < 0 || (n > 0 && !ids)) return pf_error_set(err, PF_ERR_ARG, "pf_detokenize: invalid argument");
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return pf_error_set(err, PF_ERR_ARG, "pf_detokenize: token %lld: id %d out of range [0, %d)",
                                (long long)i, ids[i], tok->n_vocab);
        uint32_t l;
        const char *p = piece_of(tok, ids[i], render_special, &l);
        /* The space that encoding prefixed to the text is removed again, from the first piece
         * only; a leading BOS has no space, so text after it keeps its own (llama.cpp). */
        total += l - (i == 0 && tok->add_space_prefix && l && p[0] == ' ');
    }
    if (total > cap || !buf) return total;
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t l;
        const char *p = piece_of(tok, ids[i], render_special, &l);
        if (i == 0 && tok->add_space_prefix && l && p[0] == ' ') p++, l--;
        memcpy(buf + w, p, l);
        w += l;
    }
    return w;
}

/* ---- streaming ---------------------------------------------------------------------------- */

void pf_detok_stream_init(pf_detok_stream *s, const pf_tokenizer *tok, bool render_special, bool strip_first_space) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->render_special = render_special;
    s->strip_space = strip_first_space;
}

int64_t pf_detok_stream_max(const pf_tokenizer *tok) {
    /* Every output byte is owed to an input byte: a character copies its own bytes, a U+FFFD
     * (3 bytes) stands for at least one byte. Input = the piece + at most 3 held bytes. */
    return 3 * ((int64_t)tok->max_piece + 3);
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Appends bytes to dst (when not NULL) at *w. */
static void put(char *dst, int64_t *w, const void *p, int64_t n) {
    if (dst) memcpy(dst + *w, p, (size_t)n);
    *w += n;
}

/* One byte through the UTF-8 decoder (Unicode table 3-7 ranges). */
static void step(pf_detok_stream *s, unsigned char c, char *dst, int64_t *w) {
    if (s->n_pending) {
        if (c >= s->lo && c <= s->hi) {
            s->pending[s->n_pending++] = c;
            s->lo = 0x80, s->hi = 0xBF;
            if (s->n_pending == s->need) {
                put(dst, w, s->pending, s->n_pending);
                s->n_pending = 0;
            }
            return;
        }
        put(dst, w, REPLACEMENT, 3); /* the sequence cannot complete: one U+FFFD for it... */
        s->n_pending = 0;            /* ...and c starts afresh */
    }
    if (c < 0x80) {
        put(dst, w, &c, 1);
        return;
    }
    s->lo = 0x80, s->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) s->need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        s->need = 3;
        if (c == 0xE0) s->lo = 0xA0;
        if (c == 0xED) s->hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        s->need = 4;
        if (c == 0xF0) s->lo = 0x90;
        if (c == 0xF4) s->hi = 0x8F;
    } else {
        put(dst, w, REPLACEMENT, 3); /* C0, C1, F5..FF or a stray continuation byte */
        return;
    }
    s->pending[0] = c;
    s->n_pending = 1;
}

static int64_t run(pf_detok_stream *s, const char *p, uint32_t n, char *dst) {
    int64_t w = 0;
    for (uint32_t i = 0; i < n; i++) step(s, (unsigned char)p[i], dst, &w);
    return w;
}

int64_t pf_detok_stream_push(pf_detok_stream *s, int32_t id, char *buf, int64_t cap) {
    if (!s || !s->tok || id < 0 || id >= s->tok->n_vocab) return PF_ERR_ARG;
    uint32_t n;
    const char *p = piece_of(s->tok, id, s->render_special, &n);
    if (s->strip_space && n && p[0] == ' ') p++, n--;
    /* Dry run on a copy to size the output, so that a too-small buffer consumes nothing. */
    pf_detok_stream probe = *s;
    int64_t need = run(&probe, p, n, NULL);
    if (need > cap || (need && !buf)) return need;
    run(s, p, n, buf);
    s->strip_space = false; /* only the first token's piece is stripped, empty or not */
    return need;
}

int64_t pf_detok_stream_flush(pf_detok_stream *s, char *buf, int64_t cap) {
    if (!s) return PF_ERR_ARG;
    if (!s->n_pending) return 0;
    if (cap < 3 || !buf) return 3;
    memcpy(buf, REPLACEMENT, 3);
    s->n_pending = 0;
    return 3;
}
