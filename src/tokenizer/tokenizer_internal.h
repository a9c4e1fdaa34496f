/* The tokenizer's loaded state, shared by loading (tokenizer.c, specials.c), encoding
 * (encode.c, spm_bpe.c) and decoding (detok.c). Not part of the public API. */
#ifndef PF_TOKENIZER_INTERNAL_H
#define PF_TOKENIZER_INTERNAL_H

#include <stdint.h>

#include "phiforge.h"

/* Token attributes, llama.cpp's llama_token_attr bits (a file's token_type maps to one). */
enum {
    PFT_UNDEFINED = 0,
    PFT_UNKNOWN = 1 << 0,
    PFT_UNUSED = 1 << 1,
    PFT_NORMAL = 1 << 2,
    PFT_CONTROL = 1 << 3,
    PFT_USER_DEFINED = 1 << 4,
    PFT_BYTE = 1 << 5,
    PFT_LSTRIP = 1 << 7,
    PFT_RSTRIP = 1 << 8,
    PFT_EOG = 1 << 15, /* ours, not llama.cpp's: end of generation */
};

/* Tokens whose text the partition step splits out of raw text. */
#define PFT_SPECIAL_MASK (PFT_CONTROL | PFT_USER_DEFINED | PFT_UNKNOWN)
/* Tokens hidden when decoding without render_special. */
#define PFT_HIDDEN_MASK (PFT_CONTROL | PFT_UNKNOWN)

struct pf_tokenizer {
    int32_t n_vocab;
    /* Vocabulary text of token i: text + text_off[i], text_len[i] bytes, NUL-terminated. */
    char *text;
    uint32_t *text_off, *text_len;
    float *score;
    uint16_t *attr;
    /* Decoded piece of token i (what token_to_piece returns with render_special). */
    char *piece;
    uint32_t *piece_off, *piece_len;
    uint32_t max_piece;
    /* text -> id: open addressing, -1 = empty slot; a later duplicate text wins (llama.cpp). */
    int32_t *slots;
    uint32_t slot_mask;
    int32_t byte_id[256]; /* <0xXX> token of each byte, -1 when absent */
    /* Partition candidates: ids with PFT_SPECIAL_MASK and non-empty text, longest first. */
    int32_t *specials;
    int32_t n_specials;
    int32_t bos, eos, eot, unk;
    bool add_bos, add_eos, add_space_prefix;
    /* No entry has a "▁" after something other than "▁" (true of SentencePiece vocabularies
     * trained with split_by_whitespace), so BPE may run word by word. */
    bool split_words;
    /* WordPiece (tokenizer.ggml.model "bert", wordpiece.c): normalizer flags and the longest
     * vocabulary text in bytes (bounds the greedy match). */
    bool wpm, wpm_lowercase, wpm_strip_accents;
    uint32_t wpm_max_len;
};

/* Length of the UTF-8 character starting at s[0] (n >= 1 bytes available): 1..4 for a
 * well-formed sequence, 1 for any byte that does not start one (so hostile input is split into
 * single bytes, which then fall back to byte tokens). */
int pft_utf8_len(const unsigned char *s, size_t n);

/* Hash lookup; -1 when absent. */
int32_t pft_lookup(const pf_tokenizer *tok, const char *s, size_t n);

/* Reads the special ids and flags, sets end-of-generation and strip attributes, and fills
 * tok->specials; needs the vocabulary and hash loaded. */
int pft_setup_specials(pf_tokenizer *tok, const pf_gguf *g, pf_error *err);

/* Scratch reused across the fragments of one pf_tokenize call. */
typedef struct pft_scratch {
    char *buf;       /* escaped fragment text */
    size_t buf_cap;
    void *sym, *heap;
    size_t sym_cap, heap_cap;
} pft_scratch;
void pft_scratch_free(pft_scratch *s);

/* Output sink: ids[0..cap) receives the first ids, n counts all of them. */
typedef struct pft_out {
    int32_t *ids;
    int64_t cap, n;
} pft_out;
static inline void pft_emit(pft_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* SentencePiece BPE of one fragment: optional leading space, " " -> U+2581, merge, emit. */
int pft_spm_fragment(const pf_tokenizer *tok, const char *text, size_t len, bool space_prefix, pft_scratch *sc,
                     pft_out *out, pf_error *err);

/* WordPiece: sets the [CLS]/[SEP]/[UNK] ids, add flags and normalizer options (after
 * pft_setup_specials, whose SentencePiece defaults it overrides). */
int pft_wpm_setup(pf_tokenizer *tok, const pf_gguf *g, pf_error *err);
/* WordPiece of one text fragment: normalize, split into words, greedy longest match, emit. */
int pft_wpm_fragment(const pf_tokenizer *tok, const char *text, size_t len, pft_scratch *sc, pft_out *out,
                     pf_error *err);

/* A piece of the input after partitioning: raw text [off, off+len) or one special id. */
typedef struct pft_frag {
    int64_t off, len;
    int32_t id; /* -1 for text */
} pft_frag;

/* Splits text[0..len) around special-token occurrences (llama.cpp tokenizer_st_partition).
 * *frags is malloc'd (caller frees); returns PF_OK or PF_ERR_NOMEM. */
int pft_partition(const pf_tokenizer *tok, const char *text, size_t len, bool parse_special, pft_frag **frags,
                  int64_t *n_frags, pf_error *err);

#endif
