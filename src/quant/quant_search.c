/* Scale searches shared by the reference quantizers. See quant_search.h for the contracts. */
#include "quant/quant_search.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "phiforge.h"

#define PF_GROUP_EPS 1e-15f /* a group whose largest |x| is below this quantizes to zeros */
#define PF_MAX_GROUP 32     /* first-level groups */
#define PF_MAX_SUPER 256    /* super-blocks */

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

static inline float sum4(const float *a) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* ---- first level ---- */

float pf_fit_sym(int n, int nmax, const float *x, const float *w, int ntry, float step) {
    float ww[PF_MAX_GROUP];
    float amax;
    const float max = signed_absmax(n, x, &amax);
    if (!(amax >= PF_GROUP_EPS) || !(amax <= FLT_MAX)) return 0.0f;
    for (int i = 0; i < n; i++) ww[i] = w ? w[i] : 1.0f;
    double best_a = 0.0, best_b = 0.0;
    const float imax = -1.0f / max;
    /* t = 0 first (the largest |x| lands exactly on level -nmax), so ties keep it. */
    for (int k = 0; k <= 2 * ntry; k++) {
        const int t = k == 0 ? 0 : (k <= ntry ? -k : k - ntry);
        const float is = ((float)nmax + step * (float)t) * imax;
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
        for (int i = 0; i < n; i += 4)
            for (int j = 0; j < 4; j++) {
                const float l = (float)pf_clampi(pf_nearest(is * x[i + j]), -nmax, nmax - 1);
                const float wl = ww[i + j] * l;
                a[j] += wl * x[i + j];
                b[j] += wl * l;
            }
        const double sa = sum4(a), sb = sum4(b);
        if (sb > 0 && (best_b == 0.0 || sa * sa * best_b > best_a * best_a * sb)) {
            best_a = sa;
            best_b = sb;
        }
    }
    if (!(best_b > 0)) return max / -(float)nmax; /* all weights zero: amax scaling */
    return (float)(best_a / best_b);
}

float pf_fit_affine(int n, int nmax, const float *x, const float *w, float rmin, float rdelta, int nstep,
                    float *mneg) {
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    if (mn > 0) mn = 0;
    const float range = mx - mn;
    if (!(range > 0) || !(range <= FLT_MAX) || !(mn >= -FLT_MAX)) { /* constant, or non-finite */
        *mneg = (mn >= -FLT_MAX && mn <= 0) ? -mn : 0.0f;
        return 0.0f;
    }
    float xm[PF_MAX_GROUP], ww[PF_MAX_GROUP];
    float s0[4] = {0, 0, 0, 0}, s1[4] = {0, 0, 0, 0}, s2[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i += 4)
        for (int j = 0; j < 4; j++) {
            const float wi = w ? w[i + j] : 1.0f, v = x[i + j] - mn;
            xm[i + j] = v;
            ww[i + j] = wi;
            s0[j] += wi;
            s1[j] += wi * v;
            s2[j] += wi * v * v;
        }
    const double sw = sum4(s0), sx = sum4(s1), sxx = sum4(s2);
    /* Fallback (no usable fit): ggml's initial min -> 0, max -> nmax. */
    double best = INFINITY, best_d = range / (float)nmax, best_m = mn;
    for (int t = 0; t <= nstep; t++) {
        const float is = (rmin + rdelta * (float)t + (float)nmax) / range;
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
        for (int i = 0; i < n; i += 4)
            for (int j = 0; j < 4; j++) {
                const float l = (float)pf_clampi(pf_nearest(is * xm[i + j]), 0, nmax);
                const float wl = ww[i + j] * l;
                a[j] += wl;
                b[j] += wl * l;
                c[j] += wl * xm[i + j];
            }
        const double sl = sum4(a), sll = sum4(b), sxl = sum4(c);
        const double D = sw * sll - sl * sl;
        if (!(D > 0)) continue;
        /* xm ≈ d·l + cm, i.e. x ≈ d·l + (cm + mn); the offset cm + mn must stay <= 0. */
        double d = (sw * sxl - sx * sl) / D, cm = (sll * sx - sl * sxl) / D, e;
        if (cm + mn > 0) {
            cm = -mn;
            d = (sxl + mn * sl) / sll;
            e = sxx - 2.0 * cm * sx + cm * cm * sw - d * (sxl - cm * sl);
        } else {
            e = sxx - d * sxl - cm * sx;
        }
        if (d >= 0 && e < best) {
            best = e;
            best_d = d;
            best_m = cm + mn;
        }
    }
    if (best < INFINITY && best_d > 0) { /* one Lloyd step: re-round with the best fit, refit */
        const float id = (float)(1.0 / best_d), c0 = (float)(best_m - mn);
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
        for (int i = 0; i < n; i += 4)
            for (int j = 0; j < 4; j++) {
                const float l = (float)pf_clampi(pf_nearest((xm[i + j] - c0) * id), 0, nmax);
                const float wl = ww[i + j] * l;
                a[j] += wl;
                b[j] += wl * l;
                c[j] += wl * xm[i + j];
            }
        const double sl = sum4(a), sll = sum4(b), sxl = sum4(c);
        const double D = sw * sll - sl * sl;
        double d = 0, cm = 0, e = INFINITY;
        if (D > 0) {
            d = (sw * sxl - sx * sl) / D;
            cm = (sll * sx - sl * sxl) / D;
            if (cm + mn > 0) {
                cm = -mn;
                d = (sxl + mn * sl) / sll;
                e = sxx - 2.0 * cm * sx + cm * cm * sw - d * (sxl - cm * sl);
            } else {
                e = sxx - d * sxl - cm * sx;
            }
        }
        if (d >= 0 && e < best) {
            best_d = d;
            best_m = cm + mn;
        }
    }
    *mneg = (float)-best_m;
    return (float)best_d;
}

