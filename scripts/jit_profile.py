#!/usr/bin/env python3
"""Attribute `perf record` samples of a translating softkvm run to guest code.

perf cannot name the code in softkvm's code cache (a memfd mapping with no symbols), so
the translator writes a map when SOFTKVM_JIT_MAP=FILE is set (src/cpu/translate/jit_map.h:
one line per translated block). This script joins that map with `perf script` output:

  SOFTKVM_JIT_MAP=/tmp/jit.map perf record -k CLOCK_MONOTONIC -o /tmp/perf.data softkvm run ...
  perf script -i /tmp/perf.data -F time,ip,sym > /tmp/samples.txt
  scripts/jit_profile.py /tmp/jit.map /tmp/samples.txt [--symbols kallsyms-or-System.map]

A code-cache flush reuses host addresses. The map marks when each epoch began (`# epoch
E at NS`, CLOCK_MONOTONIC), so samples with a time (perf's -k CLOCK_MONOTONIC and
`-F time,ip,sym`) go to the translation that held their address at that time; samples
without one (`-F ip,sym`) go to the latest translation at their address.

It prints where the samples fell (generated code or softkvm's own functions), the guest
blocks with the most samples (their instructions, `*` for those run as host code), and
the guest instructions weighted by samples, split into translated and handler-called.
A block's samples are spread evenly over its instructions: a guide, not a measurement.
With --json, the same as one JSON object.
"""
import argparse
import bisect
import collections
import json
import re
import sys


def load_map(path):
    """The translations in the order they were made, each (host, size, epoch, phys, rip,
    mode, [mnemonic...]), and the epoch marks: (index of the next translation, CLOCK_MONOTONIC
    nanoseconds)."""
    lines = []
    marks = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if parts[:2] == ["#", "epoch"]:
                if len(parts) != 5 or parts[3] != "at" or not parts[4].isdigit():
                    sys.exit(f"jit_profile: {path}:{n}: not a code-map line")
                marks.append((len(lines), int(parts[4])))
                continue
            if len(parts) < 6:
                sys.exit(f"jit_profile: {path}:{n}: not a code-map line")
            try:
                host, size, epoch, phys, rip, mode = (int(parts[0], 16), int(parts[1], 16),
                                                      int(parts[2]), int(parts[3], 16),
                                                      int(parts[4], 16), int(parts[5]))
            except ValueError:
                sys.exit(f"jit_profile: {path}:{n}: not a code-map line")
            lines.append((host, size, epoch, phys, rip, mode, parts[6:]))
    return lines, marks


def next_mark_index(marks, when, end):
    """How many translations were made before time `when`, as far as the epoch marks
    tell: those before the first mark after it."""
    i = bisect.bisect_right([m[1] for m in marks], when)
    return marks[i][0] if i < len(marks) else end


class LiveCode:
    """The translations whose code is in the cache, by host address: a later one replaces
    every earlier one whose host range it overlaps (that code was flushed)."""

    def __init__(self):
        self.starts = []  # sorted host starts
        self.at = {}      # host start -> (end, translation index)

    def add(self, host, size, index):
        i = bisect.bisect_left(self.starts, host)
        if i > 0 and self.at[self.starts[i - 1]][0] > host:
            i -= 1
        while i < len(self.starts) and self.starts[i] < host + size:
            del self.at[self.starts[i]]
            del self.starts[i]
        self.starts.insert(i, host)
        self.at[host] = (host + size, index)

    def find(self, ip):
        i = bisect.bisect_right(self.starts, ip) - 1
        if i >= 0 and ip < self.at[self.starts[i]][0]:
            return self.at[self.starts[i]][1]
        return None


def load_symbols(path):
    """(address, name) of text symbols from /proc/kallsyms or a System.map."""
    syms = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and re.fullmatch(r"[0-9a-fA-F]+", p[0]) and p[1] in "tTwW":
                syms.append((int(p[0], 16), p[2]))
    syms.sort()
    return syms


