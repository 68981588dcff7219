#!/usr/bin/env bash
# Linux boot tests (CTest label "linux"): Debian's kernel and a BusyBox initramfs
# (scripts/linux_assets.sh) booted on softkvm emu.
#   linux_test.sh assets SRCDIR ASSETS           fetch and build the assets (the fixture)
#   linux_test.sh boot SOFTKVM ASSETS OUTDIR     boot to /init, run commands, power off
#   linux_test.sh determinism SOFTKVM ASSETS OUTDIR   boot again: the same serial output
#                                                and instruction count as `boot`'s run
#   linux_test.sh splitlock SOFTKVM ASSETS OUTDIR PROGRAM   split locks from user space
#   linux_test.sh bootlog ASSETS OUTDIR          QEMU TCG boots the same kernel, initramfs
#                                                and command line; boot's kernel log may
#                                                have no complaint QEMU's lacks
#                                                (bootlog_compare.py, its allow-list)
#   linux_test.sh compare-selftest TMPDIR        the comparison on made-up logs
#   linux_test.sh perf_stat SOFTKVM ASSETS OUTDIR PROGRAM   perf stat inside the guest
#                                                against the program's own counts
#   linux_test.sh perf_lbr SOFTKVM ASSETS OUTDIR PROGRAM   perf record -b inside the guest
#                                                against softkvm profile --lbr
#   linux_test.sh kvm SOFTKVM ASSETS OUTDIR      the boot on /dev/kvm, or a skip saying why
#                                                (QEMU's KVM fails the same way)
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
perf_stat)
    # `perf stat -e instructions:u -e branches:u` of a static program inside the guest
    # (tests/linux/perfcount.S), through Linux's perf driver and emu's guest PMU, against
    # the counts the program's own code gives: its instructions from `objdump -d`, the loop
    # taken ITERATIONS times (nm). emu counts every retired instruction and is
    # deterministic, so the tolerance is zero: user-mode counting (:u) sees only the
    # program's instructions, from its first after execve to its exit system call (which
    # retires in user mode and is a far branch, counted by Intel's branch event, as the
    # loop's JNZ is).
    softkvm=$2 assets=$3 out=$4 prog=$5
    need_assets "$assets"
    [ -f "$assets/initramfs-perf.cpio" ] || fail "no $assets/initramfs-perf.cpio (scripts/linux_assets.sh builds it)"
    mkdir -p "$out/perfcount-root/bin"
    cp "$prog" "$out/perfcount-root/bin/perfcount"
    (cd "$out/perfcount-root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc --reproducible -R 0:0 --quiet) >"$out/perfcount.cpio" || fail "cpio failed"
    cat "$assets/initramfs-perf.cpio" "$out/perfcount.cpio" >"$out/initramfs-perfstat.cpio"
    expected=$(python3 - "$prog" <<'PY'
import re, subprocess, sys
prog = sys.argv[1]
syms = {}
for line in subprocess.run(["nm", prog], capture_output=True, text=True, check=True).stdout.split("\n"):
    f = line.split()
    if len(f) == 3:
        syms[f[2]] = int(f[0], 16)
insns = []  # (address, mnemonic) of every instruction in .text
for line in subprocess.run(["objdump", "-d", "--no-show-raw-insn", prog], capture_output=True,
                           text=True, check=True).stdout.split("\n"):
    m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)", line)
    if m:
        insns.append((int(m.group(1), 16), m.group(2)))
branch = re.compile(r"^(j|call|ret|syscall|loop)")
def part(lo, hi):
    sel = [mn for a, mn in insns if lo <= a < hi]
    return len(sel), sum(1 for mn in sel if branch.match(mn))
p = part(syms["_start"], syms["count_loop"])
b = part(syms["count_loop"], syms["count_loop_end"])
e = part(syms["count_loop_end"], 1 << 64)
n = syms["ITERATIONS"]
print(p[0] + n * b[0] + e[0], p[1] + n * b[1] + e[1], n, b[0])
PY
) || fail "cannot compute the program's counts from its code (objdump, nm)"
    read -r want_insns want_branches iterations body <<<"$expected"
    append="console=ttyS0 nokaslr i8042.noaux i8042.nomux panic=-1"
    append+=" softkvm.run=perf,stat,-x,;,-e,instructions:u,-e,branches:u,/bin/perfcount"
    "$softkvm" run --accel emu --engine "$engine" --memory 512M --max-insns "$max_insns" \
        --kernel "$assets/vmlinuz" --initrd "$out/initramfs-perfstat.cpio" --append "$append" \
        --stats-json "$out/perfstat.json" >"$out/perfstat.log" 2>"$out/perfstat.err"
    st=$?
    cat "$out/perfstat.log" "$out/perfstat.err"
    [ $st -eq 0 ] || fail "softkvm exit status $st"
    log=$out/perfstat.txt
    tr -d '\r' <"$out/perfstat.log" >"$log"
    grep -q 'CPU ISA level is lower than required' "$log" &&
        fail "glibc refuses to start perf on this CPU model (CPUID lacks a baseline feature)"
    got_insns=$(awk -F';' '$3 == "instructions:u" { print $1; exit }' "$log")
    got_branches=$(awk -F';' '$3 == "branches:u" { print $1; exit }' "$log")
    [ -n "$got_insns" ] && [ -n "$got_branches" ] || fail "no perf stat counts in the guest's output"
    echo "instructions:u: perf $got_insns, expected $want_insns ($iterations rounds of $body instructions plus the rest)"
    echo "branches:u: perf $got_branches, expected $want_branches"
    [ "$got_insns" = "$want_insns" ] || fail "perf stat counted $got_insns user-mode instructions, the program retires $want_insns"
    [ "$got_branches" = "$want_branches" ] || fail "perf stat counted $got_branches user-mode branches, the program retires $want_branches"
    echo "PASS: perf stat inside the guest counts exactly the program's $want_insns instructions and $want_branches branches"
    ;;
