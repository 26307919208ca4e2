#!/bin/bash
# Install what berth needs on Debian 12, build it, and run a first
# container: a busybox root filesystem made from Debian's busybox-static,
# imported as berth's first local image (busybox:local) and run with
# `berth run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (containers need it; rootless comes with 'berth runtime spec --rootless')" >&2; exit 1; }
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
command -v go >/dev/null || { echo "quickstart: Go 1.21 or newer is needed (newer toolchains come through the Go module proxy)" >&2; exit 1; }
need=()
for p in gcc pkg-config libseccomp-dev busybox-static containernetworking-plugins iptables; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/build.sh

bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc" "$bundle/rootfs/tmp"
cp /usr/bin/busybox "$bundle/rootfs/bin/busybox"
for a in $("$bundle/rootfs/bin/busybox" --list); do [ -e "$bundle/rootfs/bin/$a" ] || ln -s busybox "$bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$bundle/rootfs/etc/passwd"
echo 'root:x:0:' >"$bundle/rootfs/etc/group"
# The same tree as berth's first local image (no registry needed).
tar -C "$bundle/rootfs" -c . | bin/berth import -c 'CMD ["sh"]' - busybox:local >/dev/null
bin/berth images
# The first container, by the engine: image → snapshot → bundle → runtime.
bin/berth run --rm busybox:local sh -c 'echo hello from berth: $(hostname), pid $$, uid $(id -u); uname -r'
