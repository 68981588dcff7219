#!/usr/bin/env bash
# cpu_seeds.sh GUEST_DIR OUT_DIR: seeds for fuzz_cpu from the conformance guests. Each
# guest's .text is cut into 1 KiB pieces (at most 16 per guest); a seed is the fuzz
# target's 72-byte header (all zero: 64-bit mode, CPL 0, MMIO answered at once) followed
# by one piece.
set -euo pipefail
guests=$1 out=$2
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 72 /dev/zero >"$tmp/header"
n=0
for g in "$guests"/test_*.elf64; do
    [ -f "$g" ] || continue
    name=$(basename "$g" .elf64)
    objcopy -O binary --only-section=.text "$g" "$tmp/text" 2>/dev/null || continue
    size=$(stat -c %s "$tmp/text")
    for ((k = 0; k < 16 && k * 1024 < size; ++k)); do
        { cat "$tmp/header"; dd if="$tmp/text" bs=1024 skip=$k count=1 status=none; } \
            >"$out/$name-$k"
        n=$((n + 1))
    done
done
echo "cpu_seeds: $n seeds in $out"