perf_lbr)
    # `perf record -b` inside the guest against `softkvm profile --lbr` from the host, on
    # the same kernel and program (tests/linux/lfsr_branches.S: an LFSR choosing between
    # branches into two functions). Run 1: the guest's perf samples the program's user-mode
    # branch stacks (LBR through Linux's Intel driver on emu's guest LBR) every PERIOD
    # user-mode instructions; a script in the guest aggregates `perf script -F brstack`
    # into from->to pairs (Debian's `perf report --sort symbol_from,symbol_to` crashes:
    # docs/linux.md). Run 2: the program alone, sampled by the host every PERIOD
    # instructions (the host owns the LBR unit for that run, so the two cannot be one).
    # Both keep the pairs inside the program's code (perflbr_compare.py): the pairs above
    # 1% must be the same, the hottest the same, each share within TOLERANCE points.
    softkvm=$2 assets=$3 out=$4 prog=$5
    period=${LINUX_LBR_PERIOD:-10007}
    tolerance=${LINUX_LBR_TOLERANCE:-2}
    need_assets "$assets"
    [ -f "$assets/initramfs-perf.cpio" ] || fail "no $assets/initramfs-perf.cpio (scripts/linux_assets.sh builds it)"
    root=$out/perflbr-root
    [ -n "$out" ] && rm -rf "$root"
    mkdir -p "$root/bin" || fail "cannot create $root"
    cp "$prog" "$root/bin/lfsr_branches" || fail "cannot copy $prog"
    cp "$(dirname "$0")/lbr-record.sh" "$root/bin/lbr-record" || fail "no lbr-record.sh"
    chmod 755 "$root/bin/lbr-record"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc --reproducible -R 0:0 --quiet) >"$out/perflbr.cpio" || fail "cpio failed"
    cat "$assets/initramfs-perf.cpio" "$out/perflbr.cpio" >"$out/initramfs-perflbr.cpio"
    base="console=ttyS0 nokaslr i8042.noaux i8042.nomux panic=-1"

    "$softkvm" run --accel emu --engine "$engine" --memory 512M --max-insns "$max_insns" \
        --kernel "$assets/vmlinuz" --initrd "$out/initramfs-perflbr.cpio" \
        --append "$base softkvm.run=lbr-record,$period" --stats-json "$out/perflbr-guest.json" \
        >"$out/perflbr-guest.log" 2>"$out/perflbr-guest.err"
    st=$?
    glog=$out/perflbr-guest.txt
    tr -d '\r' <"$out/perflbr-guest.log" >"$glog"
    grep -E 'Performance Events|perf-lbr: (recorded|samples)|softkvm-init' "$glog"
    cat "$out/perflbr-guest.err"
    [ $st -eq 0 ] || fail "softkvm exit status $st for the guest's perf record"
    grep -Eq 'Performance Events: .*32-deep LBR.*Intel PMU driver' "$glog" ||
        fail "the guest kernel does not report the Intel PMU with its 32-deep LBR"
    grep -q '^perf-lbr: recorded, status 0$' "$glog" || fail "perf record -b failed in the guest"

    "$softkvm" profile --lbr --engine "$engine" --memory 512M --max-insns "$max_insns" \
        --kernel "$assets/vmlinuz" --initrd "$out/initramfs-perflbr.cpio" \
        --append "$base softkvm.run=/bin/lfsr_branches" --period "$period" --json --top 0 \
        --symbols "$prog" >"$out/perflbr-host.json" 2>"$out/perflbr-host.log"
    st=$?
    hlog=$out/perflbr-host.txt
    tr -d '\r' <"$out/perflbr-host.log" >"$hlog"
    grep -E 'softkvm-init|softkvm profile' "$hlog"
    [ $st -eq 0 ] || fail "softkvm profile exit status $st"
    grep -q '^softkvm-init: run /bin/lfsr_branches$' "$hlog" || fail "the program did not run under softkvm profile"
    python3 "$(dirname "$0")/perflbr_compare.py" "$prog" "$glog" "$out/perflbr-host.json" "$tolerance" ||
        fail "the guest's and the host's branch profiles disagree (above)"
    echo "PASS: perf record -b in the guest and softkvm profile --lbr agree on the program's branch pairs; the kernel reports its 32-deep LBR"
    ;;