/* ---- K-quant second level ---- */

/* Largest |x| of a group (for the fast-rounding bound). */
static float group_amax(const float *x, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        m = a > m ? a : m;
    }
    return m;
}

/* Offset form, one group: levels nearest to (x + m1)/d1 in [0, nmax] for the decoder's d1 and m1;
 * returns Σ (d1·l - m1 - x)² and stores the levels when L != NULL. */
static float affine_group(const float *x, int gs, int nmax, float d1, float m1, float gamax, uint8_t *L) {
    float e[4] = {0, 0, 0, 0};
    if (d1 == 0.0f) {
        for (int i = 0; i < gs; i += 4)
            for (int j = 0; j < 4; j++) {
                const float diff = -m1 - x[i + j];
                e[j] += diff * diff;
            }
        if (L) memset(L, 0, (size_t)gs);
        return sum4(e);
    }
    const float id = 1.0f / d1;
    if (!((gamax + fabsf(m1)) * fabsf(id) < PF_FAST_LIMIT)) { /* odd magnitudes: exact slow path */
        float s = 0.0f;
        for (int i = 0; i < gs; i++) {
            const int l = pf_qround((x[i] + m1) * id, 0, nmax);
            if (L) L[i] = (uint8_t)l;
            const float diff = d1 * (float)l - m1 - x[i];
            s += diff * diff;
        }
        return s;
    }
    for (int i = 0; i < gs; i += 4)
        for (int j = 0; j < 4; j++) {
            const float l = (float)pf_clampi(pf_nearest((x[i + j] + m1) * id), 0, nmax);
            const float diff = d1 * l - m1 - x[i + j];
            e[j] += diff * diff;
        }
    if (L)
        for (int i = 0; i < gs; i++) L[i] = (uint8_t)pf_clampi(pf_nearest((x[i] + m1) * id), 0, nmax);
    return sum4(e);
}

/* State of an offset-form super-block encoding. */
typedef struct {
    const float *x;
    int ng, gs, nmax, smax;
    float gamax[PF_MAX_SUPER / 16], ge[PF_MAX_SUPER / 16];
    uint8_t *ls, *lm, *L;
    uint16_t d, dmin;
    float fd, fm;
} kaff;

static double kaff_eval(kaff *k, float fd, float fm, float *ge, bool store) {
    double t = 0.0;
    for (int g = 0; g < k->ng; g++) {
        ge[g] = affine_group(k->x + g * k->gs, k->gs, k->nmax, fd * (float)k->ls[g], fm * (float)k->lm[g], k->gamax[g],
                             store ? k->L + g * k->gs : NULL);
        t += ge[g];
    }
    return t;
}

/* Least-squares refit of (d, dmin) for the current integers: x ≈ d·a + dmin·b with
 * a = ls[g]·L, b = -lm[g] (2x2 normal equations), kept when the error drops. k->L must hold
 * the levels of the current encoding. */
