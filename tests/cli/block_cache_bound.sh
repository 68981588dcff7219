#!/usr/bin/env bash
# block_cache_bound.sh SOFTKVM IMAGES: a guest that runs code from ever new start
# addresses (many-blocks.elf: about 100,000 distinct blocks before the instruction limit)
# keeps softkvm's memory bounded: the decoded-block cache flushes at its limit instead of
# growing (unbounded, those blocks took more than 600 MB).
set -u
sk=$1 images=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timeout -s KILL 120 "$sk" run --max-insns 6000000 --stats-json "$tmp/stats.json" \
    "$images/many-blocks.elf"
st=$?
if [ "$st" -ne 124 ]; then
    echo "FAIL: status $st, want 124 (instruction limit)"
    exit 1
fi
field() { grep -oE "\"$1\": [0-9]+" "$tmp/stats.json" | grep -oE '[0-9]+$'; }
rss=$(field max_rss_kib)
flushes=$(field block_cache_flushes)
built=$(field blocks_built)
echo "blocks built $built, cache flushes $flushes, peak RSS $rss KiB"
[ "${built:-0}" -gt 50000 ] || { echo "FAIL: the guest built only $built blocks"; exit 1; }
[ "${flushes:-0}" -ge 1 ] || { echo "FAIL: the cache never flushed"; exit 1; }
[ "${rss:-999999999}" -lt 200000 ] || { echo "FAIL: peak RSS $rss KiB is not bounded"; exit 1; }
