#!/usr/bin/env bash
# Every malformed eid request on one database: message and exit status.
#   cli_errors.sh SOFTKVM EXPECT GUEST
set -euo pipefail
sk=$1 expect=$2 guest=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=(--eid-db "$tmp/eid.db")
"$sk" eid init --sev-asids 1-10 --min-sev-asid 6 "${db[@]}"
"$sk" eid init --sev-asids 1-10 --min-sev-asid 6 "${db[@]}"  # same range: fine
"$expect" 76 "refusing to change" "$sk" eid init --sev-asids 1-10 --min-sev-asid 7 "${db[@]}"
"$sk" eid mkdir /t "${db[@]}"
"$sk" eid mkdir /t/a "${db[@]}"
"$expect" 76 "already exists" "$sk" eid mkdir /t "${db[@]}"
"$expect" 77 "parent group /x does not exist" "$sk" eid mkdir /x/y "${db[@]}"
"$expect" 64 "may not contain '..'" "$sk" eid mkdir /t/../a "${db[@]}"
"$expect" 64 "empty component" "$sk" eid mkdir /t//a "${db[@]}"
"$expect" 64 "must start with '/'" "$sk" eid mkdir t/a "${db[@]}"
"$expect" 64 "unknown type 'tdx'" "$sk" eid set /t/a tdx.max=1 "${db[@]}"
"$expect" 64 "non-negative number" "$sk" eid set /t/a sev.max=-1 "${db[@]}"
"$expect" 64 "non-negative number" "$sk" eid set /t/a sev.max=lots "${db[@]}"
"$expect" 64 "expected TYPE.max=VALUE" "$sk" eid set /t/a sev=4 "${db[@]}"
"$expect" 64 "root group has no max" "$sk" eid set / sev.max=4 "${db[@]}"
"$expect" 77 "does not exist" "$sk" eid set /nope sev.max=4 "${db[@]}"
"$expect" 76 "has child groups" "$sk" eid rmdir /t "${db[@]}"
"$expect" 64 "cannot be removed" "$sk" eid rmdir / "${db[@]}"
"$expect" 77 "does not exist" "$sk" eid show /nope "${db[@]}"
"$sk" eid set /t/a sev.max=1 sev_es.max=max "${db[@]}"
"$expect" 0 "sev 1" "$sk" eid show /t/a "${db[@]}"
# A held lease blocks rmdir; a launch beyond the limit is refused with one clear line.
"$sk" eid hold -t sev -g /t/a "${db[@]}" -- sh -c "
  '$expect' 76 'live leases' '$sk' eid rmdir /t/a ${db[*]} &&
  '$expect' 75 'sev limit reached in /t/a: current 1, max 1' '$sk' run --confidential sev --eid-group /t/a ${db[*]} '$guest' &&
  '$expect' 75 'sev limit reached' '$sk' eid hold -t sev -g /t/a ${db[*]} -- true"
"$expect" 0 "misc.events.local" "$sk" eid show /t/a "${db[@]}"
"$sk" eid show /t/a --json "${db[@]}" | grep -q '"misc.events.local": "sev.max 2\\nsev_es.max 0\\n"'
# A corrupt database is refused and left as it is.
echo "not a database" > "$tmp/bad.db"
"$expect" 78 "move it aside" "$sk" eid ls --eid-db "$tmp/bad.db"
"$expect" 78 "move it aside" "$sk" eid init --sev-asids 1-10 --min-sev-asid 6 --eid-db "$tmp/bad.db"
[ "$(cat "$tmp/bad.db")" = "not a database" ]
echo "all eid error paths behave"
