/* Special tokens: ids from the metadata, end-of-generation set, attribute overrides and the
 * ordered candidates of the partition step. The rules mirror llama.cpp's llama_vocab::load
 * (end-of-generation names promoted to CONTROL, candidates longest first) plus the Phi-3 RSTRIP
 * rule of Hugging Face. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static const char *tok_text(const pf_tokenizer *tok, int32_t id) { return tok->text + tok->text_off[id]; }

static int32_t get_id(const pf_gguf *g, const char *key, int32_t dflt, int32_t n) {
    int64_t v;
    if (pf_gguf_get_int(g, key, &v, NULL) == PF_OK && v >= 0 && v < n) return (int32_t)v;
    return dflt >= 0 && dflt < n ? dflt : -1; /* a bad id keeps the default, as llama.cpp does */
}

static bool get_flag(const pf_gguf *g, const char *key, bool dflt) {
    bool b;
    return pf_gguf_get_bool(g, key, &b, NULL) == PF_OK ? b : dflt;
}

static bool contains_ci(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == needle[i]) i++;
        if (i == n) return true;
    }
    return false;
}

static bool is_phi3(const pf_gguf *g) {
    const char *arch = NULL, *name = NULL;
    pf_gguf_get_str(g, "general.architecture", &arch, NULL);
    pf_gguf_get_str(g, "general.name", &name, NULL);
    if (arch && !strcmp(arch, "phi3")) return true;
    return name && (contains_ci(name, "phi3") || contains_ci(name, "phi-3"));
}

/* End-of-turn names in order of preference (llama.cpp accepts whichever its hash map yields
 * first; <|end|> before <|endoftext|> makes Phi-3's eot its turn terminator 32007). */
static const char *const EOT_NAMES[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<EOT>", "_<EOT>", "<end_of_utterance>"};
/* llama.cpp's end-of-generation names (those that a SentencePiece vocabulary can carry). */
static const char *const EOG_NAMES[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
                                        "</s>"};

static void mark_eog(pf_tokenizer *tok, int32_t id, bool by_name) {
    if (id < 0) return;
    /* llama.cpp overrides a non-control end token found by name to CONTROL, so "</s>"
     * (USER_DEFINED in Phi-3 files) is no longer matched in text when special parsing is off. */
    if (by_name && !(tok->attr[id] & PFT_CONTROL)) tok->attr[id] = PFT_CONTROL;
    tok->attr[id] |= PFT_EOG;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Early Phi-3 files typed the role tags USER_DEFINED; Hugging Face treats them as special, so
 * they must not be matched in text when special parsing is off. */
static void promote_role_tags(pf_tokenizer *tok) {
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const char *t = tok_text(tok, i);
        size_t l = tok->text_len[i];
        if ((tok->attr[i] & PFT_USER_DEFINED) && l > 4 && !memcmp(t, "<|", 2) && !memcmp(t + l - 2, "|>", 2))
            tok->attr[i] = PFT_CONTROL;
    }
}

/* Partition candidates, longest text first (ties by id, so the order is deterministic), by
 * sorting keys (UINT32_MAX - length) << 32 | id. */
static int collect_specials(pf_tokenizer *tok) {
    int32_t cnt = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) cnt += (tok->attr[i] & PFT_SPECIAL_MASK) && tok->text_len[i] > 0;
    uint64_t *keys = malloc(sizeof(uint64_t) * (size_t)(cnt ? cnt : 1));
    tok->specials = malloc(sizeof(int32_t) * (size_t)(cnt ? cnt : 1));
    if (!keys || !tok->specials) {
        free(keys);
        return PF_ERR_NOMEM;
    }
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if ((tok->attr[i] & PFT_SPECIAL_MASK) && tok->text_len[i] > 0)
            keys[tok->n_specials++] = (uint64_t)(UINT32_MAX - tok->text_len[i]) << 32 | (uint32_t)i;
    qsort(keys, (size_t)cnt, sizeof(uint64_t), cmp_u64);
    for (int32_t k = 0; k < cnt; k++) tok->specials[k] = (int32_t)(keys[k] & 0xFFFFFFFFu);
    free(keys);
    return PF_OK;
}

/* Hugging Face's Phi-3 tokenizers strip whitespace right of every added token except
 * <|endoftext|>, and right of </s>: ids 2 and 32001..32010. llama.cpp does the same to every
 * special candidate (its [PADnnnnn] rows included) but keys it on general.name (spec 5.6). */
static void phi3_rstrip(pf_tokenizer *tok) {
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (int32_t k = 0; k < tok->n_specials; k++) tok->attr[tok->specials[k]] |= PFT_RSTRIP;
    for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
        int32_t id = pft_lookup(tok, keep[k], strlen(keep[k]));
        if (id >= 0) tok->attr[id] &= (uint16_t)~PFT_RSTRIP;
    }
}

int pft_setup_specials(pf_tokenizer *tok, const pf_gguf *g, pf_error *err) {
    int32_t n = tok->n_vocab;
    bool phi3 = is_phi3(g);
    tok->bos = get_id(g, "tokenizer.ggml.bos_token_id", 1, n);
    tok->eos = get_id(g, "tokenizer.ggml.eos_token_id", 2, n);
    tok->unk = get_id(g, "tokenizer.ggml.unknown_token_id", 0, n);
    tok->eot = get_id(g, "tokenizer.ggml.eot_token_id", -1, n);
    tok->add_bos = get_flag(g, "tokenizer.ggml.add_bos_token", true) && tok->bos >= 0;
    tok->add_eos = get_flag(g, "tokenizer.ggml.add_eos_token", false) && tok->eos >= 0;
    tok->add_space_prefix = get_flag(g, "tokenizer.ggml.add_space_prefix", true);

    if (phi3) promote_role_tags(tok);
    for (size_t k = 0; tok->eot < 0 && k < sizeof EOT_NAMES / sizeof *EOT_NAMES; k++)
        tok->eot = pft_lookup(tok, EOT_NAMES[k], strlen(EOT_NAMES[k]));
    for (size_t k = 0; k < sizeof EOG_NAMES / sizeof *EOG_NAMES; k++)
        mark_eog(tok, pft_lookup(tok, EOG_NAMES[k], strlen(EOG_NAMES[k])), true);
    if (phi3) mark_eog(tok, pft_lookup(tok, "<|assistant|>", 13), true); /* HF generation_config stops on it */
    mark_eog(tok, tok->eos, false);
    mark_eog(tok, tok->eot, false);

    if (collect_specials(tok)) return pf_error_set(err, PF_ERR_NOMEM, "tokenizer: out of memory");
    if (phi3) phi3_rstrip(tok);
    return PF_OK;
}

