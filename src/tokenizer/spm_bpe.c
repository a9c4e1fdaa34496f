/* SentencePiece BPE over one text fragment, as llama.cpp's llm_tokenizer_spm_session and
 * sentencepiece's bpe_model.cc do it: characters are symbols in a linked list; every adjacent
 * pair whose concatenation is a vocabulary entry goes into a max-heap ordered by (score desc,
 * left position asc); the best pair is merged and its new neighbours pushed. Stale heap entries
 * (a side already merged away) are skipped when popped. O(n log n) in the fragment length. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;    /* bytes [off, off+n) of the escaped text; n == 0 once merged away */
} sym;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the pair when pushed: detects a side that changed since */
} bigram;

typedef struct session {
    const pf_tokenizer *tok;
    const char *text;
    sym *sym;
    bigram *heap;
    size_t n_heap, heap_cap;
    pft_scratch *sc;
} session;

/* a ranks above b: higher score, then the leftmost pair (sentencepiece's comparator). */
static inline bool better(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(session *s, bigram b) {
    if (s->n_heap == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        bigram *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return PF_ERR_NOMEM;
        s->heap = h;
        s->heap_cap = cap;
        s->sc->heap = h; /* the scratch keeps the grown buffer for the next fragment */
        s->sc->heap_cap = cap;
    }
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&b, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
    return PF_OK;
}

static bigram heap_pop(session *s) {
    bigram top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&s->heap[c + 1], &s->heap[c])) c++;
        if (!better(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int try_add(session *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return PF_OK;
    uint32_t n = s->sym[left].n + s->sym[right].n;
    int32_t id = pft_lookup(s->tok, s->text + s->sym[left].off, n);
    if (id < 0) return PF_OK;
    bigram b = {s->tok->score[id], left, right, n};
    return heap_push(s, b);
}

/* Emits one final symbol. Every merged symbol's text is a vocabulary entry (pairs are only
 * pushed when they are), so llama.cpp's rev_merge resegmentation never triggers here: a symbol
 * is either a known token or a single unknown character that falls back to its bytes. */
static void emit_symbol(const pf_tokenizer *tok, const char *t, uint32_t n, pft_out *out) {
    int32_t id = pft_lookup(tok, t, n);
    if (id >= 0) {
        pft_emit(out, id);
        return;
    }
    for (uint32_t j = 0; j < n; j++) {
        int32_t b = tok->byte_id[(unsigned char)t[j]];
        if (b < 0) b = tok->unk; /* a vocabulary without that byte token */
        if (b >= 0) pft_emit(out, b);
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (*cap >= need) return PF_OK;
    void *q = realloc(*p, need * elem);
    if (!q) return PF_ERR_NOMEM;
    *p = q;
    *cap = need;
    return PF_OK;
}

static const char SPACE[3] = {(char)0xE2, (char)0x96, (char)0x81}; /* U+2581 */

/* Escapes into sc->buf: optional leading "▁", and every ' ' as "▁" (U+2581). */
static size_t escape(const char *text, size_t len, bool space_prefix, char *dst) {
    size_t m = 0;
    if (space_prefix) { memcpy(dst, SPACE, 3); m = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(dst + m, SPACE, 3); m += 3; }
        else dst[m++] = text[i];
    }
    return m;
}

/* BPE of one segment (bytes [0, m) of text), emitting its tokens. */
static int bpe_segment(const pf_tokenizer *tok, const char *text, size_t m, pft_scratch *sc, pft_out *out) {
    if (grow(&sc->sym, &sc->sym_cap, m, sizeof(sym))) return PF_ERR_NOMEM;
    session s = {tok, text, sc->sym, sc->heap, 0, sc->heap_cap, sc};
    int32_t n_sym = 0;
    for (size_t off = 0; off < m; n_sym++) {
        uint32_t l = (uint32_t)pft_utf8_len((const unsigned char *)text + off, m - off);
        s.sym[n_sym] = (sym){n_sym - 1, off + l == m ? -1 : n_sym + 1, (uint32_t)off, l};
        off += l;
    }
    int rc = PF_OK;
    for (int32_t i = 1; i < n_sym && !rc; i++) rc = try_add(&s, i - 1, i);
    while (s.n_heap && !rc) {
        bigram b = heap_pop(&s);
        sym *l = &s.sym[b.left], *r = &s.sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s.sym[r->next].prev = b.left;
        rc = try_add(&s, l->prev, b.left);
        if (!rc) rc = try_add(&s, b.left, l->next);
    }
    if (rc) return rc;
    for (int32_t i = 0; i != -1; i = s.sym[i].next) emit_symbol(tok, text + s.sym[i].off, s.sym[i].n, out);
    return PF_OK;
}

/* Where the next segment starts: at a "▁" that follows something other than "▁". No vocabulary
 * entry spans such a point (tok->split_words checks that at load), so no merge can cross it
 * and BPE on each segment gives exactly the ids of BPE on the whole fragment, with small,
 * cache-resident heaps. */
static size_t segment_end(const char *t, size_t a, size_t m) {
    for (size_t p = a + 1; p + 3 <= m; p++) {
        const char *q = memchr(t + p, SPACE[0], m - p);
        if (!q) break;
        p = (size_t)(q - t);
        if (p + 3 <= m && !memcmp(t + p, SPACE, 3) && (p < 3 || memcmp(t + p - 3, SPACE, 3))) return p;
    }
    return m;
}

int pft_spm_fragment(const pf_tokenizer *tok, const char *text, size_t len, bool space_prefix, pft_scratch *sc,
                     pft_out *out, pf_error *err) {
    if (len > (size_t)(INT32_MAX / 3 - 3))
        return pf_error_set(err, PF_ERR_ARG, "tokenize: text fragment of %zu bytes is too long", len);
    if (grow((void **)&sc->buf, &sc->buf_cap, 3 * len + 3, 1))
        return pf_error_set(err, PF_ERR_NOMEM, "tokenize: out of memory");
    size_t m = escape(text, len, space_prefix, sc->buf);
    for (size_t a = 0, b; a < m; a = b) {
        b = tok->split_words ? segment_end(sc->buf, a, m) : m;
        if (bpe_segment(tok, sc->buf + a, b - a, sc, out))
            return pf_error_set(err, PF_ERR_NOMEM, "tokenize: out of memory");
    }
    return PF_OK;
}

void pft_scratch_free(pft_scratch *s) {
    free(s->buf);
    free(s->sym);
    free(s->heap);
    memset(s, 0, sizeof *s);
}
