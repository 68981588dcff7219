#!/usr/bin/env bash
# Encryption-ID starvation demo: a host with 6 SEV ASIDs and two tenants. Tenant A may
# hold 3. It tries to start 5 confidential guests and is refused after 3; tenant B's
# guests still start. Usage: eid-starvation-demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
sk=$build/src/cli/softkvm
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; rm -rf "$tmp"' EXIT
db=(--eid-db "$tmp/eid.db")

echo "== encryption-ID starvation demo (database $tmp/eid.db)"
"$sk" eid init --sev-asids 1-10 --min-sev-asid 5 "${db[@]}"
"$sk" eid mkdir /tenants "${db[@]}"
"$sk" eid mkdir /tenants/a "${db[@]}"
"$sk" eid mkdir /tenants/b "${db[@]}"
"$sk" eid set /tenants/a sev.max=3 "${db[@]}"
echo "tenant A may hold 3 of the host's 6 SEV ASIDs; tenant B has no limit of its own"

# Each tenant guest is `softkvm run --confidential sev`: it takes an SEV ASID from the
# tenant's group before the VM starts and holds it while the guest runs.
start() {  # start TENANT N
    "$sk" run --confidential sev --eid-group "/tenants/$1" "${db[@]}" \
        "$build/guests/tenant.elf" >"$tmp/$1$2.out" 2>"$tmp/$1$2.err" &
    pids+=($!)
    for _ in $(seq 50); do
        grep -q "guest up" "$tmp/$1$2.out" && break
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q "guest up" "$tmp/$1$2.out"; then
        local asid
        asid=$("$sk" eid leases "${db[@]}" | awk -v pid="${pids[-1]}" '$5 == pid { print $4 }')
        echo "tenant $1 guest $2: started (sev ASID $asid)"
        return 0
    fi
    wait "${pids[-1]}" || true
    echo "tenant $1 guest $2: REFUSED: $(sed 's/^softkvm run: //' "$tmp/$1$2.err")"
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
echo
echo "stopping every guest with SIGKILL; the next controller operation releases their IDs:"
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
"$sk" eid ls "${db[@]}" | sed -n '2p'
if [ "$refused_a" -ne 2 ] || [ "$started_b" -ne 2 ]; then
    echo "demo failed: tenant A refused $refused_a (want 2), tenant B started $started_b (want 2)" >&2
    exit 1
fi
echo "tenant A was held to its limit (2 launches refused) while tenant B started both guests"
