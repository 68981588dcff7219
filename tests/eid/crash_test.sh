#!/usr/bin/env bash
# A `softkvm run --confidential` holding a lease is killed with SIGKILL; the next
# controller operation must find the dead owner and release its ID.
#   crash_test.sh SOFTKVM LOOP_GUEST
set -euo pipefail
sk=$1 guest=$2
tmp=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
db=$tmp/eid.db
"$sk" eid init --sev-asids 1-8 --min-sev-asid 5 --eid-db "$db" >/dev/null
"$sk" eid mkdir /t --eid-db "$db"
"$sk" run --confidential sev --eid-group /t --eid-db "$db" "$guest" &
pid=$!
for _ in $(seq 100); do
    "$sk" eid leases --eid-db "$db" --json | grep -q "\"pid\": $pid" && break
    sleep 0.1
done
"$sk" eid leases --eid-db "$db" --json | grep -q "\"pid\": $pid" || { echo "lease never appeared"; exit 1; }
"$sk" eid show /t --eid-db "$db" | grep -E '^encryption_ids.sev.current +1$'
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
# The next operation reaps the dead owner's lease.
"$sk" eid show /t --eid-db "$db" | tee "$tmp/show"
grep -qE '^encryption_ids.sev.current +0$' "$tmp/show" || { echo "lease of the killed VMM leaked"; exit 1; }
"$sk" eid events --eid-db "$db" | grep -E "reaped .*dead pid $pid"
[ "$("$sk" eid leases --eid-db "$db" --json)" = "[]" ] || { echo "leases remain"; exit 1; }
echo "SIGKILLed VMM's lease was released by the next operation"
