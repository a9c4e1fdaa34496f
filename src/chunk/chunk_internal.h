/* Chunking internals: a region's text is first cut into atoms (sentences; words or character
 * runs only when a sentence alone exceeds the target), each with its token count and the
 * strength of the boundary before it; chunk.c then packs atoms into chunks. */
#ifndef PF_CHUNK_INTERNAL_H
#define PF_CHUNK_INTERNAL_H

#include "phiforge.h"

/* Boundary strengths, strongest first. */
enum { CK_PARA = 0, CK_LINE = 1, CK_SENT = 2, CK_WORD = 3, CK_CHAR = 4 };

typedef struct ck_atom {
    int64_t a, b;    /* text[a..b): no leading/trailing whitespace, never empty */
    int32_t tok;     /* tokens of text[a..b) counted alone                      */
    int32_t sec;     /* section the atom lies in (-1: none)                     */
    int8_t before;   /* strength of the boundary before it (CK_*)               */
} ck_atom;

typedef struct ck_ctx {
    const char *text;
    const pf_tokenizer *tok;
    pf_error *err;
    ck_atom *v;      /* atoms of the region being chunked */
    int64_t n, cap;
} ck_ctx;

/* Tokens of text[a..b), or a negative pf_status. */
int64_t ck_count(ck_ctx *c, int64_t a, int64_t b);
/* Appends the atoms of text[a..b) (one section) to c->v; the first gets strength CK_PARA.
 * Every atom has at most `target` tokens. */
int ck_atomize(ck_ctx *c, int64_t a, int64_t b, int32_t sec, int32_t target);

static inline bool ck_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

#endif
