/* Kernel benchmark (`phiforge bench-kernels`): measures this machine's memory read bandwidth
 * (multithreaded AVX2 streaming sum over a buffer much larger than the last-level cache, best
 * of several runs, before and after), then per weight type the matvec weight-streaming rate
 * (GB/s of weight bytes over a matrix of >= 128 MiB) against the streaming-sum bandwidth of
 * the same bytes measured interleaved with the matvec runs (a shared VM's bandwidth drifts by
 * tens of percent within seconds), and the matmul rate (GFLOP/s), plus the thread pool's
 * dispatch latency. Prints a table, or JSON. */
#ifndef PF_KERNELS_BENCH_H
#define PF_KERNELS_BENCH_H

#include <stdio.h>

#include "phiforge.h"

typedef struct pf_bench_opts {
    int n_threads;          /* pool size; <= 0: online CPUs                                */
    pf_isa isa;             /* kernel table (PF_ISA_AUTO by default)                        */
    int64_t mv_rows, mv_cols; /* matvec weight shape (default 16384 x 8192)                 */
    size_t mv_min_bytes;    /* more rows until the matvec matrix has this many bytes (128 MiB) */
    int64_t mm_rows, mm_cols, mm_tokens; /* matmul shape (default 4096 x 4096, 64 tokens) */
    int reps;               /* timed repetitions; the best is reported (default 10)        */
    size_t bw_bytes;        /* bandwidth buffer (default 512 MiB, 16x a 32 MiB LLC)         */
    bool json;              /* JSON instead of the table                                   */
    bool help;              /* --help was given: print pf_bench_usage() instead of running */
    char types[256];        /* comma-separated type names; "" = every weight type          */
} pf_bench_opts;

/* Fills the defaults above. */
void pf_bench_default_opts(pf_bench_opts *o);

/* Parses command-line options (argv[0] is the command name and is skipped):
 *   --threads N  --isa auto|scalar|avx2  --types Q4_0,Q4_K,...  --reps N
 *   --mv-rows N --mv-cols N --mv-min-mib N  --mm-rows N --mm-cols N --mm-tokens N  --bw-mib N
 *   --quick (small shapes, for smoke tests)  --json  --help (sets o->help)
 * Starts from the defaults. PF_ERR_ARG with a message on a bad option. */
int pf_bench_parse_args(int argc, char **argv, pf_bench_opts *o, pf_error *err);

/* Usage text for the options above. */
const char *pf_bench_usage(void);

/* GB/s of one streaming read of `bytes` of `buf` with every thread of c's pool (AVX2 sum when
 * buf is 32-byte aligned); the bandwidth reference of both benchmarks. */
double pf_bench_stream_read(pf_compute *c, const void *buf, size_t bytes);

/* Runs the benchmark and writes the report to `out`. */
int pf_bench_kernels(const pf_bench_opts *o, FILE *out, pf_error *err);

#endif
