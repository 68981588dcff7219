#!/usr/bin/env bash
# Guest tests (CTest): run a conformance guest on softkvm emu, under QEMU TCG, or both and
# compare their serial output, or twice on emu for determinism, or on softkvm's kvm
# accelerator compared with emu (and, where they differ, with QEMU's KVM on this host).
#   guest_test.sh emu|qemu|diff|determinism|engines|kvm SOFTKVM GUEST.elf
# engines: once per emu engine (--engine interp, translate), compared.
# Exit 0 = pass, 77 = skipped (QEMU missing, no usable kvm, or a guest that QEMU's KVM
# on this host fails in the same way), anything else = fail.
# kvm mode: KVM_NOT_EMU="reason" (set by CMake) names why a guest's output on kvm may
# differ from emu's; its output is then compared with QEMU's KVM instead.
set -uo pipefail
mode=$1 softkvm=$2 guest=$3
cpus=${GUEST_CPUS:-1}  # processors the guest needs (softkvm --cpus, QEMU -smp)
memory=${GUEST_MEMORY:-128M}  # softkvm --memory, QEMU -m
# kvm mode: seconds before a run on /dev/kvm (softkvm's and QEMU's) counts as hung.
kvm_timeout=${KVM_TIMEOUT:-120}
# GUEST_APPEND / GUEST_INITRD (when set): softkvm --append/--initrd, QEMU -append/-initrd.
boot_args=()
[ -n "${GUEST_APPEND+x}" ] && boot_args+=(--append "$GUEST_APPEND")
[ -n "${GUEST_INITRD+x}" ] && boot_args+=(--initrd "$GUEST_INITRD")
qemu_boot_args=()
[ -n "${GUEST_APPEND+x}" ] && qemu_boot_args+=(-append "$GUEST_APPEND")
[ -n "${GUEST_INITRD+x}" ] && qemu_boot_args+=(-initrd "$GUEST_INITRD")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run_emu() {  # $1 = output file, $2 = stats file
    # shellcheck disable=SC2086  # GUEST_ARGS: extra softkvm options, word-split on purpose
    "$softkvm" run --accel emu --cpus "$cpus" --memory "$memory" ${GUEST_ARGS:-} \
        "${boot_args[@]}" --stats-json "$2" "$guest" >"$1"
}

run_qemu() {  # $1 = output file; returns the guest's code (QEMU exits code<<1|1)
    # shellcheck disable=SC2086  # QEMU_ARGS: extra QEMU options, word-split on purpose
    timeout 120 qemu-system-x86_64 -accel tcg -machine pc -cpu max -smp "$cpus" -m "$memory" -display none \
        -vga none -no-reboot -nodefaults -serial "file:$1" ${QEMU_ARGS:-} \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$guest" "${qemu_boot_args[@]}"
    local st=$?
    if [ $((st & 1)) -ne 1 ]; then echo "qemu failed with status $st" >&2; return 100; fi
    return $((st >> 1))
}

# QEMU on /dev/kvm with the host's CPUID (-cpu host: the CPUID softkvm gives its vCPUs).
# $1 = serial output file. Prints "exit N" (the guest's code), "internal-error RIP" or
# "qemu-failed". QEMU stops (and waits) on a KVM internal error: it is killed then.
qemu_cpu=host
run_qemu_kvm() {
    # shellcheck disable=SC2086
    qemu-system-x86_64 -accel kvm -machine pc -cpu "$qemu_cpu" -smp "$cpus" -m "$memory" -display none \
        -vga none -no-reboot -nodefaults -serial "file:$1" ${QEMU_ARGS:-} \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$guest" "${qemu_boot_args[@]}" 2>"$1.err" &
    local pid=$! k st
    for ((k = 0; k < kvm_timeout * 10; ++k)); do
        if ! kill -0 $pid 2>/dev/null; then
            wait $pid
            st=$?
            if [ $((st & 1)) -eq 1 ]; then
                echo "exit $((st >> 1))"
            elif [ $st -eq 0 ]; then
                echo "shutdown"  # -no-reboot: a triple fault ends QEMU with status 0
            else
                echo "qemu-failed $st"
            fi
            return
        fi
        if grep -q "KVM internal error" "$1.err"; then
            sleep 0.2  # the register dump follows the message
            kill $pid
            wait $pid 2>/dev/null
            echo "internal-error $(sed -n 's/^[RE]IP=0*\([0-9a-f]*\) .*/\1/p' "$1.err" | head -1)"
            return
        fi
        sleep 0.1
    done
    kill $pid
    wait $pid 2>/dev/null
    echo "timeout"
}

