/* The kernel tables: "scalar" is the reference of src/quant (the trait table's functions),
 * "avx2" the AVX2/FMA/F16C kernels of the *_avx2.c files, with the reference wherever no
 * faster kernel exists. Both are immutable static data. */
#include "kernels/kernels_internal.h"
#include "quant/quant.h"

static const pf_kernels k_scalar = {
    .name = "scalar",
    .isa = PF_ISA_SCALAR,
    .vec_dot =
        {
            [PF_TYPE_F32] = pf_vec_dot_f32_f32,
            [PF_TYPE_F16] = pf_vec_dot_f16_f32,
            [PF_TYPE_BF16] = pf_vec_dot_bf16_f32,
            [PF_TYPE_Q4_0] = pf_vec_dot_q4_0_q8_0,
            [PF_TYPE_Q4_1] = pf_vec_dot_q4_1_q8_1,
            [PF_TYPE_Q5_0] = pf_vec_dot_q5_0_q8_0,
            [PF_TYPE_Q5_1] = pf_vec_dot_q5_1_q8_1,
            [PF_TYPE_Q8_0] = pf_vec_dot_q8_0_q8_0,
            [PF_TYPE_IQ4_NL] = pf_vec_dot_iq4_nl_q8_0,
            [PF_TYPE_Q2_K] = pf_vec_dot_q2_k_q8_k,
            [PF_TYPE_Q3_K] = pf_vec_dot_q3_k_q8_k,
            [PF_TYPE_Q4_K] = pf_vec_dot_q4_k_q8_k,
            [PF_TYPE_Q5_K] = pf_vec_dot_q5_k_q8_k,
            [PF_TYPE_Q6_K] = pf_vec_dot_q6_k_q8_k,
        },
    .quantize_row =
        {
            [PF_TYPE_Q8_0] = pf_quant_q8_0,
            [PF_TYPE_Q8_1] = pf_quant_q8_1,
            [PF_TYPE_Q8_K] = pf_quant_q8_k,
        },
    .to_float =
        {
            [PF_TYPE_F32] = pf_dequant_f32,
            [PF_TYPE_F16] = pf_dequant_f16,
            [PF_TYPE_BF16] = pf_dequant_bf16,
            [PF_TYPE_Q4_0] = pf_dequant_q4_0,
            [PF_TYPE_Q4_1] = pf_dequant_q4_1,
            [PF_TYPE_Q5_0] = pf_dequant_q5_0,
            [PF_TYPE_Q5_1] = pf_dequant_q5_1,
            [PF_TYPE_Q8_0] = pf_dequant_q8_0,
            [PF_TYPE_Q8_1] = pf_dequant_q8_1,
            [PF_TYPE_IQ4_NL] = pf_dequant_iq4_nl,
            [PF_TYPE_Q2_K] = pf_dequant_q2_k,
            [PF_TYPE_Q3_K] = pf_dequant_q3_k,
            [PF_TYPE_Q4_K] = pf_dequant_q4_k,
            [PF_TYPE_Q5_K] = pf_dequant_q5_k,
            [PF_TYPE_Q6_K] = pf_dequant_q6_k,
            [PF_TYPE_Q8_K] = pf_dequant_q8_k,
        },
};

#if defined(__x86_64__) || defined(__i386__)
static const pf_kernels k_avx2 = {
    .name = "avx2",
    .isa = PF_ISA_AVX2,
    .vec_dot =
        {
            [PF_TYPE_F32] = pf_avx2_vec_dot_f32_f32,
            [PF_TYPE_F16] = pf_avx2_vec_dot_f16_f32,
            [PF_TYPE_BF16] = pf_avx2_vec_dot_bf16_f32,
            [PF_TYPE_Q4_0] = pf_avx2_vec_dot_q4_0_q8_0,
            [PF_TYPE_Q4_1] = pf_avx2_vec_dot_q4_1_q8_1,
            [PF_TYPE_Q5_0] = pf_avx2_vec_dot_q5_0_q8_0,
            [PF_TYPE_Q5_1] = pf_avx2_vec_dot_q5_1_q8_1,
            [PF_TYPE_Q8_0] = pf_avx2_vec_dot_q8_0_q8_0,
            [PF_TYPE_IQ4_NL] = pf_avx2_vec_dot_iq4_nl_q8_0,
            [PF_TYPE_Q2_K] = pf_avx2_vec_dot_q2_k_q8_k,
            [PF_TYPE_Q3_K] = pf_avx2_vec_dot_q3_k_q8_k,
            [PF_TYPE_Q4_K] = pf_avx2_vec_dot_q4_k_q8_k,
            [PF_TYPE_Q5_K] = pf_avx2_vec_dot_q5_k_q8_k,
            [PF_TYPE_Q6_K] = pf_avx2_vec_dot_q6_k_q8_k,
        },
    .quantize_row =
        {
            [PF_TYPE_Q8_0] = pf_avx2_quant_q8_0,
            [PF_TYPE_Q8_1] = pf_avx2_quant_q8_1,
            [PF_TYPE_Q8_K] = pf_avx2_quant_q8_k,
        },
    .to_float =
        {
            [PF_TYPE_F32] = pf_dequant_f32,
            [PF_TYPE_F16] = pf_avx2_dequant_f16,
            [PF_TYPE_BF16] = pf_avx2_dequant_bf16,
            [PF_TYPE_Q4_0] = pf_avx2_dequant_q4_0,
            [PF_TYPE_Q4_1] = pf_dequant_q4_1,
            [PF_TYPE_Q5_0] = pf_dequant_q5_0,
            [PF_TYPE_Q5_1] = pf_dequant_q5_1,
            [PF_TYPE_Q8_0] = pf_avx2_dequant_q8_0,
            [PF_TYPE_Q8_1] = pf_dequant_q8_1,
            [PF_TYPE_IQ4_NL] = pf_dequant_iq4_nl,
            [PF_TYPE_Q2_K] = pf_dequant_q2_k,
            [PF_TYPE_Q3_K] = pf_dequant_q3_k,
            [PF_TYPE_Q4_K] = pf_avx2_dequant_q4_k,
            [PF_TYPE_Q5_K] = pf_dequant_q5_k,
            [PF_TYPE_Q6_K] = pf_avx2_dequant_q6_k,
            [PF_TYPE_Q8_K] = pf_dequant_q8_k,
        },
};
#endif

const pf_kernels *pf_kernels_get(pf_isa isa) {
    switch (isa) {
    case PF_ISA_SCALAR: return &k_scalar;
#if defined(__x86_64__) || defined(__i386__)
    case PF_ISA_AVX2: return pf_cpu_has_avx2() ? &k_avx2 : NULL;
    case PF_ISA_AUTO: return pf_cpu_has_avx2() ? &k_avx2 : &k_scalar;
#else
    case PF_ISA_AVX2: return NULL;
    case PF_ISA_AUTO: return &k_scalar;
#endif
    default: return NULL;
    }
}
