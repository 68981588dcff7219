#!/usr/bin/env python3
"""guest.linux.perf_lbr: compares the guest's `perf record -b` pairs with the host's
`softkvm profile --lbr --json` pairs inside a program's code.

    perflbr_compare.py PROGRAM GUEST_LOG HOST_JSON TOLERANCE

PROGRAM is the ELF whose symbols lfsr_start and lfsr_end bound the code; GUEST_LOG holds
"perf-lbr: pair FROM TO COUNT" lines (tests/linux/lbr-record.sh); HOST_JSON is the
profile. Each side's pairs with source and target in the code are turned into shares of
that side's records there. Passes (status 0) when the hottest pair is the same, the pairs
with a share of at least 1% are the same set, and every such share differs by at most
TOLERANCE percentage points; prints both profiles side by side either way. Status 1 on
disagreement, 2 on unusable input.
"""
import json
import re
import subprocess
import sys

MIN_RECORDS = 1000  # fewer records in the code on either side: nothing to compare
BIG = 1.0  # percent: the pairs that must be in both


def symbols(prog):
    out = subprocess.run(["nm", prog], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.split("\n"):
        f = line.split()
        if len(f) == 3 and f[1] in "Tt":
            syms[f[2]] = int(f[0], 16)
    return syms


def shares(pairs, lo, hi):
    inside = {k: n for k, n in pairs.items() if lo <= k[0] < hi and lo <= k[1] < hi}
    total = sum(inside.values())
    return {k: 100.0 * n / total for k, n in inside.items()} if total else {}, total


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    prog, glog, hjson, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    syms = symbols(prog)
    if "lfsr_start" not in syms or "lfsr_end" not in syms:
        print(f"{prog}: no lfsr_start/lfsr_end symbols", file=sys.stderr)
        return 2
    lo, hi = syms["lfsr_start"], syms["lfsr_end"]
    named = sorted((v, k) for k, v in syms.items() if k not in ("lfsr_start", "lfsr_end"))

    def name(a):
        base = max((v, k) for v, k in named if v <= a)
        return base[1] + (f"+{a - base[0]:#x}" if a != base[0] else "")

    guest = {}
    with open(glog, errors="replace") as f:
        for line in f:
            m = re.match(r"^perf-lbr: pair (0x[0-9a-f]+) (0x[0-9a-f]+) (\d+)$", line.strip())
            if m:
                guest[(int(m.group(1), 16), int(m.group(2), 16))] = int(m.group(3))
    with open(hjson) as f:
        host = {(int(p["from"], 16), int(p["to"], 16)): p["count"] for p in json.load(f)["pairs"]}
    g, gn = shares(guest, lo, hi)
    h, hn = shares(host, lo, hi)
    print(f"records in the program's code: guest perf record -b {gn}, host softkvm profile {hn}")
    if gn < MIN_RECORDS or hn < MIN_RECORDS:
        print(f"too few records to compare (fewer than {MIN_RECORDS})")
        return 1
    print(f"  {'from':<18} {'to':<18} {'guest %':>8} {'host %':>8} {'diff':>6}")
    for k in sorted(set(g) | set(h), key=lambda k: (-max(g.get(k, 0), h.get(k, 0)), k)):
        a, b = g.get(k, 0.0), h.get(k, 0.0)
        print(f"  {name(k[0]):<18} {name(k[1]):<18} {a:8.2f} {b:8.2f} {a - b:+6.2f}")
    ok = True
    top_g, top_h = max(g, key=g.get), max(h, key=h.get)
    if top_g != top_h:
        print(f"the hottest pairs differ: guest {name(top_g[0])} -> {name(top_g[1])}, "
              f"host {name(top_h[0])} -> {name(top_h[1])}")
        ok = False
    big_g = {k for k, v in g.items() if v >= BIG}
    big_h = {k for k, v in h.items() if v >= BIG}
    for k in sorted(big_g ^ big_h):
        print(f"above {BIG}% on one side only: {name(k[0])} -> {name(k[1])}")
        ok = False
    worst = 0.0
    for k in sorted(big_g | big_h):
        d = abs(g.get(k, 0.0) - h.get(k, 0.0))
        worst = max(worst, d)
        if d > tol:
            print(f"{name(k[0])} -> {name(k[1])}: shares differ by {d:.2f} points (tolerance {tol})")
            ok = False
    print(f"{len(big_g & big_h)} pairs above {BIG}% on both sides; largest share difference "
          f"{worst:.2f} points (tolerance {tol})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
