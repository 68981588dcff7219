#!/usr/bin/env bash
# expect.sh STATUS REGEX CMD...: runs CMD and requires exit status STATUS and output
# (stdout and stderr together) matching the extended regex REGEX.
set -u
want=$1 regex=$2
shift 2
out=$("$@" 2>&1)
st=$?
echo "$out"
if [ "$st" -ne "$want" ]; then
    echo "expected exit status $want, got $st" >&2
    exit 1
fi
if ! grep -qE -- "$regex" <<<"$out"; then
    echo "output does not match /$regex/" >&2
    exit 1
fi
