/* Token-aware chunking: regions (runs of sections between hard breaks / heading changes), atoms
 * (chunk_split.c), then greedy packing with overlap.
 *
 * Why the defaults are 256 tokens with 64 of overlap:
 *  - Phi-3-mini reads 4,096 tokens. After ~200 tokens of instructions and a ~500-token answer
 *    about 3k remain for retrieved text: 10 chunks of 256 tokens fit, with room for the
 *    heading paths and citations (docs/rag-notes.md §6).
 *  - Chroma's chunking study (Smith & Troynikov 2024) found recursive splitting at 200-400
 *    tokens among the best strategies, 250 tokens giving the highest recall; LlamaIndex's
 *    1,024 and LangChain's 4,000-character defaults dilute a passage with unrelated text.
 *  - MiniLM-class embedders were trained on 128-256 word pieces and truncate past 256, bge on
 *    512: at 256 a chunk is embedded whole by every embedder the project supports (and when an
 *    embedder is configured its own tokenizer counts, so its limit is honoured exactly).
 *  - Overlap 64 = 25%: the best configuration Azure AI Search reported (512 tokens, 25%), and
 *    Chroma found overlap raises recall; 25% costs ~1/3 more chunks, not 2x as 50% would. It is
 *    taken in whole sentences where they fit, so chunks rarely start mid-sentence. */
#include <stdlib.h>
#include <string.h>

#include "chunk/chunk_internal.h"

pf_chunk_params pf_chunk_default_params(const pf_tokenizer *tok) {
    return (pf_chunk_params){PF_CHUNK_DEFAULT_TOKENS, PF_CHUNK_DEFAULT_OVERLAP, 0, tok};
}

char *pf_chunk_embed_text(const char *heading, const char *text, size_t len) {
    size_t hl = heading && *heading ? strlen(heading) : 0;
    char *s = malloc(hl + (hl ? 2 : 0) + len + 1);
    if (!s) return NULL;
    char *p = s;
    if (hl) {
        memcpy(p, heading, hl);
        memcpy(p + hl, "\n\n", 2);
        p += hl + 2;
    }
    memcpy(p, text, len);
    p[len] = 0;
    return s;
}

typedef struct chunk_vec {
    pf_chunk *v;
    int64_t n, cap;
} chunk_vec;

