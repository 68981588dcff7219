#!/usr/bin/env bash
# SIGTERM to a running confidential guest: softkvm stops the guest, gives its lease back
# itself (event "released", not "reaped") and exits with 128 + 15.
#   sigterm_test.sh SOFTKVM LOOP_GUEST
set -uo pipefail
sk=$1 guest=$2
tmp=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
db=$tmp/eid.db
"$sk" eid init --sev-asids 1-8 --min-sev-asid 5 --eid-db "$db" >/dev/null || exit 1
"$sk" eid mkdir /t --eid-db "$db" || exit 1
"$sk" run --confidential sev-es --eid-group /t --eid-db "$db" "$guest" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
    "$sk" eid leases --eid-db "$db" --json | grep -q "\"pid\": $pid" && break
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
st=$?
cat "$tmp/err"
[ $st -eq 143 ] || { echo "exit status $st, want 143"; exit 1; }
grep -q "stopped by Terminated" "$tmp/err" || { echo "no stop message"; exit 1; }
events=$("$sk" eid events --eid-db "$db")
echo "$events"
grep -q "released .*sev_es" <<<"$events" || { echo "lease not released by softkvm"; exit 1; }
if grep -q "reaped" <<<"$events"; then echo "lease had to be reaped"; exit 1; fi
echo "SIGTERM: guest stopped, lease given back, status 143"
