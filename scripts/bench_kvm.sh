#!/usr/bin/env bash
# The kvm accelerator beside QEMU's KVM on the same /dev/kvm, in the same run: wall time
# of `softkvm run --accel kvm` and of `qemu-system-x86_64 -accel kvm -cpu host` on
#   hello.elf      start-up: the guest prints two lines and exits at once, so the time
#                  is mostly creating the VM, loading the image and entering 64-bit mode;
#   bench_mmio.elf run time: 220,000 MMIO accesses, each an exit to the VMM.
# The median of 3 runs each. Usage: bench_kvm.sh BUILD_DIR
set -uo pipefail
build=${1:-build}
softkvm=$build/src/cli/softkvm
runs=3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v qemu-system-x86_64 >/dev/null || { echo "bench_kvm: qemu-system-x86_64 is missing" >&2; exit 69; }
if ! "$softkvm" caps --json | python3 -c 'import json,sys
k={a["accelerator"]:a for a in json.load(sys.stdin)}["kvm"]
sys.exit(0 if k["available"] and any(f["name"]=="long-mode" and f["available"] for f in k["features"]) else 1)'; then
    echo "bench_kvm: skipped, the kvm accelerator cannot run 64-bit guests here (softkvm caps)"
    exit 0
fi

seconds() {  # command...: wall seconds; the command's output goes to $tmp/out
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$tmp/out" 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

printf '%-16s %12s %14s %14s\n' guest "softkvm kvm s" "qemu kvm s" "softkvm/qemu"
for g in hello bench_mmio; do
    image=$build/guests/$g.elf
    ours=() theirs=()
    for ((k = 0; k < runs; ++k)); do
        ours+=("$(seconds "$softkvm" run --accel kvm "$image")")
        grep -qE "0x[0-9a-f]+" "$tmp/out" || { echo "bench_kvm: softkvm failed on $g" >&2; cat "$tmp/out" >&2; exit 1; }
        theirs+=("$(seconds qemu-system-x86_64 -accel kvm -cpu host -machine pc -m 128M \
            -display none -vga none -no-reboot -nodefaults -serial "file:$tmp/qemu" \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$image")")
        grep -qE "0x[0-9a-f]+" "$tmp/qemu" || { echo "bench_kvm: QEMU's KVM failed on $g" >&2; exit 1; }
    done
    a=$(median "${ours[@]}") b=$(median "${theirs[@]}")
    printf '%-16s %12.3f %14.3f %14.2f\n' "$g" "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
