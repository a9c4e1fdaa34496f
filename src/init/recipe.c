/* Quantization recipes: which type each tensor of a Phi-3 model gets for a file type, following
 * llama.cpp's llama_tensor_get_type as it produced the published Phi-3 quants (spec 4.6). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "phiforge.h"

/* general.file_type (llama_ftype) of each plain type; the _M mixes are listed separately. */
static const struct {
    pf_type t;
    uint32_t ftype;
} k_ftypes[] = {{PF_TYPE_F32, 0},    {PF_TYPE_F16, 1},    {PF_TYPE_Q4_0, 2},  {PF_TYPE_Q4_1, 3},
                {PF_TYPE_Q8_0, 7},   {PF_TYPE_Q5_0, 8},   {PF_TYPE_Q5_1, 9},  {PF_TYPE_Q2_K, 10},
                {PF_TYPE_Q3_K, 11},  {PF_TYPE_Q4_K, 14},  {PF_TYPE_Q5_K, 16}, {PF_TYPE_Q6_K, 18},
                {PF_TYPE_IQ4_NL, 25}, {PF_TYPE_BF16, 32}};
#define N_FTYPES (sizeof k_ftypes / sizeof k_ftypes[0])
#define FTYPE_Q4_K_M 15u
#define FTYPE_Q5_K_M 17u

int pf_quant_recipe_parse(const char *name, pf_quant_recipe *out, pf_error *err) {
    if (name == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "quant recipe: NULL argument");
    memset(out, 0, sizeof *out);
    if (!strcasecmp(name, "Q4_K_M") || !strcasecmp(name, "Q5_K_M")) {
        bool q4 = !strcasecmp(name, "Q4_K_M");
        *out = (pf_quant_recipe){q4 ? PF_TYPE_Q4_K : PF_TYPE_Q5_K, true, q4 ? FTYPE_Q4_K_M : FTYPE_Q5_K_M};
        return PF_OK;
    }
    pf_type t;
    if (pf_type_from_name(name, &t) == PF_OK && pf_type_get(t) && pf_type_get(t)->is_weight)
        for (size_t i = 0; i < N_FTYPES; i++)
            if (k_ftypes[i].t == t) {
                *out = (pf_quant_recipe){t, false, k_ftypes[i].ftype};
                return PF_OK;
            }
    return pf_error_set(err, PF_ERR_NOT_FOUND,
                        "unknown type '%s' (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL, "
                        "or the mixes Q4_K_M Q5_K_M)",
                        name);
}

const char *pf_file_type_name(uint32_t file_type) {
    if (file_type == FTYPE_Q4_K_M) return "Q4_K_M";
    if (file_type == FTYPE_Q5_K_M) return "Q5_K_M";
    for (size_t i = 0; i < N_FTYPES; i++)
        if (k_ftypes[i].ftype == file_type) return pf_type_name(k_ftypes[i].t);
    return "unknown";
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* llama.cpp's use_more_bits: first and last eighth of the layers, and every third in between. */
static bool use_more_bits(int64_t layer, int64_t n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

/* llama.cpp's fallback for rows that do not split into 256-element super-blocks. */
static pf_type fallback(pf_type t, int64_t ne0) {
    if (ne0 % pf_type_get(t)->block_size == 0) return t;
    switch (t) {
    case PF_TYPE_Q2_K: case PF_TYPE_Q3_K: t = PF_TYPE_IQ4_NL; break;
    case PF_TYPE_Q4_K: t = PF_TYPE_Q5_0; break;
    case PF_TYPE_Q5_K: t = PF_TYPE_Q5_1; break;
    case PF_TYPE_Q6_K: t = PF_TYPE_Q8_0; break;
    default: break;
    }
    return ne0 % pf_type_get(t)->block_size == 0 ? t : PF_TYPE_F16;
}

pf_type pf_quant_recipe_type(const pf_quant_recipe *r, const char *name, uint32_t n_dims, int64_t ne0, pf_type cur,
                             int64_t n_layer) {
    if (r == NULL || name == NULL || n_dims < 2 || !ends_with(name, ".weight") || ends_with(name, "_norm.weight") ||
        strstr(name, "position_embd") || strstr(name, "token_types") || strstr(name, "rope_factors"))
        return cur;
    const pf_type_traits *tr = pf_type_get(r->base);
    if (tr == NULL) return cur;
    pf_type want = r->base;
    if (!strcmp(name, "output.weight")) {
        /* llama.cpp keeps the output matrix at 6 bits unless the file is 8-bit or float */
        if (tr->is_quantized && r->base != PF_TYPE_Q8_0) want = PF_TYPE_Q6_K;
    } else if (r->mix_m) {
        int64_t layer = !strncmp(name, "blk.", 4) ? strtoll(name + 4, NULL, 10) : -1;
        if (strstr(name, "attn_qkv") || strstr(name, "attn_v."))
            want = r->base == PF_TYPE_Q4_K ? PF_TYPE_Q5_K : PF_TYPE_Q6_K;
        else if (strstr(name, "ffn_down") && layer >= 0 && use_more_bits(layer, n_layer))
            want = PF_TYPE_Q6_K;
    }
    return fallback(want, ne0);
}
