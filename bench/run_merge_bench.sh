#!/usr/bin/env bash
# Merge benchmark (a minute or so on phi3-mini): builds the release library, compiles
# bench/bench_merge.c and merges a random rank-16 all-linear adapter into MODEL.
#   bench/run_merge_bench.sh /tmp/phi3-mini-q4_0.gguf [RANK] [THREADS]
# (make one with: build/phiforge init --preset phi3-mini --type Q4_0 -o /tmp/phi3-mini-q4_0.gguf)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libphiforge.a
mkdir -p build/bench
DEPS_LIBS=$(pkg-config --libs sqlite3 libutf8proc libxml-2.0 poppler-glib libzip libcjson 2>/dev/null || true)
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow -Iinclude -pthread -o build/bench/bench_merge \
    bench/bench_merge.c build/libphiforge.a $DEPS_LIBS -lm
exec build/bench/bench_merge "$@"
