#!/usr/bin/env bash
# Runs every test binary given, from the repository root, and prints one closing line
# "N passed, N failed" that sums the per-binary counts (each binary ends with such a line).
# A binary that exits non-zero without reporting a failure (a crash, a sanitizer report)
# counts as one failure.
set -u
total_pass=0; total_fail=0; crashed=()
for t in "$@"; do
    echo "== $t"
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1)
    printf '%s\n' "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed'
    p=0; f=0
    if [ -n "$line" ]; then
        p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
        echo "   ($line)"
    fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        crashed+=("$t (exit $rc)"); total_fail=$((total_fail + 1))
    fi
done
for c in "${crashed[@]+"${crashed[@]}"}"; do echo "CRASHED: $c"; done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
