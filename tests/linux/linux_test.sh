#!/usr/bin/env bash
# Linux boot tests (CTest label "linux"): Debian's kernel and a BusyBox initramfs
# (scripts/linux_assets.sh) booted on softkvm emu.
#   linux_test.sh assets SRCDIR ASSETS           fetch and build the assets (the fixture)
#   linux_test.sh boot SOFTKVM ASSETS OUTDIR     boot to /init, run commands, power off
#   linux_test.sh determinism SOFTKVM ASSETS OUTDIR   boot again: the same serial output
#                                                and instruction count as `boot`'s run
#   linux_test.sh splitlock SOFTKVM ASSETS OUTDIR PROGRAM   split locks from user space
# The boot's serial output and statistics are kept in OUTDIR (boot.log, boot.json) as the
# test's artefacts. LINUX_ENGINE (set by CMake) is emu's engine; LINUX_MAX_INSNS bounds a
# boot that hangs (status 124: a clear failure, not a CTest timeout).
# Exit 0 = pass, 77 = skipped (the Debian mirror cannot be reached), else = fail.
set -uo pipefail
mode=$1

engine=${LINUX_ENGINE:-interp}
max_insns=${LINUX_MAX_INSNS:-20000000000}
# The command line: the serial console, the same layout every run (no KASLR), no mouse
# port probes (see docs/linux.md); panic=-1 reboots at once on a panic (status 122).
# /init runs each softkvm.run= command (commas are spaces) and powers off.
append="console=ttyS0 nokaslr i8042.noaux i8042.nomux panic=-1"
append+=" softkvm.run=uname,-a softkvm.run=cat,/proc/cpuinfo softkvm.run=cat,/proc/interrupts"

need_assets() {  # $1 = assets dir
    if [ ! -f "$1/vmlinuz" ] || [ ! -f "$1/initramfs.cpio" ]; then
        echo "SKIP: no Linux assets in $1 (guest.linux.assets could not fetch them)"
        exit 77
    fi
}

boot() {  # $1 softkvm, $2 assets, $3 serial output file, $4 stats file; prints status
    local t0 t1 st
    t0=$(date +%s.%N)
    "$1" run --accel emu --engine "$engine" --memory 256M --max-insns "$max_insns" \
        --kernel "$2/vmlinuz" --initrd "$2/initramfs.cpio" --append "$append" \
        --stats-json "$4" >"$3" 2>"$3.err"
    st=$?
    t1=$(date +%s.%N)
    echo "softkvm run (--engine $engine): status $st, $(json_field "$4" instructions) instructions, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" >&2
    cat "$3.err" >&2
    return $st
}

json_field() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))" "$1" "$2" 2>/dev/null
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# count LABEL FILE: the first count column of /proc/interrupts' line ending in LABEL.
irq_count() {
    awk -v l="$1" '$NF == l && $1 ~ /:$/ { print $2; exit }' "$2"
}

case "$mode" in
assets)
    src=$2 out=$3
    "$src/scripts/linux_assets.sh" "$out"
    st=$?
    if [ $st -eq 69 ]; then
        echo "SKIP: the Debian packages could not be downloaded (status 69): no network or no mirror"
        exit 77
    fi
    exit $st
    ;;
boot)
    softkvm=$2 assets=$3 out=$4
    need_assets "$assets"
    mkdir -p "$out"
    rm -f "$out/boot.log" "$out/boot.json"
    boot "$softkvm" "$assets" "$out/boot.log" "$out/boot.json"
    st=$?
    cat "$out/boot.log"
    [ $st -eq 124 ] && fail "the boot did not finish within $max_insns instructions (--max-insns)"
    [ $st -eq 0 ] || fail "softkvm exit status $st (0: the guest powered off through ACPI S5)"
    [ "$(json_field "$out/boot.json" exit)" = "power-off" ] ||
        fail "the run did not end with the guest's power-off: $(json_field "$out/boot.json" exit)"
    # The serial port carries CR LF line ends (the kernel's console, the tty's ONLCR).
    log=$out/boot.txt
    tr -d '\r' <"$out/boot.log" >"$log"
    grep -q '^softkvm-init: start' "$log" || fail "/init did not start"
    grep -Eq '^Linux \(none\) 6\.1\.[0-9]+-[0-9]+-amd64 #1 SMP PREEMPT_DYNAMIC Debian .* x86_64 GNU/Linux' "$log" ||
        fail "no 'uname -a' line"
    grep -Eq '^vendor_id[[:space:]]+: GenuineIntel$' "$log" || fail "/proc/cpuinfo: no GenuineIntel vendor"
    grep -Eq '^flags[[:space:]]+: fpu .* sse sse2 ' "$log" || fail "/proc/cpuinfo: no fpu, sse, sse2 flags"
    grep -Eq '^cpu MHz[[:space:]]+: 1000\.000$' "$log" || fail "/proc/cpuinfo: the TSC is not 1000 MHz"
    serial=$(irq_count ttyS0 "$log")
    timer=$(awk '$1 == "LOC:" { print $2; exit }' "$log")
    [ -n "$serial" ] && [ "$serial" -gt 0 ] || fail "/proc/interrupts: the serial line (ttyS0) has not counted"
    [ -n "$timer" ] && [ "$timer" -gt 0 ] || fail "/proc/interrupts: the local timer (LOC) has not counted"
    grep -q '^softkvm-init: poweroff' "$log" || fail "/init did not reach its poweroff"
    grep -q 'reboot: Power down' "$log" || fail "the kernel did not power down"
    if grep -nE 'Call Trace|Oops|BUG:|cut here|Kernel panic|unchecked MSR access' "$log"; then
        fail "the kernel reported an error (lines above)"
    fi
    echo "PASS: booted to /init, ran uname -a, /proc/cpuinfo, /proc/interrupts (ttyS0 $serial, LOC $timer interrupts) and powered off (status 0); log in $out/boot.log"
    ;;
