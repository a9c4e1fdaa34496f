#!/usr/bin/env bash
# HNSW benchmark: phiforge's vector index vs Debian's hnswlib (libhnswlib-dev), same data, same
# queries, same process. Builds build/libphiforge.a (release) if needed, compiles the harness and
# the hnswlib peer, runs it and prints the comparison tables (markdown).
#   bench/run_hnsw_bench.sh                      # 100k x 384, 1000 queries, M 16, efc 200 (a few minutes)
#   bench/run_hnsw_bench.sh --n 20000 --reps 1   # quick look
# Options: --n --dim --queries --clusters --sigma --M --efc --reps --storage f32,f16,i8 --peer 0|1
# hnswlib is compiled as its own build recommends (-O3 -march=native: AVX-512 where the CPU has
# it); libphiforge as `make` builds it (-O2, AVX2 kernels chosen at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/include/hnswlib/hnswlib.h ]; then
    echo "run_hnsw_bench: /usr/include/hnswlib/hnswlib.h missing (apt-get install libhnswlib-dev)" >&2
    exit 1
fi
make -s build/libphiforge.a
mkdir -p build/bench
g++ -std=c++11 -O3 -march=native -DNDEBUG -w -c bench/hnswlib_peer.cpp -o build/bench/hnswlib_peer.o
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow -Iinclude -c bench/hnsw_bench.c -o build/bench/hnsw_bench.o
DEPS_LIBS=$(pkg-config --libs sqlite3 libutf8proc libxml-2.0 poppler-glib libzip libcjson 2>/dev/null || true)
g++ -pthread -o build/bench/hnsw_bench build/bench/hnsw_bench.o build/bench/hnswlib_peer.o build/libphiforge.a \
    $DEPS_LIBS -lm
exec build/bench/hnsw_bench "$@"
