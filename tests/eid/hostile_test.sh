#!/usr/bin/env bash
# Hostile operator input to `softkvm eid` and `run --confidential` (issue 8, items 1 and
# 5): tampered and read-only databases, concurrent inits, control characters in names.
#   hostile_test.sh SOFTKVM EXPECT GUEST
set -euo pipefail
sk=$1 expect=$2 guest=$3
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Two (here: eight) identical inits at once: all succeed, one creates, one init event.
for round in 1 2 3; do
    db=$tmp/race$round/eid.db
    pids=()
    for i in $(seq 8); do
        "$sk" eid init --sev-asids 1-16 --min-sev-asid 9 --eid-db "$db" >"$tmp/init.$i.out" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "a concurrent init failed: $(cat "$tmp"/init.*.out)"; done
    [ "$("$sk" eid events --eid-db "$db" | grep -c ' init ')" = 1 ] || fail "init logged twice"
done
# Mixed with a different range: that one is a conflict (76), never "corrupt" (78).
db=$tmp/race-mixed/eid.db
"$sk" eid init --sev-asids 1-16 --min-sev-asid 9 --eid-db "$db" >/dev/null &
p1=$!
set +e
"$sk" eid init --sev-asids 1-20 --min-sev-asid 9 --eid-db "$db" >"$tmp/mixed.out" 2>&1
st=$?
set -e
wait $p1 || true
[ "$st" = 0 ] || [ "$st" = 76 ] || fail "different concurrent init: status $st: $(cat "$tmp/mixed.out")"

# A tampered database: refused with 78 by every command and by run --confidential; check
# lists the problem; repair keeps the live lease; afterwards everything works.
db=$tmp/t/eid.db
D=(--eid-db "$db")
"$sk" eid init --sev-asids 1-16 --min-sev-asid 9 "${D[@]}" >/dev/null
"$sk" eid mkdir /t "${D[@]}"
"$sk" eid hold -t sev -g /t "${D[@]}" -- sleep 30 2>/dev/null &
holder=$!
for _ in $(seq 50); do "$sk" eid leases "${D[@]}" | grep -q ' 9 ' && break; sleep 0.1; done
sqlite3 "$db" "UPDATE meta SET value = 0 WHERE key = 'min_sev_asid'"
"$expect" 78 "min_sev_asid is 0, outside 1..17.*softkvm eid repair" "$sk" eid ls "${D[@]}"
"$expect" 78 "inconsistent" "$sk" run --confidential sev --eid-group /t "${D[@]}" "$guest"
"$expect" 78 "min_sev_asid is 0" "$sk" eid check "${D[@]}"
"$expect" 64 "give the host's range" "$sk" eid repair "${D[@]}"
"$expect" 0 "ASID range set to ASIDs 1-16, min SEV ASID 9" \
    "$sk" eid repair --sev-asids 1-16 --min-sev-asid 9 "${D[@]}"
"$expect" 0 "consistent" "$sk" eid check "${D[@]}"
"$sk" eid leases "${D[@]}" | grep -qE "/t +sev +9 +$holder" || fail "the live lease was lost"
"$expect" 76 "refusing to change" "$sk" eid repair --sev-asids 1-20 --min-sev-asid 9 "${D[@]}"
sqlite3 "$db" "UPDATE groups SET usage = -5 WHERE path = '/t' AND type = 'sev'"
"$expect" 78 "group /t has sev usage -5" "$sk" eid set /t sev.max=3 "${D[@]}"
"$expect" 0 "recounted as 1" "$sk" eid repair "${D[@]}"
"$expect" 0 "nothing to repair" "$sk" eid repair "${D[@]}"
kill "$holder"
wait "$holder" 2>/dev/null || true
"$expect" 0 "sev 0" "$sk" eid show /t "${D[@]}"

# Rejected group names are echoed with control characters escaped.
out=$("$sk" eid mkdir $'/a\e[2J\x07b' "${D[@]}" 2>&1) && fail "control characters accepted"
grep -qF '\x1b[2J\x07b' <<<"$out" || fail "name not escaped: $out"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$out"; then fail "raw control bytes echoed"; fi
"$expect" 64 "longer than 64 characters" "$sk" eid mkdir "/$(printf 'x%.0s' $(seq 65))" "${D[@]}"
"$sk" eid mkdir "/$(printf 'x%.0s' $(seq 64))" "${D[@]}"

# A read-only database (directory or file not writable by the user) is listed, and a
# change is refused as read-only (74), never as corruption.
ro=$tmp/ro
mkdir "$ro"
"$sk" eid init --sev-asids 1-16 --min-sev-asid 9 --eid-db "$ro/eid.db" >/dev/null
"$sk" eid mkdir /g --eid-db "$ro/eid.db"
as_user=()
if [ "$(id -u)" = 0 ]; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
chmod 555 "$ro"
chmod 444 "$ro/eid.db"
"$expect" 0 "^/g " "${as_user[@]}" "$sk" eid ls --eid-db "$ro/eid.db"
"$expect" 0 "consistent" "${as_user[@]}" "$sk" eid check --eid-db "$ro/eid.db"
"$expect" 74 "is read-only" "${as_user[@]}" "$sk" eid mkdir /h --eid-db "$ro/eid.db"
"$expect" 74 "is read-only" "${as_user[@]}" "$sk" run --confidential sev --eid-group /g \
    --eid-db "$ro/eid.db" "$guest"
# Only the file read-only, in a directory the user may write.
chmod 777 "$ro"
"$expect" 0 "^/g " "${as_user[@]}" "$sk" eid ls --eid-db "$ro/eid.db"
"$expect" 74 "is read-only" "${as_user[@]}" "$sk" eid set /g sev.max=1 --eid-db "$ro/eid.db"
# A directory the user cannot create the database in.
chmod 555 "$ro"
"$expect" 74 "not writable" "${as_user[@]}" "$sk" eid init --sev-asids 1-16 --min-sev-asid 9 \
    --eid-db "$ro/new.db"
chmod 755 "$ro"
chmod 644 "$ro/eid.db"

# Not a database at all: still "move it aside" (78); an empty file: "initialise it" (66).
echo "not a database" >"$tmp/bad.db"
"$expect" 78 "move it aside" "$sk" run --confidential sev --eid-group /g --eid-db "$tmp/bad.db" "$guest"
: >"$tmp/empty.db"
"$expect" 66 "empty database" "$sk" eid ls --eid-db "$tmp/empty.db"
"$sk" eid init --sev-asids 1-16 --min-sev-asid 9 --eid-db "$tmp/empty.db" >/dev/null
echo "hostile eid input: refused or handled with the right status"
