#!/usr/bin/env bash
# Guest LBR benchmarks (docs/lbr.md), part of make bench:
#  1. recording cost: bench_branch (a bytecode interpreter, ~26% of its instructions
#     branches) as built, beside bench_branch_lbr, the same program with DEBUGCTL.LBR set
#     for its whole run (LBR_SELECT 0: every taken branch is recorded);
#  2. the host-side profiler: `softkvm profile --lbr` of bench_branch at two periods.
# Same binary, alternating, best of RUNS runs each; CPU seconds (user + system) and wall
# seconds. With CALLGRIND=1 (valgrind installed) also the host instructions each
# configuration executes for the first CG_INSNS guest instructions (default 30,000,000),
# counted by valgrind --tool=callgrind: the same on every run, however loaded the machine.
# Usage: [RUNS=N] [CALLGRIND=1] bench_lbr.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3}
softkvm=$build/src/cli/softkvm
off_img=$build/guests/bench_branch.elf
on_img=$build/guests/bench_branch_lbr.elf

times() {  # runs "$@" quietly; prints "CPU-seconds wall-seconds"
    local TIMEFORMAT='%U %S %R' t
    t=$({ time "$@" >/dev/null 2>&1; } 2>&1)
    awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }' <<<"$t"
}
best() {  # field $1 of lines on stdin: the smallest
    awk -v f="$1" 'NR == 1 || $f < m { m = $f } END { printf "%.3f\n", m }'
}

declare -A res
configs=(off on profile profile_sparse)
for _ in $(seq "$runs"); do
    for c in "${configs[@]}"; do
        case $c in
        off) cmd=("$softkvm" run --quiet "$off_img") ;;
        on) cmd=("$softkvm" run --quiet "$on_img") ;;
        profile) cmd=("$softkvm" profile --lbr --quiet --period 10007 "$off_img") ;;
        profile_sparse) cmd=("$softkvm" profile --lbr --quiet --period 1000003 "$off_img") ;;
        esac
        res[$c]+="$(times "${cmd[@]}")"$'\n'
    done
done

echo "guest LBR recording and softkvm profile --lbr on bench_branch (best of $runs, alternating)"
printf '%-44s %9s %9s %11s\n' configuration "CPU s" "wall s" "CPU vs off"
off_cpu=$(printf '%s' "${res[off]}" | best 1)
for c in "${configs[@]}"; do
    cpu=$(printf '%s' "${res[$c]}" | best 1)
    wall=$(printf '%s' "${res[$c]}" | best 2)
    case $c in
    off) what="LBR off (bench_branch)" ;;
    on) what="guest LBR recording on (bench_branch_lbr)" ;;
    profile) what="profile --lbr --period 10007" ;;
    profile_sparse) what="profile --lbr --period 1000003" ;;
    esac
    printf '%-44s %9.3f %9.3f %11.3f\n' "$what" "$cpu" "$wall" "$(echo "$cpu / $off_cpu" | bc -l)"
done

if [ "${CALLGRIND:-0}" = 1 ]; then
    command -v valgrind >/dev/null || { echo "CALLGRIND=1: valgrind is not installed" >&2; exit 1; }
    cg_insns=${CG_INSNS:-30000000}
    irefs() {  # host instructions softkvm executes running "$@" (it ends with status 124)
        { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null || true; } |
            awk '/Collected :/ { print $NF }'
    }
    echo
    echo "host instructions (valgrind --tool=callgrind) for the first $cg_insns guest instructions"
    printf '%-44s %15s %11s\n' configuration "host insns" "vs off"
    off_ir=
    for c in off on profile; do
        case $c in
        off) what="LBR off (bench_branch)" cmd=(run --quiet --max-insns "$cg_insns" "$off_img") ;;
        on) what="guest LBR recording on (bench_branch_lbr)" cmd=(run --quiet --max-insns "$cg_insns" "$on_img") ;;
        profile) what="profile --lbr --period 10007"
            cmd=(profile --lbr --quiet --period 10007 --max-insns "$cg_insns" "$off_img") ;;
        esac
        ir=$(irefs "$softkvm" "${cmd[@]}")
        off_ir=${off_ir:-$ir}
        printf '%-44s %15s %11.3f\n' "$what" "$ir" "$(echo "$ir / $off_ir" | bc -l)"
    done
fi
