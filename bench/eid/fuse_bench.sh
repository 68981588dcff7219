#!/usr/bin/env bash
# Benchmark (not a test): the encryption-ID FUSE view with many groups. Mounts a fresh
# database, times N group creations through the mount (one `mkdir` with N arguments), then `ls -l` of the directory holding them.
#   fuse_bench.sh SOFTKVM [N]        default N = 1000
set -euo pipefail
sk=$1 n=${2:-1000}
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir "$mnt"
cleanup() {
    fusermount3 -u "$mnt" 2>/dev/null || true
    kill "$fpid" 2>/dev/null || true
    wait "$fpid" 2>/dev/null || true
    rm -rf "$tmp"
}
"$sk" eid init --sev-asids 1-509 --min-sev-asid 100 --eid-db "$tmp/eid.db" >/dev/null
"$sk" eid mount "$mnt" --eid-db "$tmp/eid.db" &
fpid=$!
trap cleanup EXIT
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
mountpoint -q "$mnt" || { echo "cannot mount FUSE here"; exit 1; }
mkdir "$mnt/t"
t0=$(date +%s.%N)
# One mkdir process for all groups, so the figure is the view's cost, not process start-up.
mkdir $(printf "$mnt/t/g%d " $(seq "$n"))
t1=$(date +%s.%N)
dirs=$(ls -l "$mnt/t" | grep -c '^d')
t2=$(date +%s.%N)
[ "$dirs" -eq "$n" ] || { echo "ls -l listed $dirs groups, expected $n"; exit 1; }
printf '%d mkdirs: %.2f s\n' "$n" "$(echo "$t1 - $t0" | bc)"
printf 'ls -l of %d groups: %.2f s\n' "$n" "$(echo "$t2 - $t1" | bc)"
