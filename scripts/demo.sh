#!/usr/bin/env bash
# make demo: boots the demo guest on softkvm's software CPU, then runs the
# encryption-ID starvation demo when it is present. Usage: demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
softkvm=$build/src/cli/softkvm

echo "== softkvm run --accel emu $build/guests/hello.elf"
"$softkvm" run --accel emu --stats "$build/guests/hello.elf"
echo "== guest exit status: $?"

if [ -x "$here/eid-starvation-demo.sh" ]; then
    echo
    "$here/eid-starvation-demo.sh" "$build"
fi

# The split-lock storm: the guest kernel warns once per offending RIP (bus-lock #DB), then
# the same guest under a VM-wide limit of 1000 bus locks per second (bus-lock VM exits).
echo
echo "== softkvm run --stats $build/guests/splitlock.elf   (bus-lock #DB: the guest warns)"
"$softkvm" run --accel emu --stats "$build/guests/splitlock.elf"
echo
echo "== softkvm run --stats --bus-lock-ratelimit 1000 $build/guests/splitlock.elf"
"$softkvm" run --accel emu --stats --bus-lock-ratelimit 1000 "$build/guests/splitlock.elf"

# Guest LBR: the lfsr guest profiles itself (PMU overflow PMI + frozen LBR stack), then the
# host profiles the same program from outside with `softkvm profile --lbr`.
echo
echo "== softkvm run $build/guests/lfsr.elf   (the guest's own LBR profile)"
"$softkvm" run --accel emu "$build/guests/lfsr.elf"
echo
echo "== softkvm profile --lbr --top 8 $build/guests/lfsr.elf   (the host's LBR profile)"
"$softkvm" profile --lbr --top 8 "$build/guests/lfsr.elf"

# Linux: Debian's kernel and a BusyBox initramfs (scripts/linux_assets.sh) booted to /init,
# which runs one command and powers off (status 0). `quiet` keeps the kernel's log short.
echo
assets=$build/linux-assets
if "$here/linux_assets.sh" "$assets" >"$build/linux-assets.log" 2>&1; then
    engine=interp
    "$softkvm" caps | grep -q "translate (blocks" && engine=translate
    append="console=ttyS0 nokaslr i8042.noaux i8042.nomux quiet softkvm.run=uname,-a softkvm.run=cat,/proc/uptime"
    echo "== softkvm run --engine $engine --stats --kernel $assets/vmlinuz --initrd $assets/initramfs.cpio --append \"$append\""
    "$softkvm" run --accel emu --engine "$engine" --memory 256M --max-insns 20000000000 --stats \
        --kernel "$assets/vmlinuz" --initrd "$assets/initramfs.cpio" --append "$append"
    echo "== guest exit status: $? (0: Linux powered off; /proc/uptime is guest seconds)"
else
    echo "== Linux boot skipped: Debian's packages could not be fetched ($(tail -n 1 "$build/linux-assets.log"))"
fi
