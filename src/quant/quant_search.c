/* Scale searches shared by the reference quantizers. See quant_search.h for the contracts. */
#include "quant/quant_search.h"

#include <math.h>
#include <string.h>

#include "phiforge.h"

#define PF_GROUP_EPS 1e-15f /* a group whose largest |x| is below this quantizes to zeros */
#define PF_MAX_GROUP 256

/* Clamp first (so the conversion is always in range), then round half to even by adding and
 * subtracting 1.5·2^23: for |v| < 2^22 the sum's ulp is 1, so the float addition itself rounds
 * v to an integer (IEEE round-to-nearest-even), and the subtraction is exact. */
int pf_qround(float v, int lo, int hi) {
    if (isnan(v)) v = 0.0f;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    float r = (v + 12582912.0f) - 12582912.0f; /* not folded: IEEE semantics, no fast-math */
    return (int)r;
}

/* Saturate to the largest finite half, then round to nearest even. */
uint16_t pf_half_sat(float v) {
    if (v > 65504.0f) v = 65504.0f;
    if (v < -65504.0f) v = -65504.0f;
    return pf_fp32_to_fp16(v);
}

float pf_half_round(float v) { return pf_fp16_to_fp32(pf_half_sat(v)); }

/* Signed value of the element with the largest magnitude (first one on ties); NaNs skipped. */
static float signed_absmax(int n, const float *x, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    *amax_out = amax;
    return max;
}

/* Quantizes x with inverse scale `iscale` to levels in [lo, hi] and accumulates the weighted
 * least-squares sums Σ w x l and Σ w l². */
static void sym_round(int n, const float *x, const float *w, float iscale, int lo, int hi, int8_t *L,
                      double *sumlx, double *suml2) {
    double a = 0.0, b = 0.0;
    for (int i = 0; i < n; i++) {
        int l = pf_qround(iscale * x[i], lo, hi);
        L[i] = (int8_t)l;
        a += (double)w[i] * x[i] * l;
        b += (double)w[i] * l * l;
    }
    *sumlx = a;
    *suml2 = b;
}

/* Coordinate descent on G(L) = (Σ w x l)² / Σ w l² (the error reduction of the least-squares
 * scale): each level in turn tries round(x/d), l-1 and l+1 and keeps the best strict gain. */
static void sym_descent(int n, int nmax, const float *x, const float *w, int8_t *L, double *sumlx,
                        double *suml2) {
    double a = *sumlx, b = *suml2;
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            double wi = w[i], xi = x[i];
            double ra = a - wi * xi * L[i], rb = b - wi * L[i] * L[i];
            double best = (b > 0) ? a * a / b : 0.0;
            int best_l = L[i];
            int cand[3] = {L[i] - 1, L[i] + 1, 0};
            cand[2] = (ra != 0.0) ? pf_qround((float)(xi * rb / ra), -nmax, nmax - 1) : L[i];
            for (int c = 0; c < 3; c++) {
                int l = cand[c];
                if (l < -nmax || l > nmax - 1 || l == best_l) continue;
                double na = ra + wi * xi * l, nb = rb + wi * l * l;
                if (nb > 0 && na * na / nb > best * (1.0 + 1e-12)) { best = na * na / nb; best_l = l; }
            }
            if (best_l != L[i]) {
                a = ra + wi * xi * best_l;
                b = rb + wi * best_l * best_l;
                L[i] = (int8_t)best_l;
                changed++;
            }
        }
        if (!changed) break;
    }
    *sumlx = a;
    *suml2 = b;
}

