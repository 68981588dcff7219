#!/usr/bin/env bash
# Linux boot benchmark (part of make bench): Debian's kernel and the BusyBox initramfs
# (scripts/linux_assets.sh) from the entry point to the guest's power-off, on softkvm emu
# with each engine and under QEMU TCG, measured in one run. The guest does the same work
# on each: the kernel boots, /init runs `uname -a`, and powers off (ACPI S5).
#
# The peer is QEMU TCG with `-machine q35 -cpu Skylake-Client`, the machine guest.linux.bootlog
# compares Linux's view with: an Intel family 6 model 0x5E CPU like emu's default model, so
# the kernel picks the same speculation mitigations (retpolines, return thunks, buffer clears
# on every return to user mode) and does the same work. `-cpu max` is an AMD-flavoured CPU
# whose kernel skips some of them; it is measured too, for reference.
#
# The translating engine and the peers run RUNS times (default 3), alternating, so that a
# noisy machine slows each alike; the interpreter runs once (INTERP=0 skips it). Each run
# prints its wall and CPU seconds (user + system); the summary gives the best of each and
# the translator's ratio to the peer. softkvm counts guest time in instructions, QEMU in host
# time, so the guests' own clocks differ. Usage: [RUNS=N] [INTERP=0] bench_linux.sh BUILD_DIR
set -uo pipefail
build=${1:-build}
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")" && pwd)
softkvm=$build/src/cli/softkvm
assets=$build/linux-assets
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Linux boot to power-off (Debian 6.1 kernel, BusyBox /init running uname -a)"
if ! "$here/linux_assets.sh" "$assets" >"$tmp/assets.log" 2>&1; then
    echo "skipped: scripts/linux_assets.sh could not build the assets ($(tail -n 1 "$tmp/assets.log"))"
    exit 0
fi
append="console=ttyS0 nokaslr i8042.noaux i8042.nomux panic=-1 softkvm.run=uname,-a"

# run NAME CMD...: runs CMD with its output in $tmp/NAME.out; prints "wall cpu status".
run() {
    local name=$1 TIMEFORMAT='%R %U %S' t st
    shift
    t=$({ time "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>&1)
    st=$?
    awk -v s="$st" '{ printf "%.2f %.2f %s\n", $1, $2 + $3, s }' <<<"$t"
}
softkvm_run() {  # ENGINE: one boot
    "$softkvm" run --engine "$1" --memory 256M --max-insns 20000000000 \
        --kernel "$assets/vmlinuz" --initrd "$assets/initramfs.cpio" --append "$append" \
        --stats-json "$tmp/$1.json"
}
qemu_run() {  # MACHINE CPU: one boot under QEMU TCG, serial output to $tmp/qemu-CPU.serial
    timeout 600 qemu-system-x86_64 -accel tcg -machine "$1" -cpu "$2" -m 256M -display none \
        -vga none -no-reboot -nodefaults -serial "file:$tmp/qemu-$2.serial" \
        -kernel "$assets/vmlinuz" -initrd "$assets/initramfs.cpio" -append "$append"
}
# report LABEL NAME WALL CPU STATUS [INSNS]: one line per run; checks the power-off.
report() {
    local out=$tmp/$2.out ok
    [ -f "$tmp/$2.serial" ] && out=$tmp/$2.serial
    grep -q 'reboot: Power down' "$out" && [ "$5" -eq 0 ] && ok="powered off" ||
        ok="FAILED (status $5)"
    printf '%-34s %14s %8s %8s  %s\n' "$1" "${6:--}" "$3" "$4" "$ok"
    [ "$ok" = "powered off" ] && echo "$2 $3 $4" >>"$tmp/times"
}
insns() { sed -n 's/.*"instructions": \([0-9]*\).*/\1/p' "$tmp/$1.json"; }

has_translate=1
"$softkvm" caps | grep -q "translate (blocks" || has_translate=0
has_qemu=1
command -v qemu-system-x86_64 >/dev/null || has_qemu=0

printf '%-34s %14s %8s %8s  %s\n' run instructions wall cpu "serial output"
for i in $(seq "$runs"); do
    if [ $has_translate = 1 ]; then
        read -r w c s < <(run translate softkvm_run translate)
        report "softkvm emu translate (run $i)" translate "$w" "$c" "$s" "$(insns translate)"
    fi
    if [ $has_qemu = 1 ]; then
        read -r w c s < <(run qemu-Skylake-Client qemu_run q35 Skylake-Client)
        report "qemu tcg q35 Skylake-Client ($i)" qemu-Skylake-Client "$w" "$c" "$s"
        read -r w c s < <(run qemu-max qemu_run pc max)
        report "qemu tcg pc max (run $i)" qemu-max "$w" "$c" "$s"
    fi
done
[ $has_translate = 1 ] || echo "softkvm emu translate: not in this build"
[ $has_qemu = 1 ] || echo "qemu-system-x86_64: not installed"
if [ "${INTERP:-1}" != 0 ]; then
    read -r w c s < <(run interp softkvm_run interp)
    report "softkvm emu interp (run 1)" interp "$w" "$c" "$s" "$(insns interp)"
fi

# Best of the runs, and the translator's ratio to each peer.
[ -f "$tmp/times" ] || exit 0
echo
awk '
    { n = $1; if (!(n in w) || $2 < w[n]) w[n] = $2; if (!(n in c) || $3 < c[n]) c[n] = $3 }
    END {
        printf "best of the runs: wall / CPU seconds\n"
        for (n in w) printf "  %-22s %6.2f %6.2f\n", n, w[n], c[n]
        if ("translate" in w)
            for (n in w) if (n ~ /^qemu/)
                printf "translator / %s: %.2fx wall, %.2fx CPU\n", n, w["translate"] / w[n], c["translate"] / c[n]
    }' "$tmp/times"
