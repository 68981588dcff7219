#!/usr/bin/env python3
"""Attribute `perf record` samples of a translating softkvm run to guest code.

perf cannot name the code in softkvm's code cache (a memfd mapping with no symbols), so
the translator writes a map when SOFTKVM_JIT_MAP=FILE is set (src/cpu/translate/jit_map.h:
one line per translated block). This script joins that map with `perf script` output:

  SOFTKVM_JIT_MAP=/tmp/jit.map perf record -o /tmp/perf.data softkvm run ...
  perf script -i /tmp/perf.data -F ip,sym > /tmp/samples.txt
  scripts/jit_profile.py /tmp/jit.map /tmp/samples.txt [--symbols kallsyms-or-System.map]

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
    """Host start -> (size, epoch, phys, rip, mode, [mnemonic...]); the latest
    translation wins where a cache flush reused a host address."""
    blocks = {}
    epochs = set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) < 6:
                sys.exit(f"jit_profile: {path}:{n}: not a code-map line")
            try:
                host, size, epoch, phys, rip, mode = (int(parts[0], 16), int(parts[1], 16),
                                                      int(parts[2]), int(parts[3], 16),
                                                      int(parts[4], 16), int(parts[5]))
            except ValueError:
                sys.exit(f"jit_profile: {path}:{n}: not a code-map line")
            epochs.add(epoch)
            blocks[host] = (size, epoch, phys, rip, mode, parts[6:])
    return blocks, epochs


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("map", help="the file SOFTKVM_JIT_MAP named")
    ap.add_argument("samples", help="`perf script -F ip,sym` output ('-': standard input)")
    ap.add_argument("--symbols", help="guest symbols by RIP: /proc/kallsyms or System.map")
    ap.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    a = ap.parse_args()

    blocks, epochs = load_map(a.map)
    starts = sorted(blocks)
    syms = load_symbols(a.symbols) if a.symbols else []
    sym_addrs = [s[0] for s in syms]

    def guest_symbol(rip):
        i = bisect.bisect_right(sym_addrs, rip) - 1
        return f"{syms[i][1]}+{rip - syms[i][0]:#x}" if i >= 0 else None

    total = 0
    per_block = collections.Counter()
    host_side = collections.Counter()
    src = sys.stdin if a.samples == "-" else open(a.samples)
    for line in src:
        p = line.split(None, 1)
        if not p:
            continue
        try:
            ip = int(p[0], 16)
        except ValueError:
            continue
        total += 1
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and ip < starts[i] + blocks[starts[i]][0]:
            per_block[starts[i]] += 1
        else:
            host_side[(p[1].strip() if len(p) > 1 else "[unknown]")[:100]] += 1
    if total == 0:
        sys.exit("jit_profile: no samples in the perf script output")

    weighted = collections.Counter()
    for host, n in per_block.items():
        mnems = blocks[host][5]
        for m in mnems:
            kind = "translated" if m.endswith("*") else "handler"
            weighted[(m.rstrip("*"), kind)] += n / len(mnems)

    in_code = sum(per_block.values())
    top_blocks = []
    for host, n in per_block.most_common(a.top):
        size, epoch, phys, rip, mode, mnems = blocks[host]
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
          f"{'; a flush reused host addresses: samples go to the latest translation' if len(epochs) > 1 else ''})")
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