static int emit(chunk_vec *o, pf_chunk ch, pf_error *err) {
    if (o->n == o->cap) {
        int64_t cap = o->cap ? 2 * o->cap : 16;
        pf_chunk *v = realloc(o->v, (size_t)cap * sizeof *v);
        if (!v) return pf_error_set(err, PF_ERR_NOMEM, "chunk: out of memory (%lld chunks)", (long long)cap);
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = ch;
    return PF_OK;
}

static bool same_heading(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* The region is one section holding nothing but the last part of its heading path (a heading
 * line followed directly by a sub-heading): its words are already in every later heading. */
static bool heading_only(const char *text, const pf_xsection *s) {
    if (!s->heading) return false;
    const char *last = s->heading, *p;
    while ((p = strstr(last, " \xE2\x80\xBA ")) != NULL) last = p + 5;
    int64_t a = s->start, b = s->end;
    while (a < b && ck_space(text[a])) a++;
    while (b > a && ck_space(text[b - 1])) b--;
    return (int64_t)strlen(last) == b - a && !memcmp(text + a, last, (size_t)(b - a));
}

/* Start of the longest tail of atom e made of whole words with at most O tokens, leaving room
 * for the next atom; -1 when none (a single word over O, or no space in the atom). */
static int64_t word_tail(ck_ctx *c, int64_t e, int64_t after, int64_t lo, int32_t O, int32_t T, int64_t *tok) {
    const ck_atom *v = c->v;
    int64_t best = -1;
    for (int64_t q = v[e].b - 1; q > v[e].a && q > lo; q--) {
        if (ck_space(c->text[q]) || !ck_space(c->text[q - 1])) continue;
        int64_t n = ck_count(c, q, v[e].b);
        if (n < 0 || n > O || n + after > T) break;
        best = q, *tok = n;
    }
    return best;
}

/* Packs the atoms in c->v into chunks of at most T tokens sharing at most O tokens. A chunk
 * starts at byte a0 inside atom i: the atom's start, or a word inside it when the overlap had to
 * take part of a sentence. */
static int pack(ck_ctx *c, int32_t T, int32_t O, const pf_xsection *secs, const char *heading, chunk_vec *out) {
    int64_t n = c->n;
    const ck_atom *v = c->v;
    int64_t *pre = malloc((size_t)(n + 1) * sizeof *pre); /* pre[k]: tokens of atoms [0, k) */
    if (!pre) return pf_error_set(c->err, PF_ERR_NOMEM, "chunk: out of memory");
    pre[0] = 0;
    for (int64_t k = 0; k < n; k++) pre[k + 1] = pre[k] + v[k].tok;
    int rc = PF_OK;
    int64_t i = 0, prev_e = -1, a0 = v[0].a, t0 = v[0].tok; /* t0: tokens of text[a0, v[i].b) */
#define SUM(j) (t0 + pre[(j) + 1] - pre[i + 1]) /* estimated tokens of text[a0, v[j].b) */
    while (i < n && !rc) {
        int64_t J = i; /* greedy: the last atom that still fits by the per-atom estimate */
        while (J + 1 < n && SUM(J + 1) <= T) J++;
        /* End at the strongest boundary among the ends that leave the chunk at least half full. */
        int64_t e = J;
        if (J + 1 < n) {
            int bs = v[J + 1].before;
            for (int64_t k = J - 1; k >= i && k > prev_e && 2 * SUM(k) >= T; k--)
                if (v[k + 1].before < bs) bs = v[k + 1].before, e = k;
        }
        /* Exact count of the joined text (tokens merge across atom borders): shrink if over. */
        int64_t nt = e == i && a0 == v[i].a ? v[i].tok : ck_count(c, a0, v[e].b); /* one whole atom: known */
        while (nt > T) {
            if (e > i && e - 1 > prev_e) e--;
            else if (i < e) i++, a0 = v[i].a, t0 = v[i].tok; /* give up overlap before new text */
            else break;
            nt = ck_count(c, a0, v[e].b);
        }
        if (nt < 0) { rc = (int)nt; break; }
        int32_t sec = v[i].sec;
        rc = emit(out, (pf_chunk){a0, v[e].b, sec >= 0 ? secs[sec].page : 0, (int32_t)nt, sec, heading}, c->err);
        if (rc || e == n - 1) break;
        prev_e = e;
        /* Next chunk starts with whole trailing sentences of at most O tokens, leaving room for
         * the atom after e (so every chunk brings new text)... */
        int64_t k = e + 1;
        for (int64_t m = e; m > i && pre[e + 1] - pre[m] <= O && pre[e + 2] - pre[m] <= T; m--) k = m;
        while (k <= e && !rc) {
            int64_t ov = ck_count(c, v[k].a, v[e].b);
            if (ov < 0) rc = (int)ov;
            else if (ov <= O) break;
            else k++;
        }
        /* ...or, when the last sentence alone is longer than O, with its last words. */
        int64_t q = -1, tq = 0;
        if (k > e && O > 0 && !rc) q = word_tail(c, e, v[e + 1].tok, e == i ? a0 : -1, O, T, &tq);
        if (q >= 0) i = e, a0 = q, t0 = tq;
        else i = k, a0 = v[k].a, t0 = v[k].tok;
    }
#undef SUM
    free(pre);
    return rc;
}

static int chunk_region(ck_ctx *c, const pf_xsection *secs, int64_t s0, int64_t s1, int64_t a, int64_t b,
                        const char *heading, const pf_chunk_params *p, chunk_vec *out) {
    int32_t T = p->target_tokens;
    if (p->max_input_tokens > 0) {
        int64_t room = p->max_input_tokens;
        if (heading && *heading) {
            char *pre = pf_chunk_embed_text(heading, "", 0);
            if (!pre) return pf_error_set(c->err, PF_ERR_NOMEM, "chunk: out of memory");
            int64_t hp = pf_tokenize(c->tok, pre, strlen(pre), false, false, NULL, 0, c->err);
            free(pre);
            if (hp < 0) return (int)hp;
            room -= hp;
        }
        /* A heading path too long to leave room still gets chunks of a useful size (a quarter
         * of the limit); the embedder then truncates the tail of those few. */
        int64_t floor_t = p->max_input_tokens / 4 > 8 ? p->max_input_tokens / 4 : 8;
        if (room < floor_t) room = floor_t;
        if (room < T) T = (int32_t)room;
    }
    int32_t O = p->overlap_tokens < T / 2 ? p->overlap_tokens : T / 2;
    c->n = 0;
    int rc = PF_OK;
    if (s0 < 0) rc = ck_atomize(c, a, b, -1, T);
    for (int64_t k = s0; k >= 0 && k < s1 && !rc; k++) rc = ck_atomize(c, secs[k].start, secs[k].end, (int32_t)k, T);
    if (!rc && c->n) rc = pack(c, T, O, secs, heading, out);
    return rc;
}

int pf_chunk_text(const char *text, int64_t len, const pf_xsection *secs, int64_t n_secs, const pf_chunk_params *p,
                  pf_chunk **out, int64_t *n_out, pf_error *err) {
    if (!out || !n_out || !p || !p->tok || (!text && len) || len < 0 || n_secs < 0 || (n_secs && !secs))
        return pf_error_set(err, PF_ERR_ARG, "pf_chunk_text: invalid argument");
    *out = NULL;
    *n_out = 0;
    if (p->target_tokens < 8 || p->overlap_tokens < 0 || p->max_input_tokens < 0)
        return pf_error_set(err, PF_ERR_ARG, "chunk: target_tokens must be >= 8 and overlap/max_input >= 0 (got %d, %d, %d)",
                            p->target_tokens, p->overlap_tokens, p->max_input_tokens);
    for (int64_t k = 0; k < n_secs; k++)
        if (secs[k].start < (k ? secs[k - 1].end : 0) || secs[k].end < secs[k].start || secs[k].end > len)
            return pf_error_set(err, PF_ERR_ARG, "chunk: section %lld [%lld, %lld) is out of order or outside the text (%lld bytes)",
                                (long long)k, (long long)secs[k].start, (long long)secs[k].end, (long long)len);
    ck_ctx c = {text, p->tok, err, NULL, 0, 0};
    chunk_vec o = {0};
    int rc = PF_OK;
    if (n_secs == 0) {
        rc = chunk_region(&c, NULL, -1, -1, 0, len, NULL, p, &o);
    } else {
        /* Two passes: the first only tells whether every region is a bare heading (then keep them). */
        int64_t n_regions = 0, n_bare = 0;
        for (int pass = 0; pass < 2 && !rc; pass++) {
            bool keep_bare = pass == 1 && n_bare == n_regions;
            for (int64_t s0 = 0, s1; s0 < n_secs && !rc; s0 = s1) {
                for (s1 = s0 + 1; s1 < n_secs && !secs[s1].hard_break && same_heading(secs[s1].heading, secs[s0].heading);)
                    s1++;
                bool bare = s1 == s0 + 1 && heading_only(text, &secs[s0]);
                if (pass == 0) {
                    n_regions++, n_bare += bare;
                } else if (!bare || keep_bare) {
                    rc = chunk_region(&c, secs, s0, s1, secs[s0].start, secs[s1 - 1].end, secs[s0].heading, p, &o);
                }
            }
        }
    }
    free(c.v);
    if (rc) {
        free(o.v);
        return rc;
    }
    *out = o.v;
    *n_out = o.n;
    return PF_OK;
}
