#!/bin/bash
# Build berth as one static binary, with the berth-runc link beside it.
# usage: scripts/build.sh [OUTDIR]   (default: bin)
#
# Static: every container start execs berth twice (the runtime, then the
# container's init), and a static binary skips the dynamic loader's work
# (libc and libseccomp) each time. osusergo and netgo keep glibc's NSS,
# which cannot be linked statically, out of the binary, and
# sqlite_omit_load_extension keeps SQLite from needing dlopen.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin}
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
mkdir -p "$out"
go build -trimpath -tags osusergo,netgo,sqlite_omit_load_extension -ldflags '-linkmode external -extldflags "-static"' -o "$out/berth" ./cmd/berth
ln -sf berth "$out/berth-runc"
