#!/usr/bin/env bash
# Linux boot benchmark (part of make bench): Debian's kernel and the BusyBox initramfs
# (scripts/linux_assets.sh) from the entry point to the guest's power-off, on softkvm emu
# with each engine and under QEMU TCG, measured in one run. The guest does the same work
# on each: the kernel boots, /init runs `uname -a`, and powers off (ACPI S5). Wall times
# only: softkvm counts guest time in instructions, QEMU in host time, so the guests' own
# clocks differ. Usage: bench_linux.sh BUILD_DIR
set -uo pipefail
build=${1:-build}
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

seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

printf '%-22s %14s %10s %s\n' run instructions seconds "serial output"
for engine in interp translate; do
    if [ "$engine" = translate ] && ! "$softkvm" caps | grep -q "translate (blocks"; then
        printf '%-22s %s\n' "softkvm $engine" "not in this build"
        continue
    fi
    t0=$(date +%s.%N)
    "$softkvm" run --engine "$engine" --memory 256M --max-insns 20000000000 \
        --kernel "$assets/vmlinuz" --initrd "$assets/initramfs.cpio" --append "$append" \
        --stats-json "$tmp/$engine.json" >"$tmp/$engine.out" 2>"$tmp/$engine.err"
    st=$?
    t1=$(date +%s.%N)
    insns=$(sed -n 's/.*"instructions": \([0-9]*\).*/\1/p' "$tmp/$engine.json")
    grep -q 'reboot: Power down' "$tmp/$engine.out" && [ $st -eq 0 ] && ok="powered off" ||
        ok="FAILED (status $st)"
    printf '%-22s %14s %10s %s\n' "softkvm emu $engine" "$insns" "$(seconds "$t0" "$t1")" "$ok"
done
if command -v qemu-system-x86_64 >/dev/null; then
    t0=$(date +%s.%N)
    timeout 600 qemu-system-x86_64 -accel tcg -machine pc -cpu max -m 256M -display none \
        -vga none -no-reboot -nodefaults -serial "file:$tmp/qemu.out" \
        -kernel "$assets/vmlinuz" -initrd "$assets/initramfs.cpio" -append "$append"
    st=$?
    t1=$(date +%s.%N)
    grep -q 'reboot: Power down' "$tmp/qemu.out" && [ $st -eq 0 ] && ok="powered off" ||
        ok="FAILED (status $st)"
    printf '%-22s %14s %10s %s\n' "qemu-system-x86_64 tcg" "-" "$(seconds "$t0" "$t1")" "$ok"
else
    printf '%-22s %s\n' "qemu-system-x86_64 tcg" "not installed"
fi
