#!/usr/bin/env bash
# Bus-lock benchmarks (docs/buslock.md), part of make bench:
#  1. detector overhead: each bench guest with the detector off and on
#     (--bus-lock-ratelimit 0 turns on bus-lock exits, so every block holding a locked
#     instruction runs through the detector), alternating, best of RUNS runs each, in
#     CPU seconds (user + system: less sensitive than wall time to a busy machine);
#  2. rate-limit accuracy: the split-lock storm guest under --bus-lock-ratelimit N,
#     bus locks per second of guest (virtual) time as the guest measures it, vs N.
# Usage: bench_buslock.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
runs=${RUNS:-3}
softkvm=$build/src/cli/softkvm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cpu_seconds() {  # runs "$@" quietly; prints its user + system CPU seconds
    local TIMEFORMAT='%U %S' t
    t=$({ time "$@" >/dev/null 2>&1; } 2>&1)
    awk '{ print $1 + $2 }' <<<"$t"
}
seconds() {  # $1 = stats file
    sed -n 's/.*"seconds": \([0-9.e+-]*\).*/\1/p' "$1"
}
best() {  # $@ = numbers
    printf '%s\n' "$@" | sort -g | head -1
}

echo "bus-lock detector overhead (CPU seconds, best of $runs, same binary, same run)"
printf '%-16s %10s %10s %8s\n' guest "off s" "on s" "on/off"
for g in bench_intloop bench_branch bench_memory bench_syscall bench_atomic; do
    image=$build/guests/$g.elf
    off=() on=()
    for _ in $(seq "$runs"); do
        off+=("$(cpu_seconds "$softkvm" run --quiet "$image")")
        on+=("$(cpu_seconds "$softkvm" run --quiet --bus-lock-ratelimit 0 "$image")")
    done
    o=$(best "${off[@]}") n=$(best "${on[@]}")
    printf '%-16s %10.3f %10.3f %8.3f\n' "$g" "$o" "$n" "$(echo "$n / $o" | bc -l)"
done

echo
echo "bus-lock rate limit: the split-lock storm guest (100000 split locks)"
printf '%-8s %12s %12s %10s %8s\n' limit "guest rate/s" "achieved/N" "delay s" "wall s"
for n in 100 1000 10000; do
    "$softkvm" run --bus-lock-ratelimit "$n" --stats-json "$tmp/rl.json" \
        "$build/guests/splitlock.elf" >"$tmp/rl.out"
    rate=$(sed -n 's/^user program: .*: \([0-9.]*\) per second$/\1/p' "$tmp/rl.out")
    delay=$(sed -n 's/.*"delay_seconds": \([0-9.e+-]*\).*/\1/p' "$tmp/rl.json")
    printf '%-8s %12s %12.4f %10.1f %8.3f\n' "$n" "$rate" "$(echo "$rate / $n" | bc -l)" "$delay" \
        "$(seconds "$tmp/rl.json")"
done
