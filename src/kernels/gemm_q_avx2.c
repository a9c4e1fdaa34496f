/* Register-tiled quantized GEMM micro-kernels (AVX2) used by pf_matmul when several tokens
 * share the weights: a tile of nr <= PF_QGEMM_ROWS weight rows x nt <= PF_QGEMM_TOKS tokens
 * is computed in one pass over the blocks, so each weight block is loaded and unpacked once
 * and reused for every token of the tile, and each activation block once for every row. The
 * integer dot products are the same maddubs/madd ones as the vec_dot kernels; the per-block
 * scales are multiplied 8 blocks at a time (Q4_0 / Q8_0) or per super-block (K-quants), so
 * results equal the vec_dot kernels up to float summation order.
 *   out[t * ldo + r] = dot(w + r * wrow, y + t * yrow)      (r < nr, t < nt)
 * Q4_0 / Q8_0 take the prepared activation data of pf_avx2_prep_q8_0 (pre + t * pre_stride);
 * the K-quant kernels ignore pre. Every (nr, nt) shape is a separately inlined variant so the
 * nr x nt float accumulators live in registers. */
#include "kernels/kernels_internal.h"
#include "kernels/simd_avx2.h"

#include "kernels/gemm_q_tile.h"

#define QGEMM_DISPATCH(NAME) PF_QGEMM_DISPATCH(pf_avx2_qgemm_##NAME, NAME##_body)

/* ---- Q4_0 x Q8_0: unsigned nibbles minus 8 (see gemm_q_offset_body.h) ---------------------- */
#define QB_BODY q4_0_body
#define QB_BLOCK block_q4_0
#define QB_UNPACK(blk) pf_unpack_nibbles_32(PF_FLD(block_q4_0, (blk), qs))
#define QB_DOT(u, y) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (y)), _mm256_set1_epi16(1))
#define QB_OFFSET 8.0f
#include "kernels/gemm_q_offset_body.h"
#undef QB_BODY
#undef QB_BLOCK
#undef QB_UNPACK
#undef QB_DOT
#undef QB_OFFSET
QGEMM_DISPATCH(q4_0)

/* ---- Q8_0 x Q8_0: signed x signed with the sign trick (|x| once per weight block). ---------- */
PF_AI void q8_0_body(int64_t n, const uint8_t *w, size_t wrow, const uint8_t *y, size_t yrow, const float *pre,
                     int64_t ps, float *out, int64_t ldo, const int NR, const int NT) {
    const int64_t nb = n / QK8_0;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[2][4];
    _Alignas(32) float sc[2][4][8];
    PF_UNROLL for (int r = 0; r < NR; r++)
        PF_UNROLL for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        PF_UNROLL for (int r = 0; r < NR; r++) {
            const uint8_t *b0 = PF_BLK(block_q8_0, w + r * wrow, i);
            pf_prefetch_ahead(b0, 8 * sizeof(block_q8_0));
            const __m256 dx = pf_halves8(b0, sizeof(block_q8_0));
            PF_UNROLL for (int t = 0; t < NT; t++) _mm256_store_ps(sc[r][t], _mm256_mul_ps(dx, _mm256_loadu_ps(pre + t * ps + i)));
        }
        for (int k = 0; k < 8; k++) {
            __m256i x[2], ax[2];
            PF_UNROLL for (int r = 0; r < NR; r++) {
                x[r] = pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, w + r * wrow, i + k), qs));
                ax[r] = _mm256_sign_epi8(x[r], x[r]);
            }
            PF_UNROLL for (int t = 0; t < NT; t++) {
                const __m256i yv = pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, y + t * yrow, i + k), qs));
                PF_UNROLL for (int r = 0; r < NR; r++) {
                    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(yv, x[r])), ones16);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[r][t][k]), _mm256_cvtepi32_ps(p), acc[r][t]);
                }
            }
        }
    }
    for (; i < nb; i++) {
        PF_UNROLL for (int r = 0; r < NR; r++) {
            const uint8_t *bx = PF_BLK(block_q8_0, w + r * wrow, i);
            const float dx = pf_ldh(PF_FLD(block_q8_0, bx, d));
            const __m256i xv = pf_ld256(PF_FLD(block_q8_0, bx, qs));
            PF_UNROLL for (int t = 0; t < NT; t++) {
                const __m256i yv = pf_ld256(PF_FLD(block_q8_0, PF_BLK(block_q8_0, y + t * yrow, i), qs));
                __m256i d = pf_dot_i8i8(xv, yv);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * pre[t * ps + i]), _mm256_cvtepi32_ps(d), acc[r][t]);
            }
        }
    }
    PF_UNROLL for (int r = 0; r < NR; r++)
        PF_UNROLL for (int t = 0; t < NT; t++) out[t * ldo + r] = pf_hsum_ps(acc[r][t]);
}
QGEMM_DISPATCH(q8_0)