float pf_search_sym(int n, int nmax, const float *x, const float *w, int8_t *L, bool refine) {
    if (n <= 0 || n > PF_MAX_GROUP) return 0.0f;
    float amax;
    float max = signed_absmax(n, x, &amax);
    if (amax < PF_GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    int8_t tmp[PF_MAX_GROUP];
    double best_a = 0.0, best_b = 0.0;
    bool have = false;
    /* t = 0 (the largest |x| lands exactly on level -nmax) first, so ties keep it. */
    for (int k = 0; k < 19; k++) {
        int t = (k == 0) ? 0 : (k <= 9 ? -k : k - 9);
        float iscale = -((float)nmax + 0.1f * (float)t) / max;
        double a, b;
        sym_round(n, x, w, iscale, -nmax, nmax - 1, tmp, &a, &b);
        if (b > 0 && (!have || a * a * best_b > best_a * best_a * b)) {
            memcpy(L, tmp, (size_t)n);
            best_a = a;
            best_b = b;
            have = true;
        }
    }
    if (!have) { /* all weights zero: plain amax scaling */
        float iscale = -(float)nmax / max;
        double a, b;
        sym_round(n, x, w, iscale, -nmax, nmax - 1, L, &a, &b);
        return 1.0f / iscale;
    }
    if (refine) sym_descent(n, nmax, x, w, L, &best_a, &best_b);
    return (float)(best_a / best_b);
}

/* Weighted error of x against d·L + m: Σ w |e| (mad) or Σ w e². */
static double affine_err(int n, const float *x, const float *w, const uint8_t *L, float d, float m,
                         bool use_mad) {
    double e = 0.0;
    for (int i = 0; i < n; i++) {
        double diff = (double)d * L[i] + m - x[i];
        e += w[i] * (use_mad ? fabs(diff) : diff * diff);
    }
    return e;
}

/* Rounds (x - m)·iscale to [0, nmax] and fits (d, m) by weighted least squares on those
 * levels: minimise Σ w (x - d l - m)². With clamp_min, m is forced <= 0 (refit d alone). */
static bool affine_fit(int n, int nmax, const float *x, const float *w, float iscale, float m0,
                       uint8_t *L, bool clamp_min, float *d_out, float *m_out) {
    double sw = 0, sx = 0, sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; i++) {
        int l = pf_qround(iscale * (x[i] - m0), 0, nmax);
        L[i] = (uint8_t)l;
        double wi = w[i];
        sw += wi; sx += wi * x[i]; sl += wi * l; sl2 += wi * l * l; sxl += wi * l * x[i];
    }
    double D = sw * sl2 - sl * sl;
    if (!(D > 0)) return false;
    double d = (sw * sxl - sx * sl) / D;
    double m = (sl2 * sx - sl * sxl) / D;
    if (clamp_min && m > 0) {
        m = 0;
        d = sxl / sl2;
    }
    if (!(d >= 0) || !isfinite(d) || !isfinite(m)) return false;
    *d_out = (float)d;
    *m_out = (float)m;
    return true;
}

float pf_search_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                       float rmin, float rdelta, int nstep, bool use_mad, bool clamp_min) {
    *neg_min = 0.0f;
    if (n <= 0 || n > PF_MAX_GROUP) return 0.0f;
    float mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (clamp_min && mn > 0) mn = 0;
    if (!(mx > mn)) { /* constant group (or NaN): offset only */
        memset(L, 0, (size_t)n);
        *neg_min = isfinite(mn) ? -mn : 0.0f;
        return 0.0f;
    }
    uint8_t tmp[PF_MAX_GROUP];
    /* Baseline: min maps to level 0, max to level nmax. */
    float best_d = (mx - mn) / (float)nmax, best_m = mn;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)pf_qround((x[i] - mn) / best_d, 0, nmax);
    double best = affine_err(n, x, w, L, best_d, best_m, use_mad);
    for (int t = 0; t <= nstep; t++) {
        float iscale = (rmin + rdelta * (float)t + (float)nmax) / (mx - mn);
        float d, m;
        if (!affine_fit(n, nmax, x, w, iscale, mn, tmp, clamp_min, &d, &m)) continue;
        double e = affine_err(n, x, w, tmp, d, m, use_mad);
        if (e < best) { best = e; best_d = d; best_m = m; memcpy(L, tmp, (size_t)n); }
    }
    /* Two Lloyd steps: re-round to the best (d, m), refit, keep while the error drops. */
    for (int it = 0; it < 2 && best_d > 0; it++) {
        float d, m;
        if (!affine_fit(n, nmax, x, w, 1.0f / best_d, best_m, tmp, clamp_min, &d, &m)) break;
        double e = affine_err(n, x, w, tmp, d, m, use_mad);
        if (!(e < best)) break;
        best = e; best_d = d; best_m = m; memcpy(L, tmp, (size_t)n);
    }
    *neg_min = -best_m;
    return best_d;
}

/* Binary search in the sorted codebook, then the nearer of the two neighbours. */
int pf_nl_index(const int8_t *values, float v) {
    if (!(v > values[0])) return 0; /* also NaN */
    if (v >= values[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < values[mid]) hi = mid; else lo = mid;
    }
    return (v - values[lo] < values[hi] - v) ? lo : hi;
}

/* Indexes x·iscale into the codebook and returns the LS sums Σ w q x and Σ w q². */
static void nl_round(int n, const int8_t *values, const float *x, const float *w, float iscale, uint8_t *L,
                     double *sqx, double *sq2) {
    double a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        int l = pf_nl_index(values, iscale * x[i]);
        L[i] = (uint8_t)l;
        double q = values[l];
        a += w[i] * q * x[i];
        b += w[i] * q * q;
    }
    *sqx = a;
    *sq2 = b;
}

