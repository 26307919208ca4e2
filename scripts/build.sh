#!/bin/bash
# Build berth as a static binary, with the berth-runc link beside it, and
# berth-init, the small static binary containers start from (berth uses
# its built-in init when berth-init is not beside it; the two must come
# from one build).
# usage: scripts/build.sh [OUTDIR]   (default: bin)
#
# Static: every container start execs berth twice (the runtime, then the
# container's init), and a static binary skips the dynamic loader's work
# (libc and libseccomp) each time. osusergo and netgo keep glibc's NSS,
# which cannot be linked statically, out of the binary, and
# sqlite_omit_load_extension keeps SQLite from needing dlopen.
# The Go settings (GOEXPERIMENT=jsonv2) are in scripts/goenv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin}
# shellcheck source=goenv.sh
. scripts/goenv.sh
# cgo needs gcc, and libseccomp-golang needs libseccomp's headers and
# static library, found through pkg-config: install them when missing.
if ! command -v gcc >/dev/null || ! command -v pkg-config >/dev/null || ! pkg-config --exists libseccomp; then
  if [ "$(id -u)" != 0 ]; then
    echo "build.sh: gcc, pkg-config and libseccomp-dev are needed: apt-get install gcc pkg-config libseccomp-dev" >&2
    exit 1
  fi
  echo "build.sh: installing gcc, pkg-config and libseccomp-dev" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc pkg-config libseccomp-dev >/dev/null ||
    { echo "build.sh: apt-get install gcc pkg-config libseccomp-dev failed" >&2; exit 1; }
fi
mkdir -p "$out"
flags=(-trimpath -tags osusergo,netgo,sqlite_omit_load_extension -ldflags '-linkmode external -extldflags "-static"')
go build "${flags[@]}" -o "$out/berth" ./cmd/berth
go build "${flags[@]}" -o "$out/berth-init" ./cmd/berth-init
ln -sf berth "$out/berth-runc"
