#!/usr/bin/env bash
# Test assets for booting Linux under softkvm, from Debian's own packages only:
#   linux-image-amd64's versioned kernel package, busybox-static and linux-perf.
# Usage: scripts/linux_assets.sh [OUTDIR]        (default: build/linux-assets)
#
# The packages are fetched with `apt-get download` into OUTDIR/debs and unpacked with
# `dpkg-deb -x` under OUTDIR/root (nothing is installed on this machine, no kernel goes
# into /boot). Then two uncompressed initramfs archives are built:
#   OUTDIR/initramfs.cpio       BusyBox and /init (mounts proc, sys, dev; prints markers;
#                               runs each softkvm.run=CMD,ARG,... of the command line and
#                               /bin/sh when it has softkvm.shell; then powers off)
#   OUTDIR/initramfs-perf.cpio  the same plus perf and the shared libraries ldd names
# and OUTDIR/vmlinuz links to the kernel. Every run is idempotent; once the packages are
# in OUTDIR/debs no network is needed. The archives are byte-for-byte reproducible.
#
# Exit status: 0 done; 64 bad usage; 69 a package could not be downloaded (no network
# or no package index: the message says which); 70 unpacking or archiving failed.
set -euo pipefail

usage() { echo "usage: $0 [OUTDIR]" >&2; exit 64; }
[ $# -le 1 ] || usage
case "${1:-}" in -*) usage ;; esac
OUT=${1:-build/linux-assets}
mkdir -p "$OUT/debs"
OUT=$(cd "$OUT" && pwd)
DEBS=$OUT/debs

fail() { echo "linux_assets: $2" >&2; exit "$1"; }
for tool in apt-get apt-cache dpkg-deb cpio ldd; do
  command -v "$tool" >/dev/null || fail 70 "$tool is missing (scripts/deps.sh installs it)"
done

# The versioned kernel package linux-image-amd64 depends on (linux-image-6.1.0-N-amd64).
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1
}

# have PKG: a .deb of PKG is already in the cache.
have() { compgen -G "$DEBS/${1}_*.deb" >/dev/null; }

# fetch PKG...: apt-get download into the cache; one `apt-get update` if the index lacks
# the package or names a file the mirror no longer has.
updated=0
fetch() {
  local missing=() p
  for p in "$@"; do have "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "linux_assets: downloading ${missing[*]}"
  if (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" \
        >/dev/null 2>"$OUT/download.log"); then
    return 0
  fi
  if [ $updated -eq 0 ]; then
    updated=1
    echo "linux_assets: download failed; refreshing the package index (apt-get update)"
    apt-get update -qq >>"$OUT/download.log" 2>&1 || true
    fetch "${missing[@]}"
    return
  fi
  fail 69 "cannot download ${missing[*]} (network or package index missing; see $OUT/download.log)"
}

kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
  # No index at all (fresh container): a cached kernel package is enough offline.
  kdeb=$(compgen -G "$DEBS/linux-image-[0-9]*-amd64_*.deb" | head -n 1 || true)
  if [ -n "$kdeb" ]; then
    kpkg=$(basename "$kdeb" | cut -d_ -f1)
  else
    apt-get update -qq >/dev/null 2>&1 || true
    updated=1
    kpkg=$(kernel_pkg)
    [ -n "$kpkg" ] || fail 69 "no package index names linux-image-amd64's kernel (offline?)"
  fi
fi
fetch "$kpkg" busybox-static linux-perf

# Unpack each package once (a stamp names the .deb it came from).
ROOT=$OUT/root
mkdir -p "$ROOT"
unpack() {
  local deb
  deb=$(compgen -G "$DEBS/${1}_*.deb" | sort | tail -n 1)
  local stamp="$ROOT/.unpacked-$1"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(basename "$deb")" ]; then
    dpkg-deb -x "$deb" "$ROOT" || fail 70 "dpkg-deb -x $deb failed"
    basename "$deb" >"$stamp"
  fi
}
unpack "$kpkg"
unpack busybox-static
unpack linux-perf

vmlinuz=$(compgen -G "$ROOT/boot/vmlinuz-*" | sort | tail -n 1 || true)
[ -n "$vmlinuz" ] || fail 70 "$kpkg has no /boot/vmlinuz-*"
ln -sfn "${vmlinuz#"$OUT"/}" "$OUT/vmlinuz"
busybox=$ROOT/bin/busybox
[ -x "$busybox" ] || fail 70 "busybox-static has no /bin/busybox"
perf=$(compgen -G "$ROOT/usr/bin/perf_*" | sort | tail -n 1 || true)
[ -n "$perf" ] || perf=$ROOT/usr/bin/perf  # 6.1.y: /usr/bin/perf; older: perf_6.1
[ -x "$perf" ] || fail 70 "linux-perf has neither /usr/bin/perf nor /usr/bin/perf_*"

# The /init script. Markers let tests see how far the guest got.
write_init() {
  cat >"$1" <<'EOF'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "softkvm-init: start"
echo "softkvm-init: uname $(uname -sr)"
for word in $(cat /proc/cmdline); do
  case "$word" in
    softkvm.run=*) cmd=$(echo "${word#softkvm.run=}" | tr , ' ');
                   echo "softkvm-init: run $cmd"; $cmd ;;
    softkvm.shell) echo "softkvm-init: shell"; setsid cttyhack /bin/sh ;;
  esac
done
echo "softkvm-init: poweroff"
# ACPI soft-off (the DSDT's \_S5): softkvm's run ends with status 0, QEMU's too.
poweroff -f
EOF
  chmod 755 "$1"
}

# build_cpio DIR OUT: a reproducible newc archive of DIR (sorted names, mtime 0, owner 0).
build_cpio() {
  (cd "$1" && find . -mindepth 1 -exec touch -h -d @0 {} + &&
     find . -mindepth 1 | LC_ALL=C sort |
     cpio --quiet -o -H newc -R 0:0 --reproducible) >"$2.tmp" || fail 70 "cpio failed for $2"
  mv "$2.tmp" "$2"
}

stage() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"/{bin,sbin,proc,sys,dev,tmp,etc,usr/bin,usr/sbin}
  cp "$busybox" "$dir/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
  done
  write_init "$dir/init"
}

stamp="$OUT/.initramfs-inputs"
inputs="$(cat "$ROOT"/.unpacked-*) init-v3"
if [ ! -f "$OUT/initramfs.cpio" ] || [ ! -f "$OUT/initramfs-perf.cpio" ] ||
   [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  stage "$OUT/initramfs"
  build_cpio "$OUT/initramfs" "$OUT/initramfs.cpio"
  stage "$OUT/initramfs-perf"
  cp "$perf" "$OUT/initramfs-perf/usr/bin/perf"
  # perf's shared libraries as this Debian host resolves them (same release).
  ldd "$perf" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
    [ -f "$lib" ] || continue
    mkdir -p "$OUT/initramfs-perf$(dirname "$lib")"
    cp -L "$lib" "$OUT/initramfs-perf$lib"
  done
  build_cpio "$OUT/initramfs-perf" "$OUT/initramfs-perf.cpio"
  echo "$inputs" >"$stamp"
fi
echo "linux_assets: kernel $OUT/vmlinuz -> ${vmlinuz#"$OUT"/}"
echo "linux_assets: initramfs $OUT/initramfs.cpio, $OUT/initramfs-perf.cpio"
