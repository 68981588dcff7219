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
raw = [l.split() for l in open(sys.argv[1])]
# Epoch marks: `# epoch E at NS` before each epoch's first translation (the first line).
marks = [f for f in raw if f[:2] == ["#", "epoch"]]
if not raw or raw[0][:2] != ["#", "epoch"] or raw[0][2] != "1":
    sys.exit(f"FAIL: the map does not start with epoch 1's mark: {raw[:1]}")
if any(len(f) != 5 or f[3] != "at" or not f[4].isdigit() for f in marks):
    sys.exit(f"FAIL: malformed epoch mark in {marks}")
lines = [f for f in raw if f[:1] != ["#"]]
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
read -r host size _ _ rip _ < <(grep -v '^#' "$tmp/map")
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

# A flush reuses host addresses: block A at 0x1000 in epoch 1, block B at 0x1000 in epoch 2
# (marked at 2 s). Samples with times (`perf script -F time,ip,sym`) go to the code
# that was there when they were taken; without times, to the latest translation.
cat >"$tmp/flushmap" <<'MAP'
# epoch 1 at 1000000000
1000 100 1 a000 a000 3 add* jmp*
# epoch 2 at 2000000000
1000 80 2 b000 b000 3 sub* jnz*
MAP
printf '1.500000:  1010 [unknown]\n1.600000:  1090 [unknown]\n2.500000:  1010 [unknown]\n' >"$tmp/timed"
"$profile" "$tmp/flushmap" "$tmp/timed" --json >"$tmp/timed.json" || fail "jit_profile.py failed on timed samples"
sed 's/^[0-9.]*: *//' "$tmp/timed" >"$tmp/untimed"
"$profile" "$tmp/flushmap" "$tmp/untimed" --json >"$tmp/untimed.json" || fail "jit_profile.py failed"
python3 - "$tmp/timed.json" "$tmp/untimed.json" <<'PY' || exit 1
import json, sys
t, u = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
shares = {b["rip"]: b["share"] for b in t["blocks"]}
if shares != {0xa000: 2 / 3, 0xb000: 1 / 3} or t["generated_code_share"] != 1:
    sys.exit(f"FAIL: timed samples attributed as {t['blocks']}")
# Untimed: 0x1010 goes to B (the latest there), 0x1090 lies past B's 0x80 bytes: outside.
shares = {b["rip"]: b["share"] for b in u["blocks"]}
if shares != {0xb000: 2 / 3} or abs(u["generated_code_share"] - 2 / 3) > 1e-9:
    sys.exit(f"FAIL: untimed samples attributed as {u['blocks']}")
print("samples attributed across a flush by their times")
PY

# A map that cannot be written: said once, and the run goes on.
SOFTKVM_JIT_MAP=$tmp/no/such/dir/map "$sk" run --engine translate "$guest" >"$tmp/out2" 2>&1 ||
    fail "an unwritable map stopped the run (status $?)"
grep -q "SOFTKVM_JIT_MAP: cannot write" "$tmp/out2" || fail "no message for an unwritable map"
# Not a code map: a clear error.
echo "not a map" >"$tmp/bad"
if "$profile" "$tmp/bad" "$tmp/samples" 2>"$tmp/err"; then fail "a malformed map was accepted"; fi
grep -q "not a code-map line" "$tmp/err" || fail "unclear error: $(cat "$tmp/err")"
echo "# epoch two at noon" >"$tmp/bad"
if "$profile" "$tmp/bad" "$tmp/samples" 2>"$tmp/err"; then fail "a malformed epoch mark was accepted"; fi
grep -q "bad:1: not a code-map line" "$tmp/err" || fail "unclear error: $(cat "$tmp/err")"
echo "PASS"
