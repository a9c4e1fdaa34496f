#!/usr/bin/env bash
# Ingest throughput: MB/s and chunks/s of `phiforge ingest`, lexical only and with the tiny
# embedding model, on the Vaswani abstracts (../shared/ir/vaswani, 11,429 documents, 3.5 MB)
# laid out three ways: ~950 Markdown files (12 abstracts each, one heading per abstract), one
# JSONL file (one record per abstract), and the Markdown files again unchanged (the incremental
# path: read + sha256 only). Without the collection a synthetic corpus of the same shape is used.
#   bench/bench_ingest.sh [THREADS]      (from the repository root, after make)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./build/phiforge
THREADS=${1:-0}
SRC=../shared/ir/vaswani/doc-text.trec
MODEL=../shared/golden/embed/bert-tiny-cls.gguf
[ -f "$MODEL" ] || MODEL=tests/data/bert-tiny-cls.gguf
TMP=$(mktemp -d /tmp/pf_bench_ingest.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/md" "$TMP/jsonl" "$TMP/md_small"

CORPUS="Vaswani ($SRC)"
[ -f "$SRC" ] || CORPUS="synthetic (Vaswani not found)"
if [ -f "$SRC" ]; then
    cat "$SRC"
else
    awk 'BEGIN { srand(7); split("pump filter valve pressure maintenance replace monthly gloves seal inspect torque operator safety bearing motor coolant alarm reset circuit signal", w, " ");
                 for (d = 1; d <= 11429; d++) { printf "<DOC>\n<DOCNO>%d</DOCNO>\n", d; n = 20 + int(rand() * 40);
                 for (i = 0; i < n; i++) printf "%s%s", w[1 + int(rand() * 20)], (i % 12 == 11 ? "\n" : " "); printf "\n</DOC>\n" } }'
fi | awk -v md="$TMP/md" -v small="$TMP/md_small" -v jl="$TMP/jsonl/vaswani.jsonl" '
    /^<DOCNO>/ { gsub(/<\/?DOCNO>/, ""); no = $0; text = ""; next }
    /^<DOC>/ { next }
    /^<\/DOC>/ {
        gsub(/["\\]/, " ", text)
        printf "{\"id\":\"v%s\",\"title\":\"Abstract %s\",\"text\":\"%s\"}\n", no, no, text > jl
        f = sprintf("%s/g%04d.md", md, int((no - 1) / 12))
        if (!(f in seen)) { seen[f] = 1; printf "# Abstracts %d\n\n", int((no - 1) / 12) > f }
        printf "## Abstract %s\n\n%s\n\n", no, text > f
        if (no + 0 <= 1200) { g = sprintf("%s/g%04d.md", small, int((no - 1) / 12)); printf "## Abstract %s\n\n%s\n\n", no, text > g }
        next
    }
    { text = text (text == "" ? "" : " ") $0 }'

run() { # label kb path [extra args]
    local label=$1 kb=$2 path=$3; shift 3
    local out
    out=$("$BIN" ingest --kb "$kb" -t "$THREADS" --json "$@" "$path" 2>/dev/null)
    python3 -c 'import json,sys; s=json.loads(sys.argv[2]); print("%-36s %5d files %6d chunks %6.2f MB %6.2f s %6.2f MB/s %8.1f chunks/s %7.1f files/s" % (sys.argv[1], s["files"], s["chunks"], s["bytes"]/1e6, s["seconds"], s["mb_per_s"], s["chunks_per_s"], s["files"]/max(s["seconds"],1e-9)))' "$label" "$out" 2>/dev/null ||
        echo "$label: $out"
}

echo "ingest benchmark: corpus $CORPUS, threads $([ "$THREADS" = 0 ] && echo all || echo "$THREADS") ($(nproc) online), $(date -u +%F)"
run "lexical, Markdown files"          "$TMP/kb_md"    "$TMP/md"
run "lexical, one JSONL (records)"     "$TMP/kb_jsonl" "$TMP/jsonl"
run "lexical, unchanged re-run"        "$TMP/kb_md"    "$TMP/md"
if [ -f "$MODEL" ]; then
    run "bert-tiny-cls, 100 Markdown files" "$TMP/kb_emb" "$TMP/md_small" --embed-model "$MODEL"
fi
