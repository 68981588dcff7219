#!/usr/bin/env bash
# Guest LBR benchmarks (docs/lbr.md), part of make bench:
#  1. recording cost: bench_branch (a bytecode interpreter, ~26% of its instructions
#     branches) as built, beside bench_branch_lbr, the same program with DEBUGCTL.LBR set
#     for its whole run (LBR_SELECT 0: every taken branch is recorded), with each engine
#     of ENGINES (default: "translate interp");
#  2. the host-side profiler: `softkvm profile --lbr` of bench_branch at two periods, with
#     each engine, against that engine's "off".
# Same binary, alternating, best of RUNS runs each; CPU seconds (user + system) and wall
# seconds. With CALLGRIND=1 (valgrind installed) also the host instructions each
# configuration executes for the first CG_INSNS guest instructions (default 30,000,000),
# counted by valgrind --tool=callgrind: the same on every run, however loaded the machine.
# Usage: [RUNS=N] [ENGINES="translate interp"] [CALLGRIND=1] bench_lbr.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3}
read -r -a engines <<<"${ENGINES:-translate interp}"
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
# The command and the description of configuration $1 (off-E, on-E, profile-E,
# profile_sparse-E for engine E); `extra` goes before the image (callgrind's --max-insns).
config() {
    local c=$1 extra=("${@:2}")
    case $c in
    off-*) what="LBR off (bench_branch), --engine ${c#off-}"
        cmd=("$softkvm" run --quiet --engine "${c#off-}" "${extra[@]}" "$off_img") ;;
    on-*) what="LBR recording on (bench_branch_lbr), --engine ${c#on-}"
        cmd=("$softkvm" run --quiet --engine "${c#on-}" "${extra[@]}" "$on_img") ;;
    profile-*) what="profile --lbr --period 10007, --engine ${c#profile-}"
        cmd=("$softkvm" profile --lbr --quiet --engine "${c#profile-}" --period 10007 "${extra[@]}" "$off_img") ;;
    profile_sparse-*) what="profile --lbr --period 1000003, --engine ${c#profile_sparse-}"
        cmd=("$softkvm" profile --lbr --quiet --engine "${c#profile_sparse-}" --period 1000003 "${extra[@]}" "$off_img") ;;
    esac
}

# What configuration $1 is compared with: its engine's "off".
base_of() {
    echo "off-${1#*-}"
}

declare -A res
configs=()
for e in "${engines[@]}"; do configs+=("off-$e" "on-$e" "profile-$e" "profile_sparse-$e"); done
for _ in $(seq "$runs"); do
    for c in "${configs[@]}"; do
        config "$c"
        res[$c]+="$(times "${cmd[@]}")"$'\n'
    done
done

echo "guest LBR recording and softkvm profile --lbr on bench_branch (best of $runs, alternating)"
printf '%-56s %9s %9s %8s %8s\n' configuration "CPU s" "wall s" "CPU/off" "wall/off"
for c in "${configs[@]}"; do
    base=$(base_of "$c")
    cpu=$(printf '%s' "${res[$c]}" | best 1)
    wall=$(printf '%s' "${res[$c]}" | best 2)
    base_cpu=$(printf '%s' "${res[$base]}" | best 1)
    base_wall=$(printf '%s' "${res[$base]}" | best 2)
    config "$c"
    printf '%-56s %9.3f %9.3f %8.3f %8.3f\n' "$what" "$cpu" "$wall" \
        "$(echo "$cpu / $base_cpu" | bc -l)" "$(echo "$wall / $base_wall" | bc -l)"
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
    printf '%-56s %15s %8s\n' configuration "host insns" "vs off"
    declare -A ir
    for c in "${configs[@]}"; do
        [[ $c == profile_sparse-* ]] && continue
        config "$c" --max-insns "$cg_insns"
        ir[$c]=$(irefs "${cmd[@]}")
        base=$(base_of "$c")
        printf '%-56s %15s %8.3f\n' "$what" "${ir[$c]}" "$(echo "${ir[$c]} / ${ir[$base]}" | bc -l)"
    done
fi
