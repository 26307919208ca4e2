#!/usr/bin/env bash
# Benchmark: berth's registry server against distribution (Debian's
# docker-registry), side by side on this machine:
#   push   skopeo copy of the `big` test image (about 256 MiB in five
#          layers) from an OCI layout to the registry, into a fresh
#          registry root each run (MB/s of blob bytes)
#   pull   skopeo copy of it from the registry to an OCI layout (layers
#          in parallel, as skopeo does for oci:) (MB/s)
#   load   CLIENTS concurrent clients (default 50) GETting the busybox
#          image's manifest for SECONDS (default 10): requests/s
# and prints berth's number over distribution's for each. Push and pull
# are also measured against bench/nullreg, a server that does no work
# (it discards what is pushed and serves the image from memory): the
# time skopeo itself needs, so null/distribution is the highest ratio any
# registry can reach in this benchmark.
#
# Usage: bench/registry.sh   (root; env RUNS=3 CLIENTS=50 SECONDS_LOAD=10,
#                             ONLY=berth, distribution or null for one side)
# Installs skopeo, docker-registry and python3 with apt-get when missing;
# removes what it made, also on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
	echo "bench: shared/ not found beside the repository ($here/../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
runs=${RUNS:-3}
clients=${CLIENTS:-50}
load_secs=${SECONDS_LOAD:-10}

lib_name=bench
# shellcheck source=../scripts/lib.sh
. "$repo/scripts/lib.sh"
need_pkg skopeo
need_pkg docker-registry
need_pkg python3
need_pkg curl

tmp=$(mktemp -d /var/tmp/berth-bench-registry.XXXXXX)
server=
stop_server() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=
	fi
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	stop_server
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building berth and regload"
mkdir -p "$tmp/bin"
bash "$repo/scripts/build.sh" "$tmp/bin" >/dev/null
(cd "$repo" && go build -o "$tmp/bin/regload" ./bench/regload && go build -o "$tmp/bin/nullreg" ./bench/nullreg)

echo "bench: making the big and busybox test images"
python3 "$shared/images/make-test-images.py" "$tmp/images" busybox big >/dev/null
bytes=$(du -sb "$tmp/images/big/blobs" | cut -f1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port

# start_server NAME ROOT: serves a registry on $addr with its data in ROOT.
start_server() {
	case $1 in
	berth)
		"$tmp/bin/berth" --root "$tmp/berth-root" registry serve --addr "$addr" --root "$2" \
			>"$tmp/server.log" 2>&1 &
		;;
	distribution)
		cat >"$tmp/config.yml" <<CONF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $2
http:
  addr: $addr
CONF
		docker-registry serve "$tmp/config.yml" >"$tmp/server.log" 2>&1 &
		;;
	null) # serves the big image as bench/big; pushes go elsewhere
		"$tmp/bin/nullreg" -addr "$addr" -layout "$tmp/images/big" -repo bench/big >"$tmp/server.log" 2>&1 &
		;;
	esac
	server=$!
	for _ in $(seq 100); do
		curl -fs "http://$addr/v2/" >/dev/null 2>&1 && return 0
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: $1 registry did not start:" >&2
	cat "$tmp/server.log" >&2
	return 1
}

# secs CMD...: runs CMD and prints the seconds it took.
secs() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	python3 -c "print(f'{$t1 - $t0:.3f}')"
}

declare -A push pull load
for name in ${ONLY:-berth distribution null}; do
	best_push=999999 best_pull=999999
	push_repo=bench/big
	[ "$name" = null ] && push_repo=bench/pushed # nullreg serves bench/big
	for i in $(seq "$runs"); do
		root=$tmp/data-$name-$i
		start_server "$name" "$root"
		t=$(secs skopeo copy -q --dest-tls-verify=false "oci:$tmp/images/big:latest" "docker://$addr/$push_repo:latest")
		best_push=$(python3 -c "print(min($best_push, $t))")
		rm -rf "$tmp/pulled"
		t=$(secs skopeo copy -q --src-tls-verify=false "docker://$addr/bench/big:latest" "oci:$tmp/pulled:latest")
		best_pull=$(python3 -c "print(min($best_pull, $t))")
		rm -rf "$tmp/pulled"
		if [ "$i" = "$runs" ] && [ "$name" != null ]; then
			skopeo copy -q --dest-tls-verify=false "oci:$tmp/images/busybox:latest" "docker://$addr/bench/small:latest" >/dev/null
			load[$name]=$("$tmp/bin/regload" -url "http://$addr/v2/bench/small/manifests/latest" -c "$clients" -d "${load_secs}s")
		fi
		stop_server
		rm -rf "$root"
	done
	push[$name]=$(python3 -c "print(f'{$bytes / $best_push / 1e6:.0f}')")
	pull[$name]=$(python3 -c "print(f'{$bytes / $best_pull / 1e6:.0f}')")
	echo "bench: $name: push ${push[$name]} MB/s, pull ${pull[$name]} MB/s (best of $runs); load: ${load[$name]:-not measured}"
done

[ -z "${ONLY:-}" ] || exit 0
rps() { sed -n 's/.*: \([0-9]*\) req\/s.*/\1/p' <<<"$1"; }
python3 - "${push[berth]}" "${push[distribution]}" "${push[null]}" "${pull[berth]}" "${pull[distribution]}" "${pull[null]}" \
	"$(rps "${load[berth]}")" "$(rps "${load[distribution]}")" <<'PY'
import sys
pb, pd, pn, lb, ld, ln, rb, rd = map(float, sys.argv[1:])
print(f"  {'':6} {'berth':>10} {'distribution':>13} {'ratio':>7} {'null':>10} {'ceiling':>8}")
print(f"  {'push':6} {pb:7.0f}MB/s {pd:10.0f}MB/s {pb/pd:6.2f}x {pn:7.0f}MB/s {pn/pd:7.2f}x")
print(f"  {'pull':6} {lb:7.0f}MB/s {ld:10.0f}MB/s {lb/ld:6.2f}x {ln:7.0f}MB/s {ln/ld:7.2f}x")
print(f"  {'load':6} {rb:6.0f}req/s {rd:9.0f}req/s {rb/rd:6.2f}x")
print("  (null: bench/nullreg, a server that does nothing; ceiling: the best ratio to distribution any server can reach with skopeo here)")
PY
