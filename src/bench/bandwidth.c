/* Streaming read rate over a caller's buffer with every thread of a pool, through the same
 * AVX2 streaming sum that `bench-kernels` measures bandwidth with (pf_avx2_stream_sum).
 * Stand-in until src/kernels/bench.c exports its bw_run in a reusable form. */
#include "bench/bench_internal.h"

#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "kernels/kernels_internal.h"

typedef struct read_ctx {
    const uint8_t *p;
    size_t per;        /* bytes per thread, a multiple of 128 */
    bool avx2;
    double sums[256];  /* one per thread, so the reads cannot be optimized away */
} read_ctx;

static void read_task(void *vctx, int ith, int nth) {
    read_ctx *r = vctx;
    if (ith >= 256) return;
    (void)nth;
    const uint8_t *p = r->p + r->per * (size_t)ith;
#if defined(__x86_64__) || defined(__i386__)
    /* Weight bytes read as floats include denormals: flush them so no microcode assist slows
     * the adds down (the rate must be the memory's, not the FPU's). */
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
#endif
    if (r->avx2) {
        r->sums[ith] = pf_avx2_stream_sum((const float *)(const void *)p, r->per / sizeof(float));
    } else {
        uint64_t s0 = 0, s1 = 0, w[2];
        for (size_t i = 0; i < r->per; i += 16) {
            memcpy(w, p + i, 16);
            s0 += w[0], s1 += w[1];
        }
        r->sums[ith] = (double)(s0 ^ s1);
    }
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#endif
}

double pf_bench_read_gbs(pf_compute *c, const void *p, size_t bytes) {
    const int nth = pf_pool_n_threads(pf_compute_pool(c));
    read_ctx r;
    memset(&r, 0, sizeof r);
    r.avx2 = pf_compute_kernels(c)->isa == PF_ISA_AVX2 && ((uintptr_t)p & 31) == 0;
    r.p = p;
    r.per = bytes / (size_t)nth / 128 * 128;
    if (r.per == 0) return 0.0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pf_pool_run(pf_compute_pool(c), read_task, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    return dt > 0 ? (double)(r.per * (size_t)nth) / dt * 1e-9 : 0.0;
}