def flush_note(epochs, timed):
    if epochs <= 1:
        return ""
    if timed:
        return "; samples attributed by time across the flushes"
    return "; a flush reused host addresses: samples go to the latest translation"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("map", help="the file SOFTKVM_JIT_MAP named")
    ap.add_argument("samples", help="`perf script -F ip,sym` output ('-': standard input)")
    ap.add_argument("--symbols", help="guest symbols by RIP: /proc/kallsyms or System.map")
    ap.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    a = ap.parse_args()

    blocks, marks = load_map(a.map)
    epochs = {b[2] for b in blocks}
    syms = load_symbols(a.symbols) if a.symbols else []
    sym_addrs = [s[0] for s in syms]

    def guest_symbol(rip):
        i = bisect.bisect_right(sym_addrs, rip) - 1
        return f"{syms[i][1]}+{rip - syms[i][0]:#x}" if i >= 0 else None

    # Samples: (time in ns or None, ip, host symbol). `perf script -F time,ip,sym` starts a
    # line with "SECONDS.MICROS:".
    samples = []
    src = sys.stdin if a.samples == "-" else open(a.samples)
    for line in src:
        p = line.split(None, 1)
        if not p:
            continue
        when = None
        if p[0].endswith(":"):
            try:
                when = round(float(p[0][:-1]) * 1e9)
            except ValueError:
                continue
            p = p[1].split(None, 1) if len(p) > 1 else []
            if not p:
                continue
        try:
            ip = int(p[0], 16)
        except ValueError:
            continue
        samples.append((when, ip, (p[1].strip() if len(p) > 1 else "[unknown]")[:100]))
    timed = bool(samples) and all(s[0] is not None for s in samples)

    # Each sample against the code that was in the cache when it was taken: the
    # translations made before the first epoch mark after its time (all of them without
    # times), the latest holding its address.
    total = len(samples)
    per_block = collections.Counter()
    host_side = collections.Counter()
    live = LiveCode()
    made = 0
    order = sorted(range(total), key=lambda k: samples[k][0]) if timed else range(total)
    for k in order:
        when, ip, sym = samples[k]
        limit = len(blocks)
        if timed:
            limit = next_mark_index(marks, when, len(blocks))
        while made < limit:
            live.add(blocks[made][0], blocks[made][1], made)
            made += 1
        found = live.find(ip)
        if found is not None:
            per_block[found] += 1
        else:
            host_side[sym] += 1
    if total == 0:
        sys.exit("jit_profile: no samples in the perf script output")

    weighted = collections.Counter()
    for index, n in per_block.items():
        mnems = blocks[index][6]
        for m in mnems:
            kind = "translated" if m.endswith("*") else "handler"
            weighted[(m.rstrip("*"), kind)] += n / len(mnems)

    in_code = sum(per_block.values())
    top_blocks = []
    for index, n in per_block.most_common(a.top):
        host, size, epoch, phys, rip, mode, mnems = blocks[index]
        top_blocks.append({"share": n / total, "phys": phys, "rip": rip,
                           "symbol": guest_symbol(rip) if syms else None,
                           "insns": mnems})
    result = {
        "samples": total,
        "generated_code_share": in_code / total,
        "translations": len(blocks),
        "cache_epochs": len(epochs),
        "host_functions": [{"share": n / total, "symbol": s}
                           for s, n in host_side.most_common(a.top)],
        "blocks": top_blocks,
        "instructions": [{"share": n / total, "mnemonic": m, "kind": k}
                         for (m, k), n in weighted.most_common(a.top)],
    }
    if a.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return
    print(f"{total} samples: {100 * in_code / total:.1f}% in generated code, "
          f"{100 - 100 * in_code / total:.1f}% in softkvm and the host "
          f"({len(blocks)} translations, {len(epochs)} code-cache epoch(s)"
          f"{flush_note(len(epochs), timed)})")
    print("\nsoftkvm and host functions:")
    for h in result["host_functions"]:
        print(f"  {100 * h['share']:5.1f}%  {h['symbol']}")
    print("\nguest blocks (* = translated to host code):")
    for b in top_blocks:
        where = f" {b['symbol']}" if b["symbol"] else ""
        print(f"  {100 * b['share']:5.1f}%  rip {b['rip']:#x} phys {b['phys']:#x}{where}: "
              f"{' '.join(b['insns'])}")
    print("\nguest instructions, weighted by their blocks' samples:")
    for w in result["instructions"]:
        print(f"  {100 * w['share']:5.1f}%  {w['mnemonic']} ({w['kind']})")


if __name__ == "__main__":
    main()
