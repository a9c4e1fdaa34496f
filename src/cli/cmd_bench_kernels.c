/* phiforge bench-kernels — placeholder until src/kernels/bench.c lands (wired by the lead). */
#include "cli.h"

int cmd_bench_kernels(int argc, char **argv) {
    (void)argc, (void)argv;
    return cli_failf("bench-kernels", "not wired yet");
}