determinism)
    softkvm=$2 assets=$3 out=$4
    need_assets "$assets"
    [ -f "$out/boot.log" ] && [ -f "$out/boot.json" ] || fail "no first run in $out (guest.linux.boot)"
    boot "$softkvm" "$assets" "$out/boot2.log" "$out/boot2.json"
    st=$?
    [ $st -eq 0 ] || fail "softkvm exit status $st"
    if ! cmp -s "$out/boot.log" "$out/boot2.log"; then
        diff "$out/boot.log" "$out/boot2.log" | head -20 >&2
        fail "the serial output differs between two boots"
    fi
    i1=$(json_field "$out/boot.json" instructions)
    i2=$(json_field "$out/boot2.json" instructions)
    [ -n "$i1" ] && [ "$i1" = "$i2" ] || fail "instruction counts differ: $i1, then $i2"
    echo "PASS: two boots: identical serial output ($(wc -c <"$out/boot.log") bytes), $i1 instructions each"
    ;;
splitlock)
    # A user program doing split-locked adds (tests/linux/splitlock.S) under
    # split_lock_detect=warn: the kernel's bus-lock #DB handler logs the program and the
    # address after its locked instruction; with --bus-lock-ratelimit 0 softkvm's
    # statistics count the bus locks (bus-lock VM exits) at the same instruction.
    softkvm=$2 assets=$3 out=$4 prog=$5
    need_assets "$assets"
    mkdir -p "$out/splitlock-root/bin"
    cp "$prog" "$out/splitlock-root/bin/splitlock"
    # A second newc archive after the first: Linux unpacks both into its root.
    (cd "$out/splitlock-root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc --reproducible -R 0:0 --quiet) >"$out/splitlock.cpio" || fail "cpio failed"
    cat "$assets/initramfs.cpio" "$out/splitlock.cpio" >"$out/initramfs-splitlock.cpio"
    after=$(nm "$prog" | awk '$3 == "after_split_lock" { print $1 }' | sed 's/^0*//')
    locked=$(nm "$prog" | awk '$3 == "split_lock_add" { print $1 }' | sed 's/^0*//')
    [ -n "$after" ] && [ -n "$locked" ] || fail "no split_lock_add / after_split_lock symbols in $prog"
    append="console=ttyS0 nokaslr i8042.noaux i8042.nomux panic=-1 split_lock_detect=warn softkvm.run=/bin/splitlock"
    "$softkvm" run --accel emu --engine "$engine" --memory 256M --max-insns "$max_insns" \
        --bus-lock-ratelimit 0 --kernel "$assets/vmlinuz" --initrd "$out/initramfs-splitlock.cpio" \
        --append "$append" --stats-json "$out/splitlock.json" >"$out/splitlock.log" 2>"$out/splitlock.err"
    st=$?
    cat "$out/splitlock.log" "$out/splitlock.err"
    [ $st -eq 0 ] || fail "softkvm exit status $st"
    log=$out/splitlock.txt
    tr -d '\r' <"$out/splitlock.log" >"$log"
    grep -q 'x86/split lock detection: #DB: warning on user-space bus_locks' "$log" ||
        fail "the kernel did not enable bus-lock #DB warnings"
    grep -q '^splitlock: 100 split-locked adds done' "$log" || fail "the program did not finish"
    grep -Eq "#DB: splitlock/[0-9]+ took a bus_lock trap at address: 0x$after\$" "$log" ||
        fail "no '#DB: splitlock/PID took a bus_lock trap at address: 0x$after' line"
    python3 - "$out/splitlock.json" "$locked" "$after" <<'PY' || fail "softkvm's bus-lock statistics (above)"
import json, sys
b = json.load(open(sys.argv[1]))["bus_locks"]
rips = {int(t["rip"], 16): t["count"] for t in b["top_rips"]}
ours = rips.get(int(sys.argv[2], 16), 0) + rips.get(int(sys.argv[3], 16), 0)
print(f"bus locks: count {b['count']}, split {b['split']}, at the program's add: {ours}")
sys.exit(0 if b["count"] >= 100 and b["split"] >= 100 and ours == 100 else 1)
PY
    echo "PASS: the kernel logged the program's bus-lock trap at 0x$after; softkvm counted its 100 bus locks"
    ;;
*)
    echo "usage: $0 assets SRCDIR ASSETS | boot|determinism SOFTKVM ASSETS OUTDIR | splitlock SOFTKVM ASSETS OUTDIR PROGRAM" >&2
    exit 2
    ;;
esac
