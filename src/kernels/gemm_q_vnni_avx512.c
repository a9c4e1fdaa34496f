/* AVX-512 VNNI variants of the Q4_0 and Q8_0 register-tiled GEMM kernels (gemm_q_avx2.c) for
 * pf_matmul with several tokens (prompt processing, speculative verification): vpdpbusd on
 * 256-bit vectors does the u8 x s8 products and their 4-way sums in one instruction. Q8_0
 * weights become unsigned by flipping the sign bit (x + 128), so both types share the
 * offset body of gemm_q_offset_body.h. Compiled with AVX-512 F/VL/BW/VNNI; only called when
 * pf_cpu_has_avx512vnni(). */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

#include "kernels/gemm_q_tile.h"

#define QB_DOT(u, y) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (y))

#define QB_BODY q4_0_body
#define QB_BLOCK block_q4_0
#define QB_UNPACK(blk) pf_unpack_nibbles_32(PF_FLD(block_q4_0, (blk), qs))
#define QB_OFFSET 8.0f
#include "kernels/gemm_q_offset_body.h"
#undef QB_BODY
#undef QB_BLOCK
#undef QB_UNPACK
#undef QB_OFFSET

#define QB_BODY q8_0_body
#define QB_BLOCK block_q8_0
#define QB_UNPACK(blk) _mm256_xor_si256(pf_ld256(PF_FLD(block_q8_0, (blk), qs)), _mm256_set1_epi8((char)0x80))
#define QB_OFFSET 128.0f
#include "kernels/gemm_q_offset_body.h"

PF_QGEMM_DISPATCH(pf_vnni_qgemm_q4_0, q4_0_body)
PF_QGEMM_DISPATCH(pf_vnni_qgemm_q8_0, q8_0_body)
