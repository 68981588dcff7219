#!/usr/bin/env bash
# Runs softkvm's libFuzzer targets for a bounded time each and prints one line per target:
# executions, coverage, corpus size and the verdict. Exits 1 if any target found a crash,
# a leak, a sanitizer report or a slow input (a hang).
# Usage: fuzz.sh FUZZ_BUILD MAIN_BUILD SECONDS [TARGET...]
# FUZZ_RUNS=N in the environment also stops each target after N executions (libFuzzer's
# -runs; the seed corpus counts), whichever comes first. FUZZ_TIMEOUT=S (default 10) is
# the wall-clock seconds after which an input counts as a hang: raise it for a run under
# `nice -n 19` on a loaded machine, where an input may wait seconds for a CPU.
# FUZZ_JOBS=N (default 1) runs N libFuzzer processes per target on its one corpus (-jobs=N
# -workers=N: each picks up what the others add); the executions are their sum.
set -uo pipefail
fuzz_build=${1:?usage: fuzz.sh FUZZ_BUILD MAIN_BUILD SECONDS [TARGET...]}
main_build=${2:?usage}
seconds=${3:?usage}
shift 3
# count NAME VALUE WHAT: VALUE must be a positive decimal number (of WHAT), else exit 2.
count() {
    case $2 in
        *[!0-9]* | 0*) ;;  # not only digits (10x), or a leading zero (0, 01)
        [1-9]*) return ;;
    esac
    echo "fuzz: $1 must be a positive number of $3, not '$2'" >&2
    exit 2
}
runs=${FUZZ_RUNS:--1}
[ "$runs" = -1 ] || count FUZZ_RUNS "$runs" executions
timeout=${FUZZ_TIMEOUT:-10}
count FUZZ_TIMEOUT "$timeout" seconds
jobs=${FUZZ_JOBS:-1}
count FUZZ_JOBS "$jobs" processes
here=$(cd "$(dirname "$0")/.." && pwd)
# Absolute paths: with FUZZ_JOBS, libFuzzer runs in a directory of its own.
[ -d "$fuzz_build" ] && fuzz_build=$(cd "$fuzz_build" && pwd)
[ -d "$main_build" ] && main_build=$(cd "$main_build" && pwd)
# Targets whose inputs are guest images: the built guests are their seeds.
GUEST_SEEDED=" fuzz_loader "

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(find "$fuzz_build/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x \
        -printf '%f\n' | sort)
fi
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no targets in $fuzz_build/fuzz" >&2
    exit 1
fi

failed=0
passed=0
printf '%-16s %12s %8s %8s %8s  %s\n' target executions seconds cov corpus result
for t in "${targets[@]}"; do
    bin=$fuzz_build/fuzz/$t
    corpus=$fuzz_build/corpus/$t
    artifacts=$fuzz_build/artifacts/$t
    log=$fuzz_build/logs/$t.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    seeds=()
    [ -d "$here/fuzz/seeds/$t" ] && seeds+=("$here/fuzz/seeds/$t")
    if [[ $GUEST_SEEDED == *" $t "* ]] && [ -d "$main_build/guests" ]; then
        seeds+=("$main_build/guests")
    fi
    # The CPU target's seeds: the conformance guests' code behind its input header.
    if [ "$t" = fuzz_cpu ] && [ -d "$main_build/guests" ]; then
        "$here/fuzz/cpu_seeds.sh" "$main_build/guests" "$fuzz_build/seeds/$t" >/dev/null &&
            seeds+=("$fuzz_build/seeds/$t")
    fi
    # -timeout: an input that runs that long is a hang; -rss_limit_mb: exhaustion is a failure.
    flags=(-max_total_time="$seconds" -runs="$runs" -timeout="$timeout" -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$artifacts/")
    if [ "$jobs" -gt 1 ]; then
        # libFuzzer writes job K's output to fuzz-K.log in its working directory.
        jobdir=$(cd "$(dirname "$log")" && pwd)/$t.jobs
        rm -rf "$jobdir" && mkdir -p "$jobdir"
        (cd "$jobdir" && "$bin" -jobs="$jobs" -workers="$jobs" "${flags[@]}" "$corpus" "${seeds[@]}") \
            >"$log" 2>&1
        status=$?
        cat "$jobdir"/fuzz-*.log >>"$log"
        executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$jobdir"/fuzz-*.log |
            awk '{ n += $1 } END { print n }')
        cov=$(for f in "$jobdir"/fuzz-*.log; do grep -o 'cov: [0-9]*' "$f" | tail -1; done |
            cut -d' ' -f2 | sort -n | tail -1)
    else
        "$bin" "${flags[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1
        status=$?
        executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    fi
    size=$(find "$corpus" -type f | wc -l)
    if [ $status -eq 0 ]; then
        verdict=ok
        passed=$((passed + 1))
    else
        verdict="FAILED (status $status, see $log; inputs in $artifacts)"
        failed=$((failed + 1))
    fi
    printf '%-16s %12s %8s %8s %8s  %s\n' "$t" "${executed:-?}" "$seconds" "${cov:-?}" "$size" "$verdict"
    if [ $status -ne 0 ]; then
        grep -m 20 -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | sed 's/^/  /'
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