float pf_search_nl(int n, const int8_t *values, const float *x, const float *w, uint8_t *L, int ntry) {
    if (n <= 0 || n > PF_MAX_GROUP) return 0.0f;
    float amax;
    float max = signed_absmax(n, x, &amax);
    memset(L, 0, (size_t)n);
    if (amax < PF_GROUP_EPS) return 0.0f;
    uint8_t tmp[PF_MAX_GROUP];
    double best_a = 0, best_b = 0;
    bool have = false;
    /* The largest |x| is mapped near either end of the codebook, shifted by t units. */
    for (int end = 0; end < 2; end++) {
        float edge = end == 0 ? (float)values[0] : (float)values[15];
        for (int t = -ntry; t <= ntry; t++) {
            float iscale = (edge + (float)t) / max;
            double a, b;
            nl_round(n, values, x, w, iscale, tmp, &a, &b);
            if (b > 0 && (!have || a * a * best_b > best_a * best_a * b)) {
                best_a = a; best_b = b; have = true;
                memcpy(L, tmp, (size_t)n);
            }
        }
    }
    if (!have) return 0.0f;
    /* Lloyd steps: re-index with the fitted scale, refit, keep while the gain grows. */
    for (int it = 0; it < 3; it++) {
        double d = best_a / best_b, a, b;
        if (d == 0.0) break;
        nl_round(n, values, x, w, (float)(1.0 / d), tmp, &a, &b);
        if (!(b > 0 && a * a * best_b > best_a * best_a * b)) break;
        best_a = a; best_b = b;
        memcpy(L, tmp, (size_t)n);
    }
    return (float)(best_a / best_b);
}

/* ---- K-quant second level ---- */

/* Nearest offset-form levels for the stored (d, dmin, ls, lm); returns the squared error. */
static double k_affine_levels(const float *x, int ng, int gs, int nmax, const uint8_t *ls, const uint8_t *lm,
                              uint16_t dh, uint16_t mh, uint8_t *L) {
    const float d = pf_fp16_to_fp32(dh), dmin = pf_fp16_to_fp32(mh);
    double e = 0.0;
    for (int g = 0; g < ng; g++) {
        const float d1 = d * (float)ls[g], m1 = dmin * (float)lm[g];
        for (int i = g * gs; i < (g + 1) * gs; i++) {
            int l = d1 != 0.0f ? pf_qround((x[i] + m1) / d1, 0, nmax) : 0;
            L[i] = (uint8_t)l;
            double diff = (double)(d1 * (float)l - m1) - x[i];
            e += diff * diff;
        }
    }
    return e;
}

/* Rounds v/scale to [0, smax] for every group (0 when scale is 0). */
static void k_quant_scales(int ng, const float *v, float vmax, int smax, uint8_t *q) {
    const float inv = vmax > 0 ? (float)smax / vmax : 0.0f;
    for (int g = 0; g < ng; g++) q[g] = (uint8_t)pf_qround(inv * v[g], 0, smax);
}

double pf_k_affine_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, const float *mn,
                          uint8_t *ls, uint8_t *lm, uint16_t *d, uint16_t *dmin, uint8_t *L) {
    float max_sc = 0.0f, max_mn = 0.0f;
    for (int g = 0; g < ng; g++) {
        if (sc[g] > max_sc) max_sc = sc[g];
        if (mn[g] > max_mn) max_mn = mn[g];
    }
    k_quant_scales(ng, sc, max_sc, smax, ls);
    k_quant_scales(ng, mn, max_mn, smax, lm);
    *d = pf_half_sat(max_sc / (float)smax);
    *dmin = pf_half_sat(max_mn / (float)smax);
    double best = k_affine_levels(x, ng, gs, nmax, ls, lm, *d, *dmin, L);
    uint8_t tmp[PF_MAX_GROUP];
    for (int it = 0; it < 2; it++) {
        /* Per group, the best of the 8 neighbours (±1) of its integer scale and min, for the
         * stored d and dmin (the groups' errors are independent). */
        for (int g = 0; g < ng; g++) {
            const float *xg = x + g * gs;
            double ge = k_affine_levels(xg, 1, gs, nmax, &ls[g], &lm[g], *d, *dmin, tmp);
            int bs = ls[g], bm = lm[g];
            for (int s2 = ls[g] - 1; s2 <= ls[g] + 1; s2++) {
                for (int m2 = lm[g] - 1; m2 <= lm[g] + 1; m2++) {
                    if (s2 < 0 || s2 > smax || m2 < 0 || m2 > smax || (s2 == ls[g] && m2 == lm[g])) continue;
                    uint8_t a = (uint8_t)s2, b = (uint8_t)m2;
                    double e = k_affine_levels(xg, 1, gs, nmax, &a, &b, *d, *dmin, tmp);
                    if (e < ge) { ge = e; bs = s2; bm = m2; }
                }
            }
            ls[g] = (uint8_t)bs;
            lm[g] = (uint8_t)bm;
        }
        best = k_affine_levels(x, ng, gs, nmax, ls, lm, *d, *dmin, L);
        /* x ≈ d·a + dmin·b with a = ls[g]·L, b = -lm[g]: 2x2 normal equations in (d, dmin). */
        double saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0;
        for (int g = 0; g < ng; g++) {
            for (int i = g * gs; i < (g + 1) * gs; i++) {
                double a = (double)ls[g] * L[i], b = -(double)lm[g];
                saa += a * a; sab += a * b; sbb += b * b; sax += a * x[i]; sbx += b * x[i];
            }
        }
        double det = saa * sbb - sab * sab, nd, nm;
        if (sbb > 0 && det > 1e-12 * saa * sbb) {
            nd = (sax * sbb - sbx * sab) / det;
            nm = (saa * sbx - sab * sax) / det;
        } else if (saa > 0) {
            nd = sax / saa;
            nm = pf_fp16_to_fp32(*dmin);
        } else {
            break;
        }
        uint16_t hd = pf_half_sat((float)nd), hm = pf_half_sat((float)nm);
        if (hd == *d && hm == *dmin) break;
        double e = k_affine_levels(x, ng, gs, nmax, ls, lm, hd, hm, tmp);
        if (!(e < best)) break;
        best = e; *d = hd; *dmin = hm;
        memcpy(L, tmp, (size_t)(ng * gs));
    }
    return best;
}