/* ---- K-quants x Q8_K ------------------------------------------------------------------------
 * Each weight super-block is decoded once per tile into unsigned bytes q[256] (natural element
 * order), per-32-element-chunk int16 scale vectors (low 128-bit lane: the scale of elements
 * 0..15 of the chunk, high lane: 16..31) and 16 int16 offsets per 16-element group, so that
 *   dot = dy * (d * sum_c madd(maddubs(q_c, y_c), sc_c) - dm * sum_g off_g * bsum_g).
 * Q4_K / Q5_K: off = the sub-block mins, dm = dmin; Q6_K: off = 32 * scale, dm = d. */
typedef struct kdec {
    _Alignas(32) uint8_t q[QK_K];
    __m256i sc[8];
    __m256i off;
    float d, dm;
} kdec;

/* Broadcast int16 lane k of each 128-bit half of v to all 16 lanes. */
#define BCAST16(v, k) _mm256_shuffle_epi8((v), _mm256_set1_epi16((short)(((2 * (k) + 1) << 8) | (2 * (k)))))

/* 8 six-bit scales and mins of Q4_K / Q5_K -> the scale vectors and offsets of kdec. */
PF_AI void k4_scales(const uint8_t *s, kdec *o) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t m6 = 0x3f3f3f3fu, lo = 0x0f0f0f0fu, hi = 0x30303030u;
    uint64_t sc8 = (uint64_t)(a & m6) | ((uint64_t)((c & lo) | ((a >> 2) & hi)) << 32);
    uint64_t mn8 = (uint64_t)(b & m6) | ((uint64_t)(((c >> 4) & lo) | ((b >> 2) & hi)) << 32);
    const __m128i sc128 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8));
    const __m256i sc = _mm256_set_m128i(sc128, sc128);
    o->sc[0] = BCAST16(sc, 0); o->sc[1] = BCAST16(sc, 1); o->sc[2] = BCAST16(sc, 2); o->sc[3] = BCAST16(sc, 3);
    o->sc[4] = BCAST16(sc, 4); o->sc[5] = BCAST16(sc, 5); o->sc[6] = BCAST16(sc, 6); o->sc[7] = BCAST16(sc, 7);
    const __m128i mn = _mm_cvtsi64_si128((long long)mn8);
    o->off = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));
}

PF_AI void dec_q4_k(const uint8_t *bx, kdec *o) {
    o->d = pf_ldh(PF_FLD(block_q4_K, bx, d));
    o->dm = pf_ldh(PF_FLD(block_q4_K, bx, dmin));
    k4_scales(PF_FLD(block_q4_K, bx, scales), o);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const uint8_t *qs = PF_FLD(block_q4_K, bx, qs);
    for (int j = 0; j < 4; j++) {
        __m256i q = pf_ld256(qs + 32 * j);
        _mm256_store_si256((__m256i *)(o->q + 64 * j), _mm256_and_si256(q, m4));
        _mm256_store_si256((__m256i *)(o->q + 64 * j + 32), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
    }
}

PF_AI void dec_q5_k(const uint8_t *bx, kdec *o) {
    o->d = pf_ldh(PF_FLD(block_q5_K, bx, d));
    o->dm = pf_ldh(PF_FLD(block_q5_K, bx, dmin));
    k4_scales(PF_FLD(block_q5_K, bx, scales), o);
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    const uint8_t *qs = PF_FLD(block_q5_K, bx, qs);
    __m256i hb = pf_ld256(PF_FLD(block_q5_K, bx, qh));
    for (int j = 0; j < 4; j++) {
        __m256i q = pf_ld256(qs + 32 * j);
        __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4));
        __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                     _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4));
        hb = _mm256_srli_epi16(hb, 2);
        _mm256_store_si256((__m256i *)(o->q + 64 * j), lo);
        _mm256_store_si256((__m256i *)(o->q + 64 * j + 32), hi);
    }
}

