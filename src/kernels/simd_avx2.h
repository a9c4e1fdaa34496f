/* Small AVX2 helpers shared by the *_avx2.c kernels. Include only from files compiled with
 * -mavx2 -mfma -mf16c. All loads are unaligned-safe (_mm*_loadu_* or memcpy). */
#ifndef PF_SIMD_AVX2_H
#define PF_SIMD_AVX2_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/blocks.h"

/* binary16 bits -> float (F16C). */
static inline float pf_h2f(pf_half h) { return _cvtsh_ss(h); }

/* Blocks are addressed through byte pointers and their scalar fields loaded with memcpy, so
 * rows may sit at any address (as the reference allows). PF_BLK(T, base, k) is block k of
 * type T; PF_FLD(T, p, f) the address of field f of the block at p. */
#define PF_BLK(T, base, k) ((const uint8_t *)(base) + (size_t)(k) * sizeof(T))
#define PF_FLD(T, p, f) ((p) + offsetof(T, f))

/* fp16 at p (any alignment) -> float. */
static inline float pf_ldh(const uint8_t *p) {
    pf_half h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* f32 at p (any alignment). */
static inline float pf_ldf(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* 32 bytes at p (any alignment). */
static inline __m256i pf_ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Software prefetch distance for weight rows. A matvec streams each weight byte from DRAM
 * exactly once and the hardware prefetchers stop at 4 KiB page boundaries (no huge pages
 * here), so the kernels prefetch this far ahead of the bytes they are about to read. */
#ifndef PF_PREFETCH_DIST
#define PF_PREFETCH_DIST 2048
#endif

/* Prefetches the cache lines of [p, p + bytes) + PF_PREFETCH_DIST (bytes a small constant). */
static inline void pf_prefetch_ahead(const void *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)p + PF_PREFETCH_DIST + o, _MM_HINT_T0);
}

/* Sum of the 8 floats of v. */
static inline float pf_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sum of the 8 int32 of v. */
static inline int32_t pf_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Sum of the 4 int32 of v. */
static inline int32_t pf_hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 8 int32 partial sums of u[i] * s[i] for unsigned bytes u and signed bytes s: consecutive
 * pairs in int16 (maddubs, exact while |u0*s0 + u1*s1| <= 32767), then pairs in int32 (madd). */
static inline __m256i pf_dot_u8i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* 8 int32 partial sums of x[i] * y[i] for signed bytes: |x| goes into the unsigned operand
 * and the sign of x moves onto y. Exact unless x or y is -128 (never produced by the
 * quantizers: their range is [-127, 127]). */
static inline __m256i pf_dot_i8i8(__m256i x, __m256i y) {
    return pf_dot_u8i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* 16 packed nibble bytes -> 32 bytes in [0, 15]: low nibbles first (elements 0..15), then the
 * high nibbles (elements 16..31), the layout of Q4_0 / Q4_1 / Q5_x / IQ4_NL blocks. One
 * broadcast load, one per-lane variable shift (0 for the low lane, 4 for the high), one mask. */
static inline __m256i pf_unpack_nibbles_32(const uint8_t *qs) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    v = _mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* The fp16 values at b0, b0 + stride, ..., b0 + 7 * stride (any alignment) as 8 floats: packed
 * into two u64 with scalar loads and shifts, converted by one vcvtph2ps. The empty asm keeps
 * the packing in general-purpose registers (otherwise GCC's SLP vectorizer moves it onto the
 * vector pipes, which are the bottleneck of the dot-product loops). */
static inline __m256 pf_halves8(const uint8_t *b0, size_t stride) {
    uint16_t h[8];
    memcpy(&h[0], b0, 2);
    memcpy(&h[1], b0 + stride, 2);
    memcpy(&h[2], b0 + 2 * stride, 2);
    memcpy(&h[3], b0 + 3 * stride, 2);
    memcpy(&h[4], b0 + 4 * stride, 2);
    memcpy(&h[5], b0 + 5 * stride, 2);
    memcpy(&h[6], b0 + 6 * stride, 2);
    memcpy(&h[7], b0 + 7 * stride, 2);
    uint64_t lo = (uint64_t)h[0] | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 32 | (uint64_t)h[3] << 48;
    uint64_t hi = (uint64_t)h[4] | (uint64_t)h[5] << 16 | (uint64_t)h[6] << 32 | (uint64_t)h[7] << 48;
    __asm__("" : "+r"(lo), "+r"(hi));
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)hi, (long long)lo));
}

/* 32 bits (little-endian bytes at qh) -> 32 bytes, 0xFF where bit j is set, 0 elsewhere. */
static inline __m256i pf_bits_to_bytes_32(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* lane 0 */
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3); /* lane 1 */
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), spread);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL)); /* every bit but j % 8 */
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi8(-1));
}

#endif
