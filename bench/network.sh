#!/usr/bin/env bash
# Benchmark: a whole container run on a bridge network, side by side in
# one hyperfine invocation, of `true` in the busybox test image:
#   berth       berth run --rm busybox true        (default network: bridge
#                                                  berth0, CNI bridge and
#                                                  host-local through libcni)
#   berth-none  berth run --rm --network none busybox true   (the same
#                                                  run without a network,
#                                                  to show what it costs)
#   podman      podman run --rm --network bridge busybox true   (podman's
#                                                  default bridge, netavark;
#                                                  private containers.conf,
#                                                  its subnet moved off
#                                                  berth's 10.88.0.0/16)
#   runc        runc run of an equivalent bundle   (the bare runtime: a new,
#                                                  empty network namespace)
# and prints each one's time over runc's (the issue's target: berth ≤ 2x).
#
# It takes /run/lock/berth-tests-hostnet.lock (the tests that change the
# host's network hold it too), and removes the links, iptables chains and
# rules that appeared while it ran, with everything else it made, also on
# failure. After the runs it checks that no veth, lease, CNI cache entry
# or netns of berth's is left.
#
# Usage: bench/network.sh      (root; env RUNS=30 WARMUP=3)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
	echo "bench: shared/ not found beside the repository ($here/../../shared)" >&2
	exit 1
}
runs=${RUNS:-30}
warmup=${WARMUP:-3}
lock=/run/lock/berth-tests-hostnet.lock

lib_name=bench
# shellcheck source=../scripts/lib.sh
. "$repo/scripts/lib.sh"

exec 9>"$lock"
if ! flock -n 9; then
	echo "bench: waiting for $lock (a test suite changes the host's network)"
	flock 9
fi
hostnet_file=$(mktemp /var/tmp/berth-bench-hostnet.XXXXXX)
hostnet_remember "$hostnet_file"

# podman's default network "podman" is 10.88.0.0/16 too: move it.
PODMAN_CONF_ARGS=("" "" 'default_subnet = "10.202.240.0/24"')
bench_prepare
restore_hostnet() {
	hostnet_restore "$hostnet_file"
	rm -f "$hostnet_file"
}
bench_cleanups+=(restore_hostnet)

# Each tool once, to fail early with its own message, and to see that
# the berth and podman containers do have an address on their bridge.
for cmd in "$berth ${berth_args[*]} run --rm busybox" "$podman run --rm --network bridge localhost/busybox"; do
	out=$($cmd ip -o -4 addr show eth0)
	case $out in
	*"inet "*) ;;
	*)
		echo "bench: no address on eth0 in: $cmd: $out" >&2
		exit 1
		;;
	esac
done
"$berth" "${berth_args[@]}" run --rm --network none busybox true
runc --root "$runc_root" run --bundle "$bundle" bench-check

veths=$(ip -o link show type veth | wc -l)
echo "bench: run --rm of true on a bridge, $runs runs each (warmup $warmup)"
hyperfine -N --runs "$runs" --warmup "$warmup" --export-json "$tmp/run.json" \
	-n berth "$berth ${berth_args[*]} run --rm busybox true" \
	-n berth-none "$berth ${berth_args[*]} run --rm --network none busybox true" \
	-n podman "$podman run --rm --network bridge localhost/busybox true" \
	-n runc "runc --root $runc_root run --bundle $bundle bench-run" >/dev/null

python3 - "$tmp/run.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["runc"]["mean"]
print(f"  {'':11} {'mean':>10} {'± sd':>9} {'min':>9}  {'÷ runc':>7}")
for n in ("berth", "berth-none", "podman", "runc"):
    x = r[n]
    print(f"  {n:11} {x['mean']*1e3:8.1f}ms {x['stddev']*1e3:7.1f}ms {x['min']*1e3:7.1f}ms  {x['mean']/base:6.2f}x")
print(f"  bridge: berth run --rm is {r['berth']['mean']/base:.2f}x runc run (target 2x); "
      f"podman {r['podman']['mean']/base:.2f}x; the network costs berth "
      f"{(r['berth']['mean']-r['berth-none']['mean'])*1e3:.0f} ms")
PY

# Nothing of the runs' networks may be left: the last --rm's teardown
# runs detached, so give it a moment.
run=$tmp/berth-run
left=""
for _ in $(seq 50); do
	left=$(
		echo $(($(ip -o link show type veth | wc -l) - veths))
		find "$run/network/ipam" -name '[0-9]*.[0-9]*' 2>/dev/null
		find "$run/network/cache/results" "$run/netns" "$run/network/pending" -mindepth 1 2>/dev/null
	)
	[ "$left" = 0 ] && break
	sleep 0.1
done
if [ "$left" != 0 ]; then
	echo "bench: the runs left network state (veths more than before, then files):" >&2
	echo "$left" >&2
	exit 1
fi
echo "bench: no veth, lease, CNI cache entry or netns left"
