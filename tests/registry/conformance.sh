#!/bin/bash
# The official OCI distribution-spec conformance suite (spec version 1.1)
# against berth's registry server, or against Debian's docker-registry
# (distribution) for comparison:
#
#   tests/registry/conformance.sh [berth|distribution]
#
# The suite is a Go program in the distribution-spec repository; it is
# built from the Go module proxy at a pinned version into
# $OCI_CONFORMANCE_CACHE. Prints the suite's summary and a last line
# "conformance(TARGET): N tests, F failed, S skipped"; exits non-zero when
# a test fails against berth.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:-berth}
version=${OCI_CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}
cache=${OCI_CONFORMANCE_CACHE:-$HOME/.cache/berth/oci-conformance}
bin=$cache/$version/oci-conformance
lib_name="conformance($target)"
. "$repo/scripts/lib.sh"
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi

tmp=$(mktemp -d /tmp/berth-conformance.XXXXXX)
server=
finish() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$tmp"
}
trap finish EXIT

if [ ! -x "$bin" ]; then
	echo "$lib_name: building the conformance suite $version"
	mkdir -p "$tmp/mod" "$(dirname "$bin")"
	(cd "$tmp/mod" && go mod init conformance-build >/dev/null 2>&1 &&
		go get "github.com/opencontainers/distribution-spec/conformance@$version" >/dev/null 2>&1 &&
		go build -o "$bin.new" github.com/opencontainers/distribution-spec/conformance) ||
		{ echo "$lib_name: building the suite failed" >&2; exit 1; }
	mv "$bin.new" "$bin"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
case $target in
berth)
	[ -x "$repo/bin/berth" ] || bash "$repo/scripts/build.sh" || exit 1
	"$repo/bin/berth" --root "$tmp/berth" registry serve --addr "$addr" --root "$tmp/registry" --delete-tags \
		>"$tmp/server.log" 2>&1 &
	server=$!
	;;
distribution)
	need docker-registry docker-registry || exit 1
	cat >"$tmp/config.yml" <<CONF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $tmp/registry
  delete:
    enabled: true
http:
  addr: $addr
CONF
	docker-registry serve "$tmp/config.yml" >"$tmp/server.log" 2>&1 &
	server=$!
	;;
*)
	echo "usage: $0 [berth|distribution]" >&2
	exit 2
	;;
esac
for _ in $(seq 100); do
	curl -fs "http://$addr/v2/" >/dev/null 2>&1 && break
	kill -0 "$server" 2>/dev/null || { echo "$lib_name: the server exited:"; cat "$tmp/server.log"; exit 1; }
	sleep 0.1
done

# berth serves ?tag= on a push by digest (distribution does not).
tag_param=false
[ "$target" = berth ] && tag_param=true
cd "$tmp" &&
	OCI_API_MANIFESTS_TAG_PARAM=${OCI_API_MANIFESTS_TAG_PARAM:-$tag_param} OCI_REGISTRY=$addr OCI_TLS=disabled OCI_VERSION=1.1 OCI_RESULTS_DIR=$tmp/results \
		OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_LOG=${OCI_LOG:-warn} "$bin" 2>&1 | tail -n "${OCI_CONFORMANCE_LINES:-80}"
junit=$tmp/results/junit.xml
[ -f "$junit" ] || { echo "$lib_name: the suite wrote no $junit"; exit 1; }
count() { grep -o "$1=\"[0-9]*\"" "$junit" | head -n1 | tr -dc 0-9; }
tests=$(count tests) failures=$(count failures) skipped=$(count skipped)
echo "$lib_name: ${tests:-0} tests, ${failures:-0} failed, ${skipped:-0} skipped"
[ "$target" != berth ] || [ "${failures:-1}" -eq 0 ]