# Skips (77) when softkvm's kvm accelerator cannot run 64-bit guests on this host, but
# only if QEMU's KVM cannot either (it must not run the same guest to its exit).
need_kvm_long_mode() {
    local caps why
    caps=$("$softkvm" caps --json)
    if python3 -c 'import json,sys; a={x["accelerator"]:x for x in json.load(sys.stdin)}; k=a["kvm"]; sys.exit(0 if k["available"] and any(f["name"]=="long-mode" and f["available"] for f in k["features"]) else 1)' <<<"$caps"; then
        return
    fi
    why=$(python3 -c 'import json,sys; a={x["accelerator"]:x for x in json.load(sys.stdin)}; k=a["kvm"]; print(k["detail"], *[f["name"]+": "+f["detail"] for f in k["features"] if f["name"]=="long-mode"], sep="; ")' <<<"$caps")
    if [ -r /dev/kvm ] && command -v qemu-system-x86_64 >/dev/null; then
        local theirs
        theirs=$(run_qemu_kvm "$tmp/qemu-probe")
        if [ "${theirs%% *}" = exit ]; then
            echo "softkvm says the kvm accelerator cannot run 64-bit guests ($why), but QEMU's KVM runs this guest to its exit ($theirs)" >&2
            exit 1
        fi
    fi
    echo "SKIP: the kvm accelerator cannot run 64-bit guests here, nor can QEMU's KVM: $why"
    exit 77
}

# How softkvm's kvm run ended, in run_qemu_kvm's terms. $1 = status, $2 = stderr file.
softkvm_ending() {
    case $1 in
        126) echo "internal-error $(sed -n 's/^rip=0*\([0-9a-f]*\) .*/\1/p' "$2" | head -1)" ;;
        125) echo "shutdown" ;;
        124) echo "timeout" ;;  # timeout(1): no --max-insns on kvm runs
        [0-9] | [1-5][0-9] | 6[0-3]) echo "exit $1" ;;
        *) echo "softkvm-status $1" ;;
    esac
}

# A run that ended well: status 0 and, for a guest that reports a SUMMARY, no failures.
# $1 = status, $2 = output file.
run_passed() {
    [ "$1" -eq 0 ] || return 1
    grep -q '^SUMMARY: ' "$2" || return 0
    grep -qE '^SUMMARY: [0-9]+ passed, 0 failed$' "$2"
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


case $mode in
skip)
    echo "SKIP: $softkvm"  # the second argument is the reason
    exit 77
    ;;
