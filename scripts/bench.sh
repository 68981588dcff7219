#!/usr/bin/env bash
# make bench: guest instructions per second on softkvm emu, under each of its engines
# (--engine interp, translate: docs/translator.md), beside QEMU TCG's time on the same
# guest, measured in one run (the machines are noisy: compare the ratios).
# Usage: bench.sh BUILD_DIR [--json]
set -euo pipefail
build=${1:-build}
json=${2:-}
softkvm=$build/src/cli/softkvm
guests=(bench_intloop bench_branch bench_call bench_memory bench_syscall bench_atomic bench_mmio)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v qemu-system-x86_64 >/dev/null || { echo "bench: qemu-system-x86_64 is missing" >&2; exit 69; }

rows=()
for g in "${guests[@]}"; do
    image=$build/guests/$g.elf
    if ! "$softkvm" run --quiet --engine interp --stats-json "$tmp/$g.json" "$image"; then
        echo "bench: softkvm emu failed on $g" >&2
        exit 1
    fi
    insns=$(sed -n 's/.*"instructions": \([0-9]*\).*/\1/p' "$tmp/$g.json")
    emu_s=$(sed -n 's/.*"seconds": \([0-9.e+-]*\).*/\1/p' "$tmp/$g.json")
    if ! "$softkvm" run --quiet --engine translate --stats-json "$tmp/$g.x.json" "$image"; then
        echo "bench: softkvm emu --engine translate failed on $g" >&2
        exit 1
    fi
    x_insns=$(sed -n 's/.*"instructions": \([0-9]*\).*/\1/p' "$tmp/$g.x.json")
    [ "$x_insns" = "$insns" ] || { echo "bench: $g: $insns instructions interpreted, $x_insns translated" >&2; exit 1; }
    xl_s=$(sed -n 's/.*"seconds": \([0-9.e+-]*\).*/\1/p' "$tmp/$g.x.json")
    t0=$(date +%s.%N)
    timeout 600 qemu-system-x86_64 -accel tcg -machine pc -cpu max -m 128M -display none \
        -vga none -no-reboot -nodefaults -serial "file:$tmp/$g.qemu" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$image" || true
    t1=$(date +%s.%N)
    qemu_s=$(echo "$t1 - $t0" | bc -l)
    grep -q "checksum" "$tmp/$g.qemu" || { echo "bench: QEMU run of $g failed" >&2; exit 1; }
    rows+=("$g $insns $emu_s $xl_s $qemu_s")
done

if [ "$json" = "--json" ]; then
    echo "["
    n=0
    for r in "${rows[@]}"; do
        read -r g insns emu_s xl_s qemu_s <<<"$r"
        [ $n -gt 0 ] && echo ","
        printf '  {"guest": "%s", "instructions": %s, "emu_seconds": %.3f, "emu_mips": %.1f, "translate_seconds": %.3f, "qemu_seconds": %.3f, "emu_over_qemu": %.2f, "translate_over_qemu": %.2f}' \
            "$g" "$insns" "$emu_s" "$(echo "$insns / $emu_s / 1000000" | bc -l)" "$xl_s" \
            "$qemu_s" "$(echo "$emu_s / $qemu_s" | bc -l)" "$(echo "$xl_s / $qemu_s" | bc -l)"
        n=$((n + 1))
    done
    echo
    echo "]"
else
    printf '%-16s %14s %10s %9s %12s %11s %12s %12s\n' guest instructions "interp s" "interp MIPS" \
        "translate s" "qemu-tcg s" "interp/qemu" "transl/qemu"
    for r in "${rows[@]}"; do
        read -r g insns emu_s xl_s qemu_s <<<"$r"
        printf '%-16s %14s %10.3f %11.1f %12.3f %11.3f %12.2f %12.2f\n' "$g" "$insns" "$emu_s" \
            "$(echo "$insns / $emu_s / 1000000" | bc -l)" "$xl_s" "$qemu_s" \
            "$(echo "$emu_s / $qemu_s" | bc -l)" "$(echo "$xl_s / $qemu_s" | bc -l)"
    done
fi

if [ "$json" != "--json" ]; then
    echo
    "$(dirname "$0")/bench_buslock.sh" "$build"
    echo
    "$(dirname "$0")/bench_kvm.sh" "$build"
    echo
    "$(dirname "$0")/bench_lbr.sh" "$build"
    echo
    "$(dirname "$0")/bench_linux.sh" "$build"
fi
