#!/usr/bin/env bash
# Mounts the FUSE view and drives it with a shell: mkdir, echo >, cat, rmdir, and the
# errors of bad writes.   fuse_test.sh SOFTKVM     (exit 77 = skipped)
set -uo pipefail
sk=$1
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
    echo "SKIP: /dev/fuse or fusermount3 is not available"
    exit 77
fi
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir "$mnt"
db=$tmp/eid.db
cleanup() {
    fusermount3 -u "$mnt" 2>/dev/null
    kill "$fpid" 2>/dev/null
    wait "$fpid" 2>/dev/null
    rm -rf "$tmp"
}
"$sk" eid init --sev-asids 1-20 --min-sev-asid 11 --eid-db "$db" >/dev/null || exit 1
"$sk" eid mount "$mnt" --eid-db "$db" 2>"$tmp/mount.err" &
fpid=$!
trap cleanup EXIT
for _ in $(seq 50); do
    mountpoint -q "$mnt" && break
    sleep 0.1
done
if ! mountpoint -q "$mnt"; then
    if grep -qiE "fuse: device not found|permission denied|operation not permitted" "$tmp/mount.err"; then
        echo "SKIP: cannot mount FUSE here: $(cat "$tmp/mount.err")"
        exit 77
    fi
    echo "mount failed: $(cat "$tmp/mount.err")"
    exit 1
fi
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect "want" cmd...
    local want=$1
    shift
    local got
    got=$("$@" 2>&1) || true
    [ "$got" = "$want" ] || fail "$*: got '$got', want '$want'"
}

expect "$(printf 'sev 10\nsev_es 10')" cat "$mnt/misc.capacity"
expect "$(printf 'total 10\nused 0')" cat "$mnt/encryption_ids.sev.stat"
mkdir "$mnt/tenants" || fail "mkdir tenants"
mkdir "$mnt/tenants/a" || fail "mkdir tenants/a"
[ -d "$mnt/tenants/a" ] || fail "group is not a directory"
expect "max" cat "$mnt/tenants/a/encryption_ids.sev.max"
echo 4 > "$mnt/tenants/a/encryption_ids.sev.max" || fail "echo 4 > encryption_ids.sev.max"
expect "4" cat "$mnt/tenants/a/encryption_ids.sev.max"
echo "sev_es 2" > "$mnt/tenants/a/misc.max" || fail "echo 'sev_es 2' > misc.max"
expect "$(printf 'sev 4\nsev_es 2')" cat "$mnt/tenants/a/misc.max"
echo "sev max" > "$mnt/tenants/a/misc.max" || fail "echo 'sev max' > misc.max"
expect "max" cat "$mnt/tenants/a/encryption_ids.sev.max"
# Bad writes fail with the kernel's errnos.
( echo "tdx 1" > "$mnt/tenants/a/misc.max" ) 2>"$tmp/err" && fail "unknown type accepted"
grep -q "Invalid argument" "$tmp/err" || fail "unknown type: $(cat "$tmp/err")"
( echo "sev 99999999999999999999" > "$mnt/tenants/a/misc.max" ) 2>"$tmp/err" && fail "overflow accepted"
grep -q "Numerical result out of range" "$tmp/err" || fail "overflow: $(cat "$tmp/err")"
( echo -1 > "$mnt/tenants/a/encryption_ids.sev.max" ) 2>"$tmp/err" && fail "negative max accepted"
grep -q "Invalid argument" "$tmp/err" || fail "negative: $(cat "$tmp/err")"
( echo 1 > "$mnt/tenants/a/misc.current" ) 2>"$tmp/err" && fail "read-only file written"
grep -q "Permission denied" "$tmp/err" || fail "read-only: $(cat "$tmp/err")"
rmdir "$mnt/tenants" 2>"$tmp/err" && fail "rmdir of a group with children"
grep -q "busy" "$tmp/err" || fail "rmdir busy: $(cat "$tmp/err")"
# The set of files is fixed; answers as cgroup v2 (EPERM; creating a file EACCES).
for op in "rm -f $mnt/tenants/a/misc.max" "mv $mnt/tenants/a $mnt/tenants/b" \
          "mv $mnt/tenants/a/misc.max $mnt/tenants/a/x" "chmod 600 $mnt/tenants/a/misc.max" \
          "ln -s misc.max $mnt/tenants/a/l" "ln $mnt/tenants/a/misc.max $mnt/tenants/a/h"; do
    $op 2>"$tmp/err" && fail "$op succeeded"
    grep -q "Operation not permitted" "$tmp/err" || fail "$op: $(cat "$tmp/err")"
done
touch "$mnt/tenants/a/newfile" 2>"$tmp/err" && fail "file created"
grep -q "Permission denied" "$tmp/err" || fail "create: $(cat "$tmp/err")"
# The CLI sees what the shell did.
"$sk" eid show /tenants/a --eid-db "$db" | grep -qE '^misc.max' || fail "CLI does not see the group"
rmdir "$mnt/tenants/a" || fail "rmdir tenants/a"
[ ! -e "$mnt/tenants/a" ] || fail "group still there"
echo "FUSE view: mkdir, echo, cat, rmdir and error paths behave as cgroupfs"
