#!/usr/bin/env bash
# hostile_files.sh SOFTKVM IMAGES: guest "images" that are not regular files must be
# refused at once with status 66 and a clear message: a FIFO (opening one used to wait for
# a writer forever), a pipe, a symbolic-link loop.
set -u
sk=$1 images=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check NAME WANT_STATUS REGEX CMD...
    local name=$1 want=$2 regex=$3
    shift 3
    local out st
    out=$(timeout -s KILL 20 "$@" 2>&1)
    st=$?
    if [ "$st" -ne "$want" ] || ! grep -qE -- "$regex" <<<"$out"; then
        echo "FAIL $name: status $st (want $want), output: $out"
        fail=1
    else
        echo "ok   $name: $out"
    fi
}
mkfifo "$tmp/fifo"
check fifo 66 "fifo: not a regular file" "$sk" run "$tmp/fifo"
check pipe 66 "not a regular file" bash -c "cat '$images/good.elf' | '$sk' run /dev/stdin"
ln -s "$tmp/loop-b" "$tmp/loop-a"
ln -s "$tmp/loop-a" "$tmp/loop-b"
check symlink_loop 66 "loop-a: Too many levels of symbolic links" "$sk" run "$tmp/loop-a"
check char_device 66 "/dev/zero: not a regular file" "$sk" run /dev/zero
exit $fail
