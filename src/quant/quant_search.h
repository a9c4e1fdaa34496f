/* Scale-search helpers shared by the reference quantizers (quant_search.c).
 *
 * Speed notes. The per-element loops are written so that GCC's -O2 vectorizer (very cheap
 * cost model, SSE2) can turn them into packed code: rounding goes through the 1.5·2^23 trick
 * and integer clamps (float selects would need -fno-trapping-math), reductions use four
 * separate lane accumulators (float addition is not reassociated), and candidate scales are
 * scored from running sums (a least-squares fit and its error are closed forms of Σw, Σwx,
 * Σwx², Σwl, Σwl², Σwxl), so a candidate costs one pass over its group. The fast rounding needs
 * |v| < 2^22: every caller either has that by construction (v = x·(nmax + δ)/max|x|) or checks
 * a per-group bound first and falls back to pf_qround. */
#ifndef PF_QUANT_SEARCH_H
#define PF_QUANT_SEARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Nearest integer to v (ties to even), clamped to [lo, hi]; NaN gives 0 clamped. Any v. */
int pf_qround(float v, int lo, int hi);

/* fp16 round trip of a scale, saturating at ±65504 instead of overflowing to inf. */
float pf_half_round(float v);
uint16_t pf_half_sat(float v);

static inline int32_t pf_f2bits(float f) {
    int32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static inline float pf_bits2f(int32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Nearest integer to v, ties to even. Requires |v| < 2^22 (then v + 1.5·2^23 has an ulp of 1,
 * so the IEEE addition itself rounds, and the low mantissa bits are the integer). For any other
 * v (or NaN) the result is some int, never undefined behaviour; callers clamp it. */
static inline int pf_nearest(float v) {
    return (int)(int32_t)((uint32_t)pf_f2bits(v + 12582912.0f) - 0x4B400000u);
}

static inline int pf_clampi(int v, int lo, int hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* Largest |x| whose magnitude the fast rounding accepts after scaling (with margin). */
#define PF_FAST_LIMIT 4.0e6f

/* Symmetric group fit (Q3_K, Q6_K first level): levels L in [-nmax, nmax-1], value d·L.
 * Candidate inverse scales -(nmax + step·t)/max, t = 0, -1..-ntry, 1..ntry (max = the signed
 * largest |x|), each with its least-squares d for weights w (NULL: uniform); the candidate with
 * the largest (Σwxl)²/Σwl² (smallest weighted error) wins, ties keeping the earlier one.
 * Returns d (0 for an all-zero or non-finite group). n <= 32, a multiple of 4. */
float pf_fit_sym(int n, int nmax, const float *x, const float *w, int ntry, float step);

/* Offset group fit (Q2_K, Q4_K, Q5_K first level): value d·L - m, L in [0, nmax], d >= 0,
 * m >= 0 (the group minimum is clamped to <= 0 as in ggml). Candidate inverse scales
 * (nmax + rmin + rdelta·t)/(max - min), t = 0..nstep; each is fitted jointly for (d, m) by
 * weighted least squares (w NULL: uniform; when the fitted offset would be positive it is set
 * to 0 and d refit alone, as ggml does) and scored by its weighted squared error in closed
 * form. The winner gets one Lloyd step (levels re-rounded for it, refit, kept if better).
 * Returns d, stores m in *mneg. n <= 32, a multiple of 4. */
float pf_fit_affine(int n, int nmax, const float *x, const float *w, float rmin, float rdelta, int nstep,
                    float *mneg);

/* Second level of the K-quants: one super-block of ng groups of gs elements (ng·gs <= 256).
 *
 * Offset form (Q2_K, Q4_K, Q5_K): value = (d·ls[g])·L - (dmin·lm[g]), ls, lm in [0, smax],
 * L in [0, nmax]. From group scales sc[g] >= 0 and mins mn[g] >= 0 (value ≈ sc·L - mn):
 * d = max(sc)/smax, dmin = max(mn)/smax (fp16), ls/lm nearest, L nearest for the stored
 * numbers (ggml's rule). Then (d, dmin) are refit by least squares for the chosen integers
 * (kept when the error drops), and each group moves to the best of the 8 neighbours (±1) of
 * its (ls, lm) when that lowers its error. Returns Σ (x - value)², computed with the
 * dequantizer's float expression. */
double pf_k_affine_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, const float *mn,
                          uint8_t *ls, uint8_t *lm, uint16_t *d, uint16_t *dmin, uint8_t *L);

/* Signed form (Q3_K, Q6_K): value = (d·ls[g])·L, ls in [-smax, smax-1], L in [-nmax, nmax-1].
 * The group scale of largest magnitude maps to ls = -smax (d = -max/smax, fp16; ggml's rule);
 * L nearest. Then d is refit by least squares (kept when the error drops) and each group moves
 * to the better neighbour (±1) of its ls when that lowers its error. Returns Σ (x - value)². */
double pf_k_sym_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, int8_t *ls,
                       uint16_t *d, int8_t *L);

#endif