kvm)
    # Linux on /dev/kvm: the boot of `boot` with --accel kvm (plus earlyprintk, so a slow
    # boot shows how far it got), bounded by LINUX_KVM_TIMEOUT seconds of wall time (kvm
    # counts no instructions for --max-insns). If it does not power off in time, QEMU's
    # KVM (-accel kvm -cpu qemu64) boots the same kernel on the same /dev/kvm for as
    # long: if QEMU does not get through either, this host's /dev/kvm cannot run the boot
    # at a usable speed (skip, saying how far each got); if QEMU does, softkvm is at fault.
    softkvm=$2 assets=$3 out=$4
    need_assets "$assets"
    limit=${LINUX_KVM_TIMEOUT:-60}
    kvm_line=$("$softkvm" caps | awk '$1 == "kvm"')
    case "$kvm_line" in
    *" yes "*) ;;
    *) echo "SKIP: the kvm accelerator is not usable here: $kvm_line"; exit 77 ;;
    esac
    kappend="$append earlyprintk=serial,ttyS0,115200"
    mkdir -p "$out"
    timeout "$limit" "$softkvm" run --accel kvm --memory 256M --kernel "$assets/vmlinuz" \
        --initrd "$assets/initramfs.cpio" --append "$kappend" --stats-json "$out/kvm-boot.json" \
        >"$out/kvm-boot.log" 2>"$out/kvm-boot.err"
    st=$?
    log=$out/kvm-boot.txt
    tr -d '\r' <"$out/kvm-boot.log" >"$log"
    if [ $st -eq 0 ] && grep -q 'reboot: Power down' "$log"; then
        cat "$log"
        grep -Eq '^Linux \(none\) 6\.1\.[0-9]+-[0-9]+-amd64 .* x86_64 GNU/Linux' "$log" || fail "no 'uname -a' line"
        grep -Eq '^vendor_id[[:space:]]+: ' "$log" || fail "/proc/cpuinfo was not printed"
        serial=$(irq_count ttyS0 "$log")
        [ -n "$serial" ] && [ "$serial" -gt 0 ] || fail "/proc/interrupts: the serial line (ttyS0) has not counted"
        if grep -nE 'Call Trace|Oops|BUG:|cut here|Kernel panic|unchecked MSR access' "$log"; then
            fail "the kernel reported an error (lines above)"
        fi
        echo "PASS: Linux booted on kvm to /init, ran its commands and powered off; log in $out/kvm-boot.log"
        exit 0
    fi
    ours=$(grep -a . "$log" | tail -n 1)
    if ! command -v qemu-system-x86_64 >/dev/null; then
        cat "$log" "$out/kvm-boot.err"
        fail "softkvm on kvm: status $st within ${limit} s (last line: '$ours'), and no QEMU to tell whether this host's /dev/kvm can boot it"
    fi
    timeout "$limit" qemu-system-x86_64 -accel kvm -cpu qemu64 -machine q35 -m 256M -display none \
        -vga none -no-reboot -nodefaults -serial "file:$out/qemu-kvm-boot.log" \
        -kernel "$assets/vmlinuz" -initrd "$assets/initramfs.cpio" -append "$kappend" \
        2>"$out/qemu-kvm-boot.err"
    qst=$?
    theirs=$(tr -d '\r' <"$out/qemu-kvm-boot.log" | grep -a . | tail -n 1)
    if [ $qst -eq 0 ] && grep -q 'reboot: Power down' "$out/qemu-kvm-boot.log"; then
        cat "$log" "$out/kvm-boot.err"
        fail "QEMU's KVM boots the kernel to its power-off on this host, softkvm on kvm did not (status $st; last line: '$ours')"
    fi
    echo "SKIP: this host's /dev/kvm does not boot Linux within ${limit} s: softkvm --accel kvm (status $st) got to '$ours', QEMU -accel kvm -cpu qemu64 (status $qst) to '$theirs'; logs in $out"
    exit 77
    ;;
