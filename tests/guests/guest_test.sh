#!/usr/bin/env bash
# Guest tests (CTest): run a conformance guest on softkvm emu, under QEMU TCG, or both and
# compare their serial output, or twice on emu for determinism.
#   guest_test.sh emu|qemu|diff|determinism|kvm SOFTKVM GUEST.elf
# Exit 0 = pass, 77 = skipped (QEMU missing), anything else = fail.
set -uo pipefail
mode=$1 softkvm=$2 guest=$3
cpus=${GUEST_CPUS:-1}  # processors the guest needs (softkvm --cpus, QEMU -smp)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run_emu() {  # $1 = output file, $2 = stats file
    # shellcheck disable=SC2086  # GUEST_ARGS: extra softkvm options, word-split on purpose
    "$softkvm" run --accel emu --cpus "$cpus" ${GUEST_ARGS:-} --stats-json "$2" "$guest" >"$1"
}

run_qemu() {  # $1 = output file; returns the guest's code (QEMU exits code<<1|1)
    timeout 120 qemu-system-x86_64 -accel tcg -machine pc -cpu max -smp "$cpus" -m 128M -display none \
        -vga none -no-reboot -nodefaults -serial "file:$1" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$guest"
    local st=$?
    if [ $((st & 1)) -ne 1 ]; then echo "qemu failed with status $st" >&2; return 100; fi
    return $((st >> 1))
}

check_summary() {  # $1 = output file
    if ! grep -qE '^SUMMARY: [0-9]+ passed, 0 failed$' "$1"; then
        echo "no passing SUMMARY line in the output:" >&2
        tail -20 "$1" >&2
        return 1
    fi
}

need_qemu() {
    if ! command -v qemu-system-x86_64 >/dev/null; then
        echo "SKIP: qemu-system-x86_64 is not installed"
        exit 77
    fi
}

need_kvm_long_mode() {
    local caps
    caps=$("$softkvm" caps --json)
    if ! python3 -c 'import json,sys; a={x["accelerator"]:x for x in json.load(sys.stdin)}; k=a["kvm"]; sys.exit(0 if k["available"] and any(f["name"]=="long-mode" and f["available"] for f in k["features"]) else 1)' <<<"$caps"; then
        echo "SKIP: the kvm accelerator cannot run 64-bit guests here:"
        python3 -c 'import json,sys; a={x["accelerator"]:x for x in json.load(sys.stdin)}; k=a["kvm"]; print(" ", k["detail"]); [print(" ", f["name"]+":", f["detail"]) for f in k["features"] if f["name"]=="long-mode"]' <<<"$caps"
        exit 77
    fi
}

case $mode in
skip)
    echo "SKIP: $softkvm"  # the second argument is the reason
    exit 77
    ;;
kvm)
    need_kvm_long_mode
    "$softkvm" run --accel kvm "$guest" >"$tmp/out"
    st=$?
    cat "$tmp/out"
    [ $st -eq 0 ] || { echo "softkvm --accel kvm exit status $st" >&2; exit 1; }
    check_summary "$tmp/out" || exit 1
    ;;
emu)
    run_emu "$tmp/out" "$tmp/stats.json"
    st=$?
    cat "$tmp/out"
    [ $st -eq 0 ] || { echo "softkvm exit status $st" >&2; exit 1; }
    check_summary "$tmp/out" || exit 1
    ;;
qemu)
    need_qemu
    run_qemu "$tmp/out"
    st=$?
    cat "$tmp/out"
    [ $st -eq 0 ] || { echo "guest exit code $st under QEMU" >&2; exit 1; }
    check_summary "$tmp/out" || exit 1
    ;;
diff)
    need_qemu
    run_emu "$tmp/emu" "$tmp/stats.json"
    emu_st=$?
    run_qemu "$tmp/qemu"
    qemu_st=$?
    if ! diff -u "$tmp/qemu" "$tmp/emu"; then
        echo "serial output differs between QEMU TCG (-) and softkvm emu (+)" >&2
        exit 1
    fi
    [ $emu_st -eq $qemu_st ] || { echo "exit codes differ: emu $emu_st, qemu $qemu_st" >&2; exit 1; }
    echo "identical output ($(wc -l <"$tmp/emu") lines), exit code $emu_st on both"
    ;;
determinism)
    run_emu "$tmp/out1" "$tmp/s1.json" || exit 1
    run_emu "$tmp/out2" "$tmp/s2.json" || exit 1
    cmp -s "$tmp/out1" "$tmp/out2" || { echo "output differs between two runs" >&2; exit 1; }
    i1=$(grep -o '"instructions": [0-9]*' "$tmp/s1.json")
    i2=$(grep -o '"instructions": [0-9]*' "$tmp/s2.json")
    [ -n "$i1" ] && [ "$i1" = "$i2" ] || { echo "instruction counts differ: $i1 vs $i2" >&2; exit 1; }
    echo "two runs: identical output, $i1"
    ;;
*)
    echo "usage: $0 emu|qemu|diff|determinism SOFTKVM GUEST.elf" >&2
    exit 2
    ;;
esac
