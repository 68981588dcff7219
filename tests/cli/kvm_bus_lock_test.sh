#!/usr/bin/env bash
# softkvm run --accel kvm --bus-lock-ratelimit on a host whose KVM lacks
# KVM_CAP_X86_BUS_LOCK_EXIT: a one-line error naming the capability, exit status 69.
# Skipped (77) where /dev/kvm is unusable or the host has the capability.
#   kvm_bus_lock_test.sh SOFTKVM IMAGES_DIR
set -u
sk=$1 images=$2
caps=$("$sk" caps --json)
state=$(python3 -c 'import json,sys
a={x["accelerator"]:x for x in json.load(sys.stdin)}["kvm"]
f={x["name"]:x["available"] for x in a["features"]}
print("unusable" if not a["available"] else "has-cap" if f.get("bus-lock-exit") else "lacks-cap")' <<<"$caps")
case $state in
    unusable) echo "SKIP: no usable /dev/kvm"; exit 77 ;;
    has-cap) echo "SKIP: this host's KVM offers KVM_CAP_X86_BUS_LOCK_EXIT"; exit 77 ;;
esac
out=$("$sk" run --accel kvm --bus-lock-ratelimit 100 "$images/good.elf" 2>&1)
st=$?
echo "$out"
[ $st -eq 69 ] || { echo "want exit status 69, got $st"; exit 1; }
grep -q 'needs KVM_CAP_X86_BUS_LOCK_EXIT' <<<"$out" || { echo "the capability is not named"; exit 1; }
[ "$(wc -l <<<"$out")" -eq 1 ] || { echo "want one line"; exit 1; }