PF_AI void dec_q6_k(const uint8_t *bx, kdec *o) {
    o->d = o->dm = pf_ldh(PF_FLD(block_q6_K, bx, d));
    const __m128i sc = _mm_loadu_si128((const __m128i *)PF_FLD(block_q6_K, bx, scales));
    o->off = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc), 5);
    __m128i idx = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (int c = 0; c < 8; c++) {
        o->sc[c] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, idx));
        idx = _mm_add_epi8(idx, _mm_set1_epi8(2));
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = PF_FLD(block_q6_K, bx, ql) + 64 * h;
        const __m256i l0 = pf_ld256(ql), l1 = pf_ld256(ql + 32);
        const __m256i hq = pf_ld256(PF_FLD(block_q6_K, bx, qh) + 32 * h);
        uint8_t *q = o->q + 128 * h;
        _mm256_store_si256((__m256i *)q, _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 4), m30)));
        _mm256_store_si256((__m256i *)(q + 32), _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hq, 2), m30)));
        _mm256_store_si256((__m256i *)(q + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hq, m30)));
        _mm256_store_si256((__m256i *)(q + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                                              _mm256_and_si256(_mm256_srli_epi16(hq, 2), m30)));
    }
}

/* The K-quant tile: TX the weight block type, DEC its decoder. Rows are done one after the
 * other; per row super-block the decoded chunk c and its scales are loaded once and used for
 * the NT tokens, whose int32 sums stay in registers until the super-block is scaled. */
#define KQ_BODY(NAME, TX, DEC)                                                                                  \
    PF_AI void NAME##_body(int64_t n, const uint8_t *w, size_t wrow, const uint8_t *y, size_t yrow,              \
                           const float *pre, int64_t ps, float *out, int64_t ldo, const int NR, const int NT) {  \
        (void)pre;                                                                                              \
        (void)ps;                                                                                               \
        const int64_t nb = n / QK_K;                                                                            \
        kdec dec;                                                                                               \
        PF_UNROLL for (int r = 0; r < NR; r++) {                                                                \
            __m256 acc[4];                                                                                      \
            PF_UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();                                \
            for (int64_t i = 0; i < nb; i++) {                                                                  \
                const uint8_t *bx = PF_BLK(TX, w + r * wrow, i);                                                \
                pf_prefetch_ahead(bx, sizeof(TX));                                                              \
                DEC(bx, &dec);                                                                                  \
                const uint8_t *by[4];                                                                           \
                __m256i sumi[4];                                                                                \
                PF_UNROLL for (int t = 0; t < NT; t++) {                                                        \
                    by[t] = PF_BLK(block_q8_K, y + t * yrow, i);                                                \
                    sumi[t] = _mm256_setzero_si256();                                                           \
                }                                                                                               \
                PF_UNROLL for (int c = 0; c < 8; c++) {                                                         \
                    const __m256i q = _mm256_load_si256((const __m256i *)(dec.q + 32 * c));                     \
                    const __m256i sc = dec.sc[c];                                                               \
                    PF_UNROLL for (int t = 0; t < NT; t++) {                                                    \
                        __m256i p = _mm256_maddubs_epi16(q, pf_ld256(PF_FLD(block_q8_K, by[t], qs) + 32 * c));  \
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, sc));                          \
                    }                                                                                           \
                }                                                                                               \
                PF_UNROLL for (int t = 0; t < NT; t++) {                                                        \
                    const float dy = pf_ldf(PF_FLD(block_q8_K, by[t], d));                                      \
                    const __m256i mo = _mm256_madd_epi16(pf_ld256(PF_FLD(block_q8_K, by[t], bsums)), dec.off);  \
                    acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dec.d * dy), _mm256_cvtepi32_ps(sumi[t]), acc[t]);  \
                    acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dec.dm * dy), _mm256_cvtepi32_ps(mo), acc[t]);     \
                }                                                                                               \
            }                                                                                                   \
            PF_UNROLL for (int t = 0; t < NT; t++) out[t * ldo + r] = pf_hsum_ps(acc[t]);                       \
        }                                                                                                       \
    }

KQ_BODY(q4_k, block_q4_K, dec_q4_k)
QGEMM_DISPATCH(q4_k)
KQ_BODY(q5_k, block_q5_K, dec_q5_k)
QGEMM_DISPATCH(q5_k)
KQ_BODY(q6_k, block_q6_K, dec_q6_k)
QGEMM_DISPATCH(q6_k)
