/* The tensor type table: block geometry and the scalar reference functions of every format. */
#include <string.h>
#include <strings.h>

#include "phiforge.h"
#include "quant/quant.h"

#define ROW(id, nm, bs, ts, quant, weight, vdt, deq, qnt, dot)                              \
    [id] = {.name = nm, .block_size = bs, .type_size = ts, .is_quantized = quant,             \
            .is_weight = weight, .vec_dot_type = vdt, .to_float = deq, .from_float = qnt,     \
            .vec_dot = dot}

static const pf_type_traits k_traits[PF_TYPE_COUNT] = {
    ROW(PF_TYPE_F32, "F32", 1, sizeof(float), false, true, PF_TYPE_F32,
        pf_dequant_f32, pf_quant_f32, pf_vec_dot_f32_f32),
    ROW(PF_TYPE_F16, "F16", 1, sizeof(pf_half), false, true, PF_TYPE_F32,
        pf_dequant_f16, pf_quant_f16, pf_vec_dot_f16_f32),
    ROW(PF_TYPE_BF16, "BF16", 1, sizeof(uint16_t), false, true, PF_TYPE_F32,
        pf_dequant_bf16, pf_quant_bf16, pf_vec_dot_bf16_f32),
    ROW(PF_TYPE_Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), true, true, PF_TYPE_Q8_0,
        pf_dequant_q4_0, pf_quant_q4_0, pf_vec_dot_q4_0_q8_0),
    ROW(PF_TYPE_Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), true, true, PF_TYPE_Q8_1,
        pf_dequant_q4_1, pf_quant_q4_1, pf_vec_dot_q4_1_q8_1),
    ROW(PF_TYPE_Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), true, true, PF_TYPE_Q8_0,
        pf_dequant_q5_0, pf_quant_q5_0, pf_vec_dot_q5_0_q8_0),
    ROW(PF_TYPE_Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), true, true, PF_TYPE_Q8_1,
        pf_dequant_q5_1, pf_quant_q5_1, pf_vec_dot_q5_1_q8_1),
    ROW(PF_TYPE_Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), true, true, PF_TYPE_Q8_0,
        pf_dequant_q8_0, pf_quant_q8_0, pf_vec_dot_q8_0_q8_0),
    ROW(PF_TYPE_Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), true, false, PF_TYPE_Q8_1,
        pf_dequant_q8_1, pf_quant_q8_1, NULL),
    ROW(PF_TYPE_Q2_K, "Q2_K", QK_K, sizeof(block_q2_K), true, true, PF_TYPE_Q8_K,
        pf_dequant_q2_k, pf_quant_q2_k, pf_vec_dot_q2_k_q8_k),
    ROW(PF_TYPE_Q3_K, "Q3_K", QK_K, sizeof(block_q3_K), true, true, PF_TYPE_Q8_K,
        pf_dequant_q3_k, pf_quant_q3_k, pf_vec_dot_q3_k_q8_k),
    ROW(PF_TYPE_Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), true, true, PF_TYPE_Q8_K,
        pf_dequant_q4_k, pf_quant_q4_k, pf_vec_dot_q4_k_q8_k),
    ROW(PF_TYPE_Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), true, true, PF_TYPE_Q8_K,
        pf_dequant_q5_k, pf_quant_q5_k, pf_vec_dot_q5_k_q8_k),
    ROW(PF_TYPE_Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), true, true, PF_TYPE_Q8_K,
        pf_dequant_q6_k, pf_quant_q6_k, pf_vec_dot_q6_k_q8_k),
    ROW(PF_TYPE_Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), true, false, PF_TYPE_Q8_K,
        pf_dequant_q8_k, pf_quant_q8_k, NULL),
    ROW(PF_TYPE_IQ4_NL, "IQ4_NL", QK4_NL, sizeof(block_iq4_nl), true, true, PF_TYPE_Q8_0,
        pf_dequant_iq4_nl, pf_quant_iq4_nl, pf_vec_dot_iq4_nl_q8_0),
};

/* A row exists exactly for the ids that have a name; every other id in range is a gap. */
const pf_type_traits *pf_type_get(pf_type t) {
    int id = (int)t;
    if (id < 0 || id >= PF_TYPE_COUNT || k_traits[id].name == NULL) return NULL;
    return &k_traits[id];
}

const char *pf_type_name(pf_type t) {
    const pf_type_traits *tr = pf_type_get(t);
    return tr ? tr->name : "UNKNOWN";
}

/* Linear scan over the table, comparing names case-insensitively. */
int pf_type_from_name(const char *name, pf_type *out) {
    if (name == NULL) return PF_ERR_NOT_FOUND;
    for (int id = 0; id < PF_TYPE_COUNT; id++) {
        if (k_traits[id].name != NULL && strcasecmp(k_traits[id].name, name) == 0) {
            if (out) *out = (pf_type)id;
            return PF_OK;
        }
    }
    return PF_ERR_NOT_FOUND;
}

/* (ne0 / block_size) * type_size; 0 for an unknown type or a ne0 that is not whole blocks. */
size_t pf_row_size(pf_type t, int64_t ne0) {
    const pf_type_traits *tr = pf_type_get(t);
    if (tr == NULL || ne0 < 0 || ne0 % tr->block_size != 0) return 0;
    return (size_t)(ne0 / tr->block_size) * tr->type_size;
}
