#!/usr/bin/env bash
# softkvm run --accel kvm on the 32-bit test images; exit 77 (skip) when the host has no
# usable /dev/kvm, with the reason softkvm gives.   kvm_test.sh SOFTKVM IMAGES_DIR
set -u
sk=$1 images=$2
out=$("$sk" run --accel kvm "$images/good.elf" 2>&1)
st=$?
if [ $st -eq 69 ]; then
    echo "SKIP: $out"
    exit 77
fi
[ $st -eq 5 ] && [ "${out:0:1}" = "A" ] || { echo "good.elf on kvm: status $st, output '$out'"; exit 1; }
"$sk" run --accel kvm "$images/halt.elf" >/dev/null 2>&1
[ $? -eq 123 ] || { echo "halt.elf on kvm: want 123"; exit 1; }
"$sk" run --accel kvm "$images/triple.elf" >/dev/null 2>&1
[ $? -eq 125 ] || { echo "triple.elf on kvm: want 125"; exit 1; }
# The in-kernel local APIC: its one-shot timer interrupt wakes `sti; hlt` and the handler
# prints 'T'; its IRET (32-bit protected mode, no paging) returns to the main code. A KVM
# that cannot emulate that IRET (internal error, status 126) fails this test unless
# QEMU's KVM on the same /dev/kvm stops at the same instruction with the same error.
out=$("$sk" run --accel kvm "$images/apic.elf" 2>&1)
st=$?
case "$st:${out:0:1}" in
    0:T) ;;
    126:T)
        rip=$(sed -n 's/^rip=0*\([0-9a-f]*\) .*/\1/p' <<<"$out")
        command -v qemu-system-x86_64 >/dev/null || { echo "apic.elf on kvm: $out (no QEMU to compare)"; exit 1; }
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        # A nested host's KVM may refuse QEMU's IA32_ARCH_CAPABILITIES (QEMU aborts before
        # the guest runs): then QEMU runs without that MSR, as softkvm does.
        for cpu in host host,-arch-capabilities; do
            qemu-system-x86_64 -accel kvm -cpu $cpu -m 128M -display none -vga none -nodefaults \
                -no-reboot -serial "file:$tmp/out" -device isa-debug-exit,iobase=0xf4,iosize=4 \
                -kernel "$images/apic.elf" 2>"$tmp/err" &
            qpid=$!
            for ((k = 0; k < 600; ++k)); do
                grep -q "KVM internal error" "$tmp/err" && break
                kill -0 $qpid 2>/dev/null || break
                sleep 0.1
            done
            sleep 0.2
            kill $qpid 2>/dev/null
            wait $qpid 2>/dev/null
            qst=$?
            grep -q "failed to set MSR 0x10a" "$tmp/err" || break
        done
        qrip=$(sed -n 's/^EIP=0*\([0-9a-f]*\) .*/\1/p' "$tmp/err")
        if ! grep -q "KVM internal error" "$tmp/err" || [ "$qrip" != "$rip" ] || [ "$(cat "$tmp/out")" != T ]; then
            echo "apic.elf: softkvm on kvm stops at rip $rip ($out); QEMU's KVM does not (EIP '$qrip', output '$(cat "$tmp/out")')"
            exit 1
        fi
        echo "note: this host's KVM cannot emulate the 32-bit IRET at $rip after the timer interrupt; QEMU's KVM (-cpu $cpu) stops there too"
        ;;
    *) echo "apic.elf on kvm: status $st, output '$out'"; exit 1 ;;
esac
# More than one vCPU (a thread each, APs waiting for INIT/SIPI): every ending stops all
# threads and the process exits with the status of one vCPU.
"$sk" run --accel kvm --cpus 3 "$images/good.elf" >/dev/null 2>&1
[ $? -eq 5 ] || { echo "good.elf with --cpus 3 on kvm: want 5"; exit 1; }
"$sk" run --accel kvm --cpus 3 "$images/triple.elf" >/dev/null 2>&1
[ $? -eq 125 ] || { echo "triple.elf with --cpus 3 on kvm: want 125"; exit 1; }
# A triple fault on the BSP once the APs run guest code (smp-triple.elf) stops them too.
timeout 20 "$sk" run --accel kvm --cpus 3 "$images/smp-triple.elf" >/dev/null 2>&1
st=$?
[ $st -eq 125 ] || { echo "smp-triple.elf with --cpus 3 on kvm: status $st, want 125 (124: the run did not stop)"; exit 1; }
out=$("$sk" run --accel kvm --cpus 3 "$images/halt.elf" 2>&1)
[ $? -eq 123 ] && grep -q "every vCPU halted" <<<"$out" || { echo "halt.elf with --cpus 3 on kvm: want 123 ($out)"; exit 1; }
for sig in INT:130 TERM:143; do
    "$sk" run --accel kvm --cpus 4 "$images/loop.elf" >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    kill -"${sig%:*}" $pid
    timeout 10 tail --pid=$pid -f /dev/null || { kill -9 $pid; echo "SIG${sig%:*}: still running after 10 s"; exit 1; }
    wait $pid
    st=$?
    [ $st -eq "${sig#*:}" ] || { echo "SIG${sig%:*} with --cpus 4 on kvm: status $st, want ${sig#*:}"; exit 1; }
done
# SIGINT while all three vCPUs run guest code (smp-spin.elf starts the APs in `jmp .`):
# three threads use CPU time, and the signal still stops them all.
cpu_times() { for t in /proc/$1/task/*/stat; do awk '{print $1 ":" $14 + $15}' "$t"; done 2>/dev/null; }
"$sk" run --accel kvm --cpus 3 "$images/smp-spin.elf" >/dev/null 2>&1 &
pid=$!
sleep 1
before=$(cpu_times $pid)
sleep 1
after=$(cpu_times $pid)
kill -INT $pid
timeout 10 tail --pid=$pid -f /dev/null || { kill -9 $pid; echo "smp-spin: still running 10 s after SIGINT"; exit 1; }
wait $pid
st=$?
[ $st -eq 130 ] || { echo "smp-spin with --cpus 3 on kvm: status $st after SIGINT, want 130"; exit 1; }
busy=$(python3 -c 'import sys
ticks = lambda s: dict(l.split(":") for l in s.split())
b, a = ticks(sys.argv[1]), ticks(sys.argv[2])
print(sum(1 for t in a if int(a[t]) > int(b.get(t, a[t]))))' "$before" "$after")
[ "$busy" -ge 3 ] || { echo "smp-spin: want 3 vCPU threads using CPU time; thread:ticks $before -> $after"; exit 1; }
out=$("$sk" run --accel kvm --max-insns 10 "$images/good.elf" 2>&1)
[ $? -eq 64 ] || { echo "--max-insns with kvm: want 64 ($out)"; exit 1; }
echo "kvm accelerator: guest exit code, halt and triple fault as on emu"
