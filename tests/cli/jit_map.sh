#!/usr/bin/env bash
# jit_map.sh SOFTKVM GUEST JIT_PROFILE: the translator's code map for profilers
# (SOFTKVM_JIT_MAP, docs/translator.md) lists every translated block with its host code
# range and guest instructions, and scripts/jit_profile.py attributes samples by it.
set -u
sk=$1 guest=$2 profile=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

SOFTKVM_JIT_MAP=$tmp/map "$sk" run --engine translate "$guest" >"$tmp/out" 2>&1 ||
    fail "the guest ended with status $? ($(tail -n 1 "$tmp/out"))"
[ -s "$tmp/map" ] || fail "no code map written"
python3 - "$tmp/map" "$guest" <<'PY' || exit 1
import struct, sys
lines = [l.split() for l in open(sys.argv[1])]
elf = open(sys.argv[2], "rb").read()
# The guest's loaded segments (ELF32 or ELF64 program headers, PT_LOAD).
is64 = elf[4] == 2
phoff, phentsize, phnum = ((struct.unpack_from("<Q", elf, 32)[0], *struct.unpack_from("<HH", elf, 54))
                           if is64 else (struct.unpack_from("<I", elf, 28)[0], *struct.unpack_from("<HH", elf, 42)))
segments = []
for i in range(phnum):
    o = phoff + i * phentsize
    if struct.unpack_from("<I", elf, o)[0] != 1:
        continue
    vaddr, memsz = (struct.unpack_from("<QQ", elf, o + 16)[0], struct.unpack_from("<Q", elf, o + 40)[0]) if is64 \
        else (struct.unpack_from("<I", elf, o + 8)[0], struct.unpack_from("<I", elf, o + 20)[0])
    segments.append((vaddr, vaddr + memsz))
ranges = {}
for f in lines:
    if len(f) < 7: sys.exit(f"FAIL: short line {f}")
    host, size, epoch, rip, mode = int(f[0], 16), int(f[1], 16), int(f[2]), int(f[4], 16), int(f[5])
    if size <= 0 or mode not in range(4): sys.exit(f"FAIL: bad size or mode in {f}")
    if not any(a <= rip < b for a, b in segments): sys.exit(f"FAIL: block at {rip:#x} outside the guest's segments {segments}")
    ranges.setdefault(epoch, []).append((host, host + size))
for epoch, rs in ranges.items():
    rs.sort()
    for (a, b), (c, d) in zip(rs, rs[1:]):
        if c < b: sys.exit(f"FAIL: host ranges overlap in epoch {epoch}: {a:#x}-{b:#x}, {c:#x}-{d:#x}")
if not any(w.endswith("*") for f in lines for w in f[6:]):
    sys.exit("FAIL: no instruction marked as translated")
print(f"{len(lines)} translations, all in the guest's code, no overlapping host code")
PY

# Three samples: two in the first block's code, one in a softkvm function.
read -r host size _ _ rip _ < "$tmp/map"
printf '%x\n%x\n%s\n' $((0x$host)) $((0x$host + 0x$size - 1)) "ffffffff81000000 some_host_function" >"$tmp/samples"
"$profile" "$tmp/map" "$tmp/samples" --json >"$tmp/profile.json" || fail "jit_profile.py failed"
python3 - "$tmp/profile.json" "$rip" <<'PY' || exit 1
import json, sys
p = json.load(open(sys.argv[1]))
rip = int(sys.argv[2], 16)
if p["samples"] != 3 or abs(p["generated_code_share"] - 2 / 3) > 1e-9:
    sys.exit(f"FAIL: {p['samples']} samples, generated share {p['generated_code_share']}")
if p["blocks"][0]["rip"] != rip or abs(p["blocks"][0]["share"] - 2 / 3) > 1e-9:
    sys.exit(f"FAIL: top block {p['blocks'][0]}, want rip {rip:#x} with 2/3")
if p["host_functions"][0]["symbol"] != "some_host_function":
    sys.exit(f"FAIL: host functions {p['host_functions']}")
print("samples attributed as expected")
PY

# A map that cannot be written: said once, and the run goes on.
SOFTKVM_JIT_MAP=$tmp/no/such/dir/map "$sk" run --engine translate "$guest" >"$tmp/out2" 2>&1 ||
    fail "an unwritable map stopped the run (status $?)"
grep -q "SOFTKVM_JIT_MAP: cannot write" "$tmp/out2" || fail "no message for an unwritable map"
# Not a code map: a clear error.
echo "not a map" >"$tmp/bad"
if "$profile" "$tmp/bad" "$tmp/samples" 2>"$tmp/err"; then fail "a malformed map was accepted"; fi
grep -q "not a code-map line" "$tmp/err" || fail "unclear error: $(cat "$tmp/err")"
echo "PASS"
