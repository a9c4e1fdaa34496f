/* phiforge bench-kernels [options] — matvec GB/s and matmul GFLOP/s per weight type, next to the
 * memory read bandwidth measured in the same run (`make bench` runs it). */
#include <string.h>

#include "cli.h"
#include "kernels/bench.h"

int cmd_bench_kernels(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: phiforge bench-kernels [options]\n%s", pf_bench_usage());
            return 0;
        }
    pf_bench_opts o;
    pf_error err = {0};
    if (pf_bench_parse_args(argc, argv, &o, &err) != PF_OK) return cli_fail("bench-kernels", &err);
    if (pf_bench_kernels(&o, stdout, &err) != PF_OK) return cli_fail("bench-kernels", &err);
    return 0;
}
