#!/usr/bin/env bash
# lbr_profile.sh MODE SOFTKVM GUEST_DIR: end-to-end checks of `softkvm profile --lbr` on the
# lfsr demo guest.
#   determinism  two profiles of the same guest are byte-identical, and a sample falls at
#                every multiple of the period (exact virtual time)
#   symbols      --symbols with a System.map (nm's output) and with another ELF file
#   agree        the guest's own PMI-driven LBR profile and the host's agree: the same
#                pairs above 1% share, each share within 2 percentage points
#   engines      --engine interp and --engine translate print the same profile, byte for
#                byte (the translator's LBR records are the interpreter's), for two periods
#   kvm          --lbr-fmt on --accel kvm (GUEST_DIR: the CLI test images)
set -euo pipefail
mode=$1 sk=$2 dir=$3
guest=$dir/lfsr.elf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

case $mode in
determinism)
    "$sk" profile --lbr --period 10007 --quiet --json --top 0 "$guest" >"$tmp/a"
    "$sk" profile --lbr --period 10007 --quiet --json --top 0 "$guest" >"$tmp/b"
    cmp "$tmp/a" "$tmp/b" || fail "two profiles of the same guest differ"
    grep -q '"samples": [1-9]' "$tmp/a" || fail "no samples"
    # Exact points in virtual time: one sample at each multiple of the period that the
    # guest's run reaches, for two periods.
    for p in 10007 65536; do
        "$sk" profile --lbr --period "$p" --quiet --json --top 1 "$guest" >"$tmp/p.json"
        read -r insns samples < <(jq -r '"\(.instructions) \(.samples)"' "$tmp/p.json")
        [ "$samples" -eq $((insns / p)) ] ||
            fail "period $p: $samples samples in $insns instructions, want $((insns / p))"
    done
    echo "identical: $(grep -c '"count"' "$tmp/a") pairs"
    ;;
symbols)
    nm "$guest" >"$tmp/System.map"
    "$sk" profile --lbr --quiet --top 5 --symbols "$tmp/System.map" "$guest" >"$tmp/map.out"
    cat "$tmp/map.out"
    grep -qE '^ +[0-9.]+%  lfsr_run\+0x[0-9a-f]+ +func_b ' "$tmp/map.out" ||
        fail "System.map: no 'lfsr_run+off -> func_b' row"
    # An ELF file other than the image: the 64-bit link of the same program.
    "$sk" profile --lbr --quiet --top 5 --symbols "$dir/lfsr.elf64" "$guest" >"$tmp/elf.out"
    grep -qE 'func_b\+0x[0-9a-f]+ +lfsr_run\+0x' "$tmp/elf.out" ||
        fail "ELF symbols: no 'func_b+off -> lfsr_run+off' row"
    # Without symbols for these addresses the table shows them in hex.
    printf '0000000000000010 T low\n' >"$tmp/low.map"
    "$sk" profile --lbr --quiet --top 3 --symbols "$tmp/low.map" "$guest" >"$tmp/low.out"
    grep -qE '^ +[0-9.]+%  low\+0x1' "$tmp/low.out" || fail "low.map not used"
    ;;
engines)
    for p in 10007 997; do
        for e in interp translate; do
            "$sk" profile --lbr --engine "$e" --period "$p" --quiet --json --top 0 "$guest" \
                >"$tmp/$e.json"
        done
        grep -q '"samples": [1-9]' "$tmp/translate.json" || fail "period $p: no samples"
        cmp "$tmp/interp.json" "$tmp/translate.json" ||
            fail "period $p: the engines' profiles differ"
        echo "period $p: identical, $(grep -c '"count"' "$tmp/translate.json") pairs"
    done
    ;;