static void kaff_refit(kaff *k, double *total) {
    const int gs = k->gs;
    double saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0;
    for (int g = 0; g < k->ng; g++) {
        const uint8_t *Lg = k->L + g * gs;
        const float *xg = k->x + g * gs;
        float p[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0}, r[4] = {0, 0, 0, 0}, s[4] = {0, 0, 0, 0};
        for (int i = 0; i < gs; i += 4)
            for (int j = 0; j < 4; j++) {
                const float l = (float)Lg[i + j];
                p[j] += l;
                q[j] += l * l;
                r[j] += l * xg[i + j];
                s[j] += xg[i + j];
            }
        const double A = k->ls[g], B = -(double)k->lm[g];
        saa += A * A * sum4(q);
        sab += A * B * sum4(p);
        sbb += B * B * gs;
        sax += A * sum4(r);
        sbx += B * sum4(s);
    }
    const double det = saa * sbb - sab * sab;
    double nd = -1, nm = -1;
    if (sbb > 0 && det > 1e-12 * saa * sbb) {
        nd = (sax * sbb - sbx * sab) / det;
        nm = (saa * sbx - sab * sax) / det;
    } else if (saa > 0) {
        nd = sax / saa;
        nm = k->fm;
    }
    if (!(nd >= 0 && nm >= 0)) return;
    const uint16_t hd = pf_half_sat((float)nd), hm = pf_half_sat((float)nm);
    if (hd == k->d && hm == k->dmin) return;
    const float td = pf_fp16_to_fp32(hd), tm = pf_fp16_to_fp32(hm);
    float te[PF_MAX_SUPER / 16];
    const double t = kaff_eval(k, td, tm, te, false);
    if (t < *total) {
        *total = t;
        k->d = hd;
        k->dmin = hm;
        k->fd = td;
        k->fm = tm;
        memcpy(k->ge, te, sizeof(float) * (size_t)k->ng);
    }
}

/* Each group tries the 8 neighbours (±1) of its integer scale and min for the stored d and dmin
 * (the groups' errors are independent); the best strict improvement is kept. */
static void kaff_nudge(kaff *k) {
    const int smax = k->smax;
    for (int g = 0; g < k->ng; g++) {
        const int s0 = k->ls[g], m0 = k->lm[g];
        int bs = s0, bm = m0;
        for (int s = s0 - 1; s <= s0 + 1; s++) {
            for (int m = m0 - 1; m <= m0 + 1; m++) {
                if (s < 0 || s > smax || m < 0 || m > smax || (s == s0 && m == m0)) continue;
                const float e = affine_group(k->x + g * k->gs, k->gs, k->nmax, k->fd * (float)s, k->fm * (float)m,
                                             k->gamax[g], NULL);
                if (e < k->ge[g]) {
                    k->ge[g] = e;
                    bs = s;
                    bm = m;
                }
            }
        }
        k->ls[g] = (uint8_t)bs;
        k->lm[g] = (uint8_t)bm;
    }
}

double pf_k_affine_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, const float *mn,
                          uint8_t *ls, uint8_t *lm, uint16_t *d, uint16_t *dmin, uint8_t *L) {
    kaff k = {.x = x, .ng = ng, .gs = gs, .nmax = nmax, .smax = smax, .ls = ls, .lm = lm, .L = L};
    float max_sc = 0.0f, max_mn = 0.0f;
    for (int g = 0; g < ng; g++) {
        max_sc = sc[g] > max_sc ? sc[g] : max_sc;
        max_mn = mn[g] > max_mn ? mn[g] : max_mn;
        k.gamax[g] = group_amax(x + g * gs, gs);
    }
    /* ggml's rule: the largest scale and min map to smax. */
    const float inv_s = max_sc > 0 ? (float)smax / max_sc : 0.0f, inv_m = max_mn > 0 ? (float)smax / max_mn : 0.0f;
    for (int g = 0; g < ng; g++) {
        ls[g] = (uint8_t)pf_clampi(pf_nearest(inv_s * sc[g]), 0, smax);
        lm[g] = (uint8_t)pf_clampi(pf_nearest(inv_m * mn[g]), 0, smax);
    }
    k.d = pf_half_sat(max_sc / (float)smax);
    k.dmin = pf_half_sat(max_mn / (float)smax);
    k.fd = pf_fp16_to_fp32(k.d);
    k.fm = pf_fp16_to_fp32(k.dmin);
    double total = kaff_eval(&k, k.fd, k.fm, k.ge, true);
    kaff_refit(&k, &total);
    kaff_nudge(&k);
    *d = k.d;
    *dmin = k.dmin;
    return kaff_eval(&k, k.fd, k.fm, k.ge, true);
}