kvm)
    need_kvm_long_mode
    # Bounded like QEMU's run below: a vCPU that never comes back (a host whose /dev/kvm
    # never completes an instruction) ends as "timeout" for both.
    # shellcheck disable=SC2086
    timeout "$kvm_timeout" "$softkvm" run --accel kvm --cpus "$cpus" --memory "$memory" ${GUEST_ARGS:-} \
        "${boot_args[@]}" "$guest" >"$tmp/kvm" 2>"$tmp/kvm.err"
    st=$?
    cat "$tmp/kvm" "$tmp/kvm.err"
    if run_passed $st "$tmp/kvm" && [ -z "${KVM_NOT_EMU:-}" ]; then
        run_emu "$tmp/emu" "$tmp/stats.json" || { echo "the guest fails on emu" >&2; exit 1; }
        if ! diff -u "$tmp/emu" "$tmp/kvm"; then
            echo "serial output differs between softkvm emu (-) and kvm (+)" >&2
            exit 1
        fi
        echo "identical output on emu and kvm ($(wc -l <"$tmp/kvm") lines)"
        exit 0
    fi
    # Compared with QEMU's KVM on the same /dev/kvm: the guest's output where it differs
    # from emu for a stated reason, and any failure (a skip only if QEMU fails the same way).
    need_qemu
    ours=$(softkvm_ending $st "$tmp/kvm.err")
    theirs=$(run_qemu_kvm "$tmp/qemu")
    # Some nested hosts' KVM refuses the IA32_ARCH_CAPABILITIES value that QEMU's -cpu host
    # sets and QEMU aborts before the guest runs; without that MSR (softkvm does not set
    # it) QEMU runs the guest on the same /dev/kvm.
    if [ "${theirs%% *}" = qemu-failed ] && grep -q "failed to set MSR 0x10a" "$tmp/qemu.err"; then
        qemu_cpu=host,-arch-capabilities
        theirs=$(run_qemu_kvm "$tmp/qemu")
    fi
    same=0
    [ "$ours" = "$theirs" ] && cmp -s "$tmp/qemu" "$tmp/kvm" && same=1
    if run_passed $st "$tmp/kvm"; then
        [ $same -eq 1 ] || { diff -u "$tmp/qemu" "$tmp/kvm"; echo "output differs from QEMU's KVM (-): $theirs" >&2; exit 1; }
        echo "output not compared with emu (${KVM_NOT_EMU}); identical to QEMU's KVM -cpu $qemu_cpu on this host"
        exit 0
    fi
    if [ $same -eq 1 ]; then
        echo "SKIP: QEMU's KVM (-accel kvm -cpu $qemu_cpu) on this host fails the same guest with the same output and ending ($theirs): a limit of this host's /dev/kvm"
        exit 77
    fi
    diff -u "$tmp/qemu" "$tmp/kvm"
    echo "softkvm on kvm: $ours; QEMU's KVM on this host: $theirs (serial output above, QEMU -)" >&2
    exit 1
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
    # QEMU TCG's timers follow the host's clock: on a loaded host a QEMU run can fail one
    # of the guest's own timing checks (test_apic's periodic reload). Such a run (QEMU's
    # status not 0 where emu's is) is repeated, up to three runs; a QEMU run that passes
    # the guest's checks is compared as it is.
    for attempt in 1 2 3; do
        run_qemu "$tmp/qemu"
        qemu_st=$?
        [ $qemu_st -ne 0 ] && [ $emu_st -eq 0 ] && [ $attempt -lt 3 ] || break
        echo "QEMU TCG run $attempt failed the guest's checks (status $qemu_st): once more" >&2
    done
    if ! diff -u "$tmp/qemu" "$tmp/emu"; then
        echo "serial output differs between QEMU TCG (-) and softkvm emu (+)" >&2
        exit 1
    fi
    [ $emu_st -eq $qemu_st ] || { echo "exit codes differ: emu $emu_st, qemu $qemu_st" >&2; exit 1; }
    echo "identical output ($(wc -l <"$tmp/emu") lines), exit code $emu_st on both"
    ;;
engines)
    # The interpreter and the translating engine: identical serial output, exit status,
    # instruction count, VM exits and counters the guest can influence.
    if ! "$softkvm" caps | grep -q "translate (blocks"; then
        echo "skip: this build has no translating engine" >&2; exit 77
    fi
    GUEST_ARGS="${GUEST_ARGS:-} --engine interp" run_emu "$tmp/out1" "$tmp/s1.json"; st1=$?
    GUEST_ARGS="${GUEST_ARGS:-} --engine translate" run_emu "$tmp/out2" "$tmp/s2.json"; st2=$?
    [ $st1 -eq $st2 ] || { echo "exit status differs: interp $st1, translate $st2" >&2; exit 1; }
    cmp -s "$tmp/out1" "$tmp/out2" || { echo "serial output differs between engines" >&2; diff "$tmp/out1" "$tmp/out2" | head -20 >&2; exit 1; }
    for key in exit status guest_code instructions exits unclaimed_ports bus_locks \
        pmis mmio_read_resumes lbr_intercepted_accesses; do
        v1=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d.get(sys.argv[2], d['accel_counters'].get(sys.argv[2])), sort_keys=True))" "$tmp/s1.json" $key)
        v2=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d.get(sys.argv[2], d['accel_counters'].get(sys.argv[2])), sort_keys=True))" "$tmp/s2.json" $key)
        [ "$v1" = "$v2" ] || { echo "$key differs: interp $v1, translate $v2" >&2; exit 1; }
    done
    t=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accel_counters']['translated_blocks'])" "$tmp/s2.json")
    [ "$t" -gt 0 ] || { echo "the translating run translated no block" >&2; exit 1; }
    echo "interp and translate: identical output ($(wc -l <"$tmp/out1") lines), status $st1, $(grep -o '"instructions": [0-9]*' "$tmp/s1.json"), $t blocks translated"
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
    echo "usage: $0 emu|qemu|diff|determinism|engines|kvm SOFTKVM GUEST.elf" >&2
    exit 2
    ;;
esac
