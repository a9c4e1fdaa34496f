/* Run-time CPU feature detection: AVX2 + FMA + F16C, and OS support for the YMM state; AVX-512
 * VNNI (+ F, BW, VL) and OS support for the ZMM / opmask state.
 * Computed on every call (a few CPUID instructions); callers cache it per pf_compute. */
#include "phiforge.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0 through XGETBV (inline asm, so this file needs no -mxsave). Only valid when OSXSAVE. */
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

bool pf_cpu_has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const unsigned need1 = (1u << 12) /* FMA */ | (1u << 27) /* OSXSAVE */ | (1u << 28) /* AVX */ |
                           (1u << 29) /* F16C */;
    if ((c & need1) != need1) return false;
    /* The OS must save/restore XMM (bit 1) and YMM (bit 2) state. */
    if ((read_xcr0() & 6u) != 6u) return false;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) != 0; /* AVX2 */
}

bool pf_cpu_has_avx512vnni(void) {
    if (!pf_cpu_has_avx2()) return false;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned need_b = (1u << 16) /* AVX512F */ | (1u << 30) /* AVX512BW */ | (1u << 31) /* AVX512VL */;
    if ((b & need_b) != need_b || (c & (1u << 11)) == 0 /* AVX512_VNNI */) return false;
    /* The OS must also save the opmask (bit 5) and upper ZMM state (bits 6, 7). */
    return (read_xcr0() & 0xE6u) == 0xE6u;
}

#else

bool pf_cpu_has_avx2(void) { return false; }
bool pf_cpu_has_avx512vnni(void) { return false; }

#endif
