/* Internal pieces of the end-to-end benchmark (`phiforge bench`). */
#ifndef PF_BENCH_INTERNAL_H
#define PF_BENCH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "phiforge.h"

/* One streaming read of bytes at p (32-byte aligned for the AVX2 path) split over the pool's
 * threads; returns GB/s. */
double pf_bench_read_gbs(pf_compute *c, const void *p, size_t bytes);

#endif
