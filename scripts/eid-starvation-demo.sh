#!/usr/bin/env bash
# Encryption-ID starvation demo: a host with 6 SEV ASIDs and two tenants. Tenant A may
# hold 3. It tries to start 5 confidential guests and is refused after 3; tenant B's
# guests still start. Usage: eid-starvation-demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
sk=$build/src/cli/softkvm
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
db=(--eid-db "$tmp/eid.db")

echo "== encryption-ID starvation demo (database $tmp/eid.db)"
"$sk" eid init --sev-asids 1-10 --min-sev-asid 5 "${db[@]}"
"$sk" eid mkdir /tenants "${db[@]}"
"$sk" eid mkdir /tenants/a "${db[@]}"
"$sk" eid mkdir /tenants/b "${db[@]}"
"$sk" eid set /tenants/a sev.max=3 "${db[@]}"
echo "tenant A may hold 3 of the host's 6 SEV ASIDs; tenant B has no limit of its own"

# A confidential "guest" holds its ID while it runs; `eid hold` stands in for a long-lived
# VMM here so the demo needs no CPU time.
start() {  # start TENANT N
    "$sk" eid hold -t sev -g "/tenants/$1" "${db[@]}" -- sleep 30 2>"$tmp/$1$2.err" &
    pids+=($!)
    sleep 0.3
    if kill -0 "${pids[-1]}" 2>/dev/null; then
        echo "tenant $1 guest $2: started ($(sed -n 's/.*: \(sev ASID [0-9]*\).*/\1/p' "$tmp/$1$2.err"))"
        return 0
    fi
    wait "${pids[-1]}" && true
    echo "tenant $1 guest $2: REFUSED: $(sed 's/^softkvm eid hold: //' "$tmp/$1$2.err")"
    return 1
}
refused_a=0 started_b=0
for n in 1 2 3 4 5; do start a $n || refused_a=$((refused_a + 1)); done
for n in 1 2; do start b $n && started_b=$((started_b + 1)); done
echo
"$sk" eid ls "${db[@]}"
echo
echo "tenant A's refused launches, as cgroupfs counts them:"
"$sk" eid show /tenants/a "${db[@]}" | sed -n '/^misc.events.local/,+1p'
if [ "$refused_a" -ne 2 ] || [ "$started_b" -ne 2 ]; then
    echo "demo failed: tenant A refused $refused_a (want 2), tenant B started $started_b (want 2)" >&2
    exit 1
fi
echo "tenant A was held to its limit (2 launches refused) while tenant B started both guests"