agree)
    "$sk" run "$guest" >"$tmp/guest.out"
    cat "$tmp/guest.out"
    "$sk" profile --lbr --period 10007 --json --top 0 "$guest" >"$tmp/host.json" 2>"$tmp/host.err"
    grep -q "self-profile off" "$tmp/host.err" ||
        fail "under the profiler the guest did not see the host owning the unit"
    # Guest rows: "lfsr:  18.75%  0x00101234 name  0x00101240 name".
    while read -r tag share from _ to _; do
        [ "$tag" = "lfsr:" ] && [[ $share == *% ]] && [[ $from == 0x* ]] || continue
        echo "$((from)) $((to)) ${share%\%}"
    done <"$tmp/guest.out" >"$tmp/guest.pairs"
    jq -r '.pairs[] | "\(.from) \(.to) \(.share * 100)"' "$tmp/host.json" |
        while read -r from to share; do echo "$((from)) $((to)) $share"; done >"$tmp/host.pairs"
    [ -s "$tmp/guest.pairs" ] || fail "the guest printed no pairs"
    awk -v bound=2.0 '
        NR == FNR { host[$1 " " $2] = $3; next }
        { guest[$1 " " $2] = $3 }
        END {
            bad = 0; n = 0
            for (k in guest) {
                if (guest[k] < 1.0) continue
                ++n
                h = (k in host) ? host[k] : 0
                d = guest[k] - h; if (d < 0) d = -d
                printf "pair %s: guest %.2f%%, host %.2f%%, difference %.2f\n", k, guest[k], h, d
                if (d > bound) bad = 1
            }
            for (k in host)
                if (host[k] >= 1.0 && !(k in guest)) {
                    printf "pair %s: host %.2f%%, not in the guest'"'"'s top pairs\n", k, host[k]
                    bad = 1
                }
            if (n < 3) { print "fewer than 3 pairs above 1%"; bad = 1 }
            exit bad
        }' "$tmp/host.pairs" "$tmp/guest.pairs" || fail "the guest's and the host's profiles disagree"
    echo "agree: every pair above 1% within 2 percentage points"
    ;;
kvm)
    # The kvm accelerator's --lbr-fmt (docs/lbr.md): where the host's KVM offers no LBR
    # format, 0 is accepted (the guest has no LBR anyway) and any other format refused
    # with status 69; `caps` says why. $dir holds the CLI test images here. Skipped (77)
    # without a usable /dev/kvm.
    out=$("$sk" run --accel kvm "$dir/good.elf" 2>&1) && st=0 || st=$?
    [ "$st" -eq 69 ] && { echo "SKIP: $out"; exit 77; }
    caps=$("$sk" caps | sed -n '/^kvm /,$p' | grep guest-lbr) || fail "caps: no kvm guest-lbr line"
    echo "$caps"
    if grep -q "guest-lbr  *no " <<<"$caps"; then
        "$sk" run --accel kvm --lbr-fmt 0 "$dir/good.elf" >/dev/null 2>&1 && st=0 || st=$?
        [ "$st" -eq 5 ] || fail "--lbr-fmt 0 on a host without LBR: status $st, want 5"
        out=$("$sk" run --accel kvm --lbr-fmt 5 "$dir/good.elf" 2>&1) && st=0 || st=$?
        [ "$st" -eq 69 ] || fail "--lbr-fmt 5 on a host without LBR: status $st, want 69"
        grep -q "kvm: --lbr-fmt: " <<<"$out" || fail "no reason given: $out"
    else
        # An Intel host: the host's own format is written with KVM_SET_MSRS; another is refused.
        fmt=$(sed -n 's/.*host LBR format \([0-9]*\).*/\1/p' <<<"$caps")
        "$sk" run --accel kvm --lbr-fmt "$fmt" "$dir/good.elf" >/dev/null 2>&1 && st=0 || st=$?
        [ "$st" -eq 5 ] || fail "--lbr-fmt $fmt (the host's) on kvm: status $st, want 5"
        "$sk" run --accel kvm --lbr-fmt $((fmt == 1 ? 2 : 1)) "$dir/good.elf" >/dev/null 2>&1 && st=0 || st=$?
        [ "$st" -eq 64 ] || fail "another format on kvm: status $st, want 64"
    fi
    echo "kvm --lbr-fmt: as documented"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
