#!/usr/bin/env bash
# make demo: boots the demo guest on softkvm's software CPU, then runs the
# encryption-ID starvation demo when it is present. Usage: demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
softkvm=$build/src/cli/softkvm

echo "== softkvm run --accel emu $build/guests/hello.elf"
"$softkvm" run --accel emu --stats "$build/guests/hello.elf"
echo "== guest exit status: $?"

if [ -x "$here/eid-starvation-demo.sh" ]; then
    echo
    "$here/eid-starvation-demo.sh" "$build"
fi
