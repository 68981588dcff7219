#!/usr/bin/env python3
"""Compares the kernel log of a softkvm boot with QEMU's boot of the same kernel.

    bootlog_compare.py EMU_LOG QEMU_LOG

A "complaint" is a kernel log line (one with a "[ seconds]" stamp) that contains one of
the words of COMPLAINT (warning, error, fail, unable, disabled, vulnerable, not found, ...).
Every complaint in softkvm's log that QEMU's log lacks is a difference; lines compare with
their numbers (decimal and hexadecimal) blanked, so "IRQ 4" and "IRQ 5" are the same
complaint but "MTRRs disabled" and "PCI: Fatal" are not. A difference fails the comparison
unless ALLOWED names it, each entry with the reason why emu's machine differs on purpose.

Exit status: 0 no unexplained difference, 1 at least one (listed), 2 bad usage or a log
without kernel lines.
"""
import re
import sys

COMPLAINT = re.compile(
    r"warn|error|fail|fatal|unable|cannot|can't|not available|not supported|unsupported|"
    r"disabled|vulnerab|bug|broken|invalid|missing|not found|no .* found|mismatch|unstable|"
    r"skipping|ignor|timed out|timeout|lost|stuck|spurious|bogus|refus|nobody cared|"
    r"too much work",
    re.IGNORECASE)

# Differences that are not a fault of emu's machine: (pattern, reason). The pattern must
# match the whole line (after its time stamp).
ALLOWED = [
    (r"DMI not present or invalid\.",
     "softkvm boots the kernel without firmware and so without SMBIOS (DMI) tables, as "
     "Firecracker does; QEMU's SeaBIOS builds them"),
    (r"x86/split lock detection: #DB: warning on user-space bus_locks",
     "not a complaint: Linux names its split-lock mode, which it can only choose because "
     "emu offers bus-lock #DB (CPUID.(7,0):ECX[24]); QEMU TCG does not"),
    (r"kvm-guest: PV spinlocks disabled, single CPU",
     "not a complaint: emu's hv layer presents KVM's signature (CPUID 0x40000000) as KVM "
     "does, so Linux runs its KVM guest set-up; QEMU TCG presents no hypervisor leaf"),
    (r"platform rtc_cmos: registered platform RTC device \(no PNP device found\)",
     "emu's DSDT describes no ISA devices (no PNP0B00 object); Linux finds the CMOS RTC at "
     "its legacy ports 0x70-0x71 instead and uses it (\"rtc_cmos rtc_cmos: registered as "
     "rtc0\")"),
    (r"i8042: PNP: No PS/2 controller found\.",
     "emu's DSDT describes no ISA devices (no PNP0303 object); Linux probes the i8042 at "
     "0x60/0x64 because the FADT's IAPC_BOOT_ARCH has the 8042 flag, and finds it "
     "(\"serio: i8042 KBD port\")"),
]

STAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?(.*)$")
NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")


def complaints(path):
    """The complaints of a log: {line with numbers blanked: first such line}, and the count
    of kernel lines."""
    found, kernel_lines = {}, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = STAMP.match(raw.rstrip("\r\n"))
            if not m:
                continue
            kernel_lines += 1
            text = m.group(1).strip()
            if COMPLAINT.search(text):
                found.setdefault(NUMBER.sub("#", text), text)
    return found, kernel_lines


def main(argv):
    if len(argv) != 3:
        print("usage: bootlog_compare.py EMU_LOG QEMU_LOG", file=sys.stderr)
        return 2
    try:
        emu, emu_lines = complaints(argv[1])
        qemu, qemu_lines = complaints(argv[2])
    except OSError as e:
        print(f"bootlog_compare: {e}", file=sys.stderr)
        return 2
    for name, n in ((argv[1], emu_lines), (argv[2], qemu_lines)):
        if n == 0:
            print(f"bootlog_compare: {name} has no kernel log lines", file=sys.stderr)
            return 2
    unexplained = 0
    for key, text in emu.items():
        if key in qemu:
            continue
        reason = next((r for p, r in ALLOWED if re.fullmatch(p, text)), None)
        if reason is None:
            print(f"ONLY IN EMU'S LOG: {text}")
            unexplained += 1
        else:
            print(f"allowed: {text}\n    ({reason})")
    for key, text in qemu.items():
        if key not in emu:
            print(f"only in QEMU's log: {text}")
    print(f"{len(emu)} complaints in emu's log ({emu_lines} kernel lines), {len(qemu)} in "
          f"QEMU's ({qemu_lines}); {unexplained} only in emu's and not explained")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