bootlog)
    # The peer: QEMU TCG with the machine and CPU closest to emu's: q35 (an ICH9 chipset,
    # like the PM1a soft-off type and the FADT's 8042 flag emu uses) and Skylake-Client
    # (Intel family 6 model 0x5E, emu's default CPU model, so Linux applies the same
    # errata and speculation rules). QEMU's log stays in OUTDIR as the test's artefact.
    assets=$2 out=$3
    need_assets "$assets"
    [ -f "$out/boot.log" ] || fail "no softkvm boot log in $out (guest.linux.boot)"
    if ! command -v qemu-system-x86_64 >/dev/null; then
        echo "SKIP: qemu-system-x86_64 is not installed (scripts/deps.sh installs it)"
        exit 77
    fi
    rm -f "$out/qemu-boot.log"
    timeout 600 qemu-system-x86_64 -accel tcg -machine q35 -cpu Skylake-Client -m 256M \
        -display none -vga none -no-reboot -nodefaults -serial "file:$out/qemu-boot.log" \
        -kernel "$assets/vmlinuz" -initrd "$assets/initramfs.cpio" -append "$append" \
        2>"$out/qemu-boot.err"
    st=$?
    [ $st -eq 0 ] && grep -q 'reboot: Power down' "$out/qemu-boot.log" ||
        fail "QEMU's boot did not power off (status $st; $out/qemu-boot.log, $out/qemu-boot.err)"
    python3 "$(dirname "$0")/bootlog_compare.py" "$out/boot.log" "$out/qemu-boot.log" ||
        fail "softkvm's kernel log has complaints QEMU's lacks (ONLY IN EMU'S LOG above)"
    echo "PASS: no complaint in softkvm's kernel log that QEMU TCG's ($out/qemu-boot.log) lacks, but the allowed ones above"
    ;;
compare-selftest)
    # The comparison itself, on made-up logs: it must catch a complaint only emu has,
    # forgive one that differs only in numbers or that the allow-list names, and refuse
    # a file without kernel lines.
    tmp=$2
    mkdir -p "$tmp"
    cmp_py="$(dirname "$0")/bootlog_compare.py"
    printf '[    0.000000] Linux version 6.1\r\n[    0.100000] mce: Unable to init MCE device (rc: -5)\r\n[    0.2] serial8250: too much work for irq4\r\n' >"$tmp/emu.log"
    printf '[    0.000000] Linux version 6.1\n[    0.300000] serial8250: too much work for irq3\n' >"$tmp/qemu.log"
    python3 "$cmp_py" "$tmp/emu.log" "$tmp/qemu.log" >"$tmp/out" 2>&1
    st=$?
    cat "$tmp/out"
    [ $st -eq 1 ] || fail "an MCE complaint only in emu's log: status $st, not 1"
    grep -q "^ONLY IN EMU'S LOG: mce: Unable to init MCE device (rc: -5)$" "$tmp/out" ||
        fail "the MCE complaint is not named"
    grep -q "^2 complaints in emu's log (3 kernel lines), 1 in QEMU's (2); 1 only in emu's" "$tmp/out" ||
        fail "the complaints were not counted (2 in emu's log, 1 in QEMU's, 1 only in emu's)"
    grep -q "^ONLY IN EMU'S LOG: serial8250" "$tmp/out" &&
        fail "a complaint that differs only in a number was reported"
    printf '[    0.000000] Linux version 6.1\n[    0.000001] DMI not present or invalid.\n' >"$tmp/emu.log"
    python3 "$cmp_py" "$tmp/emu.log" "$tmp/qemu.log" || fail "an allowed difference failed the comparison"
    echo "no kernel lines" >"$tmp/emu.log"
    python3 "$cmp_py" "$tmp/emu.log" "$tmp/qemu.log"
    st=$?
    [ $st -eq 2 ] || fail "a log without kernel lines: status $st, not 2"
    echo "PASS: the comparison reports a complaint only emu has, forgives numbers and allowed lines, refuses an empty log"
    ;;
*)
    echo "usage: $0 assets SRCDIR ASSETS | boot|determinism SOFTKVM ASSETS OUTDIR | splitlock SOFTKVM ASSETS OUTDIR PROGRAM | bootlog ASSETS OUTDIR | compare-selftest TMPDIR | perf_stat|perf_lbr SOFTKVM ASSETS OUTDIR PROGRAM | kvm SOFTKVM ASSETS OUTDIR" >&2
    exit 2
    ;;
esac
