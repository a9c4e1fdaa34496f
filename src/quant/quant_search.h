/* Scale-search helpers shared by the reference quantizers (quant_search.c).
 * Every search minimises a weighted squared error Σ w_i (x_i - q(x_i))² (or |.| when asked)
 * over a small set of candidate scales, then refits the scale by least squares. */
#ifndef PF_QUANT_SEARCH_H
#define PF_QUANT_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

/* Nearest integer to v (ties to even), clamped to [lo, hi]; NaN gives 0 clamped. */
int pf_qround(float v, int lo, int hi);

/* fp16 round trip of a scale, saturating at ±65504 instead of overflowing to inf. */
float pf_half_round(float v);
uint16_t pf_half_sat(float v);

/* Signed levels: finds d and L[i] in [-nmax, nmax-1] minimising Σ w (x - d·L)².
 * Sweeps 19 candidate inverse scales -(nmax + t/10)/max (max = the signed largest |x|),
 * keeps the least-squares d of the best one, then (if refine) does coordinate descent on
 * single levels. Returns d (0 and L = 0 for an all-zero group). */
float pf_search_sym(int n, int nmax, const float *x, const float *w, int8_t *L, bool refine);

/* Unsigned levels with an offset: finds d >= 0, m <= 0 (when clamp_min, else any m) and
 * L[i] in [0, nmax] minimising Σ w·err(x - (d·L + m)), err = |.| if use_mad else (.)².
 * Candidate inverse scales (nmax + rmin + rdelta·t)/(max - min), t = 0..nstep, each refit
 * jointly for (d, m) by weighted least squares. Stores -m in *neg_min; returns d. */
float pf_search_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                       float rmin, float rdelta, int nstep, bool use_mad, bool clamp_min);

/* Index of the entry of the sorted 16-entry codebook nearest to v. */
int pf_nl_index(const int8_t *values, float v);

/* Non-linear codebook: finds d and L[i] in 0..15 minimising Σ w (x - d·values[L])².
 * Candidate inverse scales (values[0] + t)/max for t = -ntry..ntry, each refit by least
 * squares. Returns d (0 for an all-zero group). */
float pf_search_nl(int n, const int8_t *values, const float *x, const float *w, uint8_t *L, int ntry);

/* Second level of the K-quants: one super-block of ng groups of gs elements (ng·gs <= 256).
 *
 * Offset form (Q2_K, Q4_K, Q5_K): value = (d·ls[g])·L - (dmin·lm[g]), ls, lm in [0, smax],
 * L in [0, nmax]. From group scales sc[g] >= 0 and mins mn[g] >= 0 (value ≈ sc·L - mn):
 * d = max(sc)/smax, dmin = max(mn)/smax (fp16), ls/lm nearest; L nearest for the stored
 * numbers. Then, twice: each group moves to the best ±1 neighbour of (ls, lm), and (d, dmin)
 * are refit by least squares for the chosen integers, kept when the error drops.
 * Returns Σ (x - value)², computed with the dequantizer's float expression. */
double pf_k_affine_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, const float *mn,
                          uint8_t *ls, uint8_t *lm, uint16_t *d, uint16_t *dmin, uint8_t *L);

/* Signed form (Q3_K, Q6_K): value = (d·ls[g])·L, ls in [-smax, smax-1], L in [-nmax, nmax-1].
 * The group scale of largest magnitude maps to ls = -smax (d = -max/smax, fp16); L nearest.
 * Then, twice: each group's ls moves to a better ±1 neighbour, and d is refit by least squares,
 * kept when the error drops. Returns Σ (x - value)². */
double pf_k_sym_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, int8_t *ls,
                       uint16_t *d, int8_t *L);

#endif
