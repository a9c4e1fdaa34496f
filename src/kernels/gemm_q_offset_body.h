/* The register-tiled GEMM body for weights stored as "unsigned bytes minus an offset" against
 * Q8_0 activations with prepared data (pf_avx2_prep_q8_0): Q4_0 (u = nibble, offset 8) in
 * gemm_q_avx2.c, and Q4_0 and Q8_0 (u = x ^ 0x80 = x + 128, offset 128) with AVX-512 VNNI in
 * gemm_q_vnni_avx512.c:
 *   dot = sum_b dx*dy * sum(u*y) - OFFSET * sum_b dx * (dy*sum(y)),
 * the correction folded into the same accumulator lanes. Before including, define
 *   QB_BODY            the function name,
 *   QB_BLOCK           the weight block type (its d field first),
 *   QB_UNPACK(blk)     the block's 32 unsigned bytes (__m256i) in element order,
 *   QB_DOT(u, y)       int32 lanes of sum(u*y) over 4-byte groups (__m256i),
 *   QB_OFFSET          the offset as a float constant.
 * Include after simd_avx2.h and gemm_q_tile.h. */
PF_AI void QB_BODY(int64_t n, const uint8_t *w, size_t wrow, const uint8_t *y, size_t yrow, const float *pre,
                   int64_t ps, float *out, int64_t ldo, const int NR, const int NT) {
    const int64_t nb = n / QK8_0;
    __m256 acc[2][4];
    float ctail[2][4];
    _Alignas(32) float sc[2][4][8];
    PF_UNROLL for (int r = 0; r < NR; r++)
        PF_UNROLL for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps(), ctail[r][t] = 0.0f;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        PF_UNROLL for (int r = 0; r < NR; r++) {
            const uint8_t *b0 = PF_BLK(QB_BLOCK, w + r * wrow, i);
            pf_prefetch_ahead(b0, 8 * sizeof(QB_BLOCK));
            const __m256 dx = pf_halves8(b0, sizeof(QB_BLOCK));
            const __m256 dxo = _mm256_mul_ps(dx, _mm256_set1_ps(QB_OFFSET));
            PF_UNROLL for (int t = 0; t < NT; t++) {
                const float *p = pre + t * ps;
                _mm256_store_ps(sc[r][t], _mm256_mul_ps(dx, _mm256_loadu_ps(p + i)));
                acc[r][t] = _mm256_fnmadd_ps(dxo, _mm256_loadu_ps(p + nb + i), acc[r][t]);
            }
        }
        for (int k = 0; k < 8; k++) {
            __m256i u[2];
            PF_UNROLL for (int r = 0; r < NR; r++) u[r] = QB_UNPACK(PF_BLK(QB_BLOCK, w + r * wrow, i + k));
            PF_UNROLL for (int t = 0; t < NT; t++) {
                const __m256i yv = pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, y + t * yrow, i + k), qs));
                PF_UNROLL for (int r = 0; r < NR; r++) {
                    __m256i p = QB_DOT(u[r], yv);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[r][t][k]), _mm256_cvtepi32_ps(p), acc[r][t]);
                }
            }
        }
    }
    for (; i < nb; i++) {
        PF_UNROLL for (int r = 0; r < NR; r++) {
            const uint8_t *bx = PF_BLK(QB_BLOCK, w + r * wrow, i);
            const float dx = pf_ldh(bx);
            const __m256i u = QB_UNPACK(bx);
            PF_UNROLL for (int t = 0; t < NT; t++) {
                const float *p = pre + t * ps;
                const __m256i yv = pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, y + t * yrow, i), qs));
                __m256i d = QB_DOT(u, yv);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * p[i]), _mm256_cvtepi32_ps(d), acc[r][t]);
                ctail[r][t] += dx * p[nb + i];
            }
        }
    }
    PF_UNROLL for (int r = 0; r < NR; r++)
        PF_UNROLL for (int t = 0; t < NT; t++) out[t * ldo + r] = pf_hsum_ps(acc[r][t]) - QB_OFFSET * ctail[r][t];
}