/* Nearest signed levels for the stored (d, ls); returns the squared error. */
static double k_sym_levels(const float *x, int ng, int gs, int nmax, const int8_t *ls, uint16_t dh, int8_t *L) {
    const float d = pf_fp16_to_fp32(dh);
    double e = 0.0;
    for (int g = 0; g < ng; g++) {
        const float dl = d * (float)ls[g];
        for (int i = g * gs; i < (g + 1) * gs; i++) {
            int l = dl != 0.0f ? pf_qround(x[i] / dl, -nmax, nmax - 1) : 0;
            L[i] = (int8_t)l;
            double diff = (double)(dl * (float)l) - x[i];
            e += diff * diff;
        }
    }
    return e;
}

double pf_k_sym_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, int8_t *ls,
                       uint16_t *d, int8_t *L) {
    float amax = 0.0f;
    float max = signed_absmax(ng, sc, &amax);
    if (amax < PF_GROUP_EPS) {
        memset(ls, 0, (size_t)ng);
        *d = 0;
        return k_sym_levels(x, ng, gs, nmax, ls, *d, L);
    }
    const float iscale = -(float)smax / max;
    for (int g = 0; g < ng; g++) ls[g] = (int8_t)pf_qround(iscale * sc[g], -smax, smax - 1);
    *d = pf_half_sat(1.0f / iscale);
    double best = k_sym_levels(x, ng, gs, nmax, ls, *d, L);
    int8_t tmp[PF_MAX_GROUP];
    for (int it = 0; it < 2; it++) {
        /* Per group, the better of its integer scale's neighbours (±1), for the stored d. */
        for (int g = 0; g < ng; g++) {
            const float *xg = x + g * gs;
            double ge = k_sym_levels(xg, 1, gs, nmax, &ls[g], *d, tmp);
            int bs = ls[g];
            for (int s2 = ls[g] - 1; s2 <= ls[g] + 1; s2 += 2) {
                if (s2 < -smax || s2 > smax - 1) continue;
                int8_t a = (int8_t)s2;
                double e = k_sym_levels(xg, 1, gs, nmax, &a, *d, tmp);
                if (e < ge) { ge = e; bs = s2; }
            }
            ls[g] = (int8_t)bs;
        }
        best = k_sym_levels(x, ng, gs, nmax, ls, *d, L);
        double saa = 0, sax = 0; /* x ≈ d·a with a = ls[g]·L */
        for (int g = 0; g < ng; g++) {
            for (int i = g * gs; i < (g + 1) * gs; i++) {
                double a = (double)ls[g] * L[i];
                saa += a * a; sax += a * x[i];
            }
        }
        if (!(saa > 0)) break;
        uint16_t hd = pf_half_sat((float)(sax / saa));
        if (hd == *d) break;
        double e = k_sym_levels(x, ng, gs, nmax, ls, hd, tmp);
        if (!(e < best)) break;
        best = e; *d = hd;
        memcpy(L, tmp, (size_t)(ng * gs));
    }
    return best;
}