/* Signed form, one group: levels nearest to x/dl in [-nmax, nmax-1]; returns Σ (dl·l - x)². */
static float sym_group(const float *x, int gs, int nmax, float dl, float gamax, int8_t *L) {
    float e[4] = {0, 0, 0, 0};
    if (dl == 0.0f) {
        for (int i = 0; i < gs; i += 4)
            for (int j = 0; j < 4; j++) e[j] += x[i + j] * x[i + j];
        if (L) memset(L, 0, (size_t)gs);
        return sum4(e);
    }
    const float id = 1.0f / dl;
    if (!(gamax * fabsf(id) < PF_FAST_LIMIT)) {
        float s = 0.0f;
        for (int i = 0; i < gs; i++) {
            const int l = pf_qround(x[i] * id, -nmax, nmax - 1);
            if (L) L[i] = (int8_t)l;
            const float diff = dl * (float)l - x[i];
            s += diff * diff;
        }
        return s;
    }
    for (int i = 0; i < gs; i += 4)
        for (int j = 0; j < 4; j++) {
            const float l = (float)pf_clampi(pf_nearest(x[i + j] * id), -nmax, nmax - 1);
            const float diff = dl * l - x[i + j];
            e[j] += diff * diff;
        }
    if (L)
        for (int i = 0; i < gs; i++) L[i] = (int8_t)pf_clampi(pf_nearest(x[i] * id), -nmax, nmax - 1);
    return sum4(e);
}

double pf_k_sym_encode(const float *x, int ng, int gs, int nmax, int smax, const float *sc, int8_t *ls,
                       uint16_t *d, int8_t *L) {
    float amax = 0.0f, gamax[PF_MAX_SUPER / 16], ge[PF_MAX_SUPER / 16];
    const float max = signed_absmax(ng, sc, &amax);
    for (int g = 0; g < ng; g++) gamax[g] = group_amax(x + g * gs, gs);
    if (!(amax >= PF_GROUP_EPS)) {
        for (int g = 0; g < ng; g++) ls[g] = 0;
        *d = 0;
        double t = 0.0;
        for (int g = 0; g < ng; g++) t += sym_group(x + g * gs, gs, nmax, 0.0f, gamax[g], L + g * gs);
        return t;
    }
    /* ggml's rule: the scale of largest magnitude maps to -smax. */
    const float iscale = -(float)smax / max;
    for (int g = 0; g < ng; g++) ls[g] = (int8_t)pf_clampi(pf_nearest(iscale * sc[g]), -smax, smax - 1);
    *d = pf_half_sat(1.0f / iscale);
    float fd = pf_fp16_to_fp32(*d);
    double total = 0.0;
    for (int g = 0; g < ng; g++) {
        ge[g] = sym_group(x + g * gs, gs, nmax, fd * (float)ls[g], gamax[g], L + g * gs);
        total += ge[g];
    }

    /* Least-squares refit of d for the chosen integers (x ≈ d·a, a = ls[g]·L). */
    {
        double saa = 0, sax = 0;
        for (int g = 0; g < ng; g++) {
            const int8_t *Lg = L + g * gs;
            const float *xg = x + g * gs;
            float q[4] = {0, 0, 0, 0}, r[4] = {0, 0, 0, 0};
            for (int i = 0; i < gs; i += 4)
                for (int j = 0; j < 4; j++) {
                    const float l = (float)Lg[i + j];
                    q[j] += l * l;
                    r[j] += l * xg[i + j];
                }
            saa += (double)ls[g] * ls[g] * sum4(q);
            sax += (double)ls[g] * sum4(r);
        }
        if (saa > 0) {
            const uint16_t hd = pf_half_sat((float)(sax / saa));
            if (hd != *d) {
                const float td = pf_fp16_to_fp32(hd);
                float te[PF_MAX_SUPER / 16];
                double t = 0.0;
                for (int g = 0; g < ng; g++) {
                    te[g] = sym_group(x + g * gs, gs, nmax, td * (float)ls[g], gamax[g], NULL);
                    t += te[g];
                }
                if (t < total) {
                    total = t;
                    *d = hd;
                    fd = td;
                    memcpy(ge, te, sizeof(float) * (size_t)ng);
                }
            }
        }
    }

    /* Each group tries the neighbours (±1) of its integer scale for the stored d. */
    for (int g = 0; g < ng && fd != 0.0f; g++) {
        const int s0 = ls[g];
        for (int s = s0 - 1; s <= s0 + 1; s += 2) {
            if (s < -smax || s > smax - 1) continue;
            const float e = sym_group(x + g * gs, gs, nmax, fd * (float)s, gamax[g], NULL);
            if (e < ge[g]) {
                ge[g] = e;
                ls[g] = (int8_t)s;
            }
        }
    }
    total = 0.0;
    for (int g = 0; g < ng; g++) total += sym_group(x + g * gs, gs, nmax, fd * (float)ls[g], gamax[g], L + g * gs);
    return total;
}
