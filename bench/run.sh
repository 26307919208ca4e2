#!/usr/bin/env bash
# Benchmark: a whole container run, side by side in one hyperfine
# invocation, of `true` in the busybox test image:
#   berth   berth run --rm --network none busybox true (engine: image, snapshot,
#                                                   bundle, monitor, runtime)
#   podman  podman run --rm --network none busybox true
#                                                  (same image, loaded into a
#                                                   private podman: runc,
#                                                   cgroupfs, overlay)
#   runc    runc run of an equivalent bundle       (the bare runtime, no image
#                                                   store, no monitor)
# and prints each one's time over runc's.
#
# Then density: DENSITY containers (default 50) of `sleep 3600` started
# detached with berth and with podman; the memory their monitoring costs
# per container is the total PSS (/proc/PID/smaps_rollup) of the
# containers' parents (berth's monitors, podman's conmons) over their
# number.
#
# Usage: bench/run.sh        (root; env RUNS=30 WARMUP=3 DENSITY=50)
# Installs runc, podman, hyperfine, busybox-static and python3 with
# apt-get when missing. Removes every container, mount and file it made,
# also on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
	echo "bench: shared/ not found beside the repository ($here/../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
runs=${RUNS:-30}
warmup=${WARMUP:-3}
density=${DENSITY:-50}

if [ "$(id -u)" != 0 ]; then
	echo "bench: must run as root" >&2
	exit 1
fi

lib_name=bench
# shellcheck source=../scripts/lib.sh
. "$repo/scripts/lib.sh"
need_pkg runc
need_pkg podman
need_pkg hyperfine
need_pkg busybox-static
need_pkg python3

tmp=$(mktemp -d /var/tmp/berth-bench-run.XXXXXX)
chmod 755 "$tmp"
pm_dir=$tmp/podman
podman_host_state_remember
berth_args=(--root "$tmp/berth-root" --runroot "$tmp/berth-run")

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	[ -x "$tmp/bin/berth" ] && "$tmp/bin/berth" "${berth_args[@]}" ps -aq --no-trunc 2>/dev/null |
		xargs -r "$tmp/bin/berth" "${berth_args[@]}" rm -f >/dev/null 2>&1
	[ -x "$tmp/bin/podman-bench" ] && timeout 120 "$tmp/bin/podman-bench" rm -af -t 0 >/dev/null 2>&1
	[ -x "$tmp/bin/podman-bench" ] && timeout 60 "$tmp/bin/podman-bench" rmi -af >/dev/null 2>&1
	find "$tmp/runc-root" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null |
		while read -r id; do runc --root "$tmp/runc-root" delete -f "$id" >/dev/null 2>&1; done
	unmount_under "$tmp"
	podman_host_state_restore
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building berth"
mkdir -p "$tmp/bin"
bash "$repo/scripts/build.sh" "$tmp/bin" >/dev/null
berth=$tmp/bin/berth

echo "bench: making the busybox test image"
python3 "$shared/images/make-test-images.py" "$tmp/images" busybox >/dev/null
layout=$tmp/images/busybox
tar -C "$layout" -cf "$tmp/busybox.oci.tar" .
"$berth" "${berth_args[@]}" load -q -i "$layout" busybox >/dev/null

podman_conf "$pm_dir" overlay
printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --root %s --runroot %s --tmpdir %s --storage-driver overlay --cgroup-manager cgroupfs --events-backend file "$@"\n' \
	"$pm_dir/containers.conf" "$pm_dir/storage.conf" "$pm_dir/root" "$pm_dir/runroot" "$pm_dir/tmp" >"$tmp/bin/podman-bench"
chmod 755 "$tmp/bin/podman-bench"
"$tmp/bin/podman-bench" load -q -i "$tmp/busybox.oci.tar" >/dev/null
"$tmp/bin/podman-bench" tag "$("$tmp/bin/podman-bench" images -q | head -1)" localhost/busybox:latest

# runc's bundle: the same rootfs, runc's default spec running `true`.
mkdir -p "$tmp/bundle/rootfs" "$tmp/runc-root"
layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"].split(":")[1]; mf=json.load(open(sys.argv[1]+"/blobs/sha256/"+m)); print(mf["layers"][0]["digest"].split(":")[1])' "$layout")
tar -C "$tmp/bundle/rootfs" -xzf "$layout/blobs/sha256/$layer"
(cd "$tmp/bundle" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
json.dump(c, open("config.json", "w"))
PY
)

# Each tool once, to fail early with its own message.
"$berth" "${berth_args[@]}" run --rm --network none busybox true
"$tmp/bin/podman-bench" run --rm --network none localhost/busybox true
runc --root "$tmp/runc-root" run --bundle "$tmp/bundle" bench-check

echo "bench: run --rm of true, $runs runs each (warmup $warmup)"
hyperfine -N --runs "$runs" --warmup "$warmup" --export-json "$tmp/run.json" \
	-n berth "$berth ${berth_args[*]} run --rm --network none busybox true" \
	-n podman "$tmp/bin/podman-bench run --rm --network none localhost/busybox true" \
	-n runc "runc --root $tmp/runc-root run --bundle $tmp/bundle bench-run" >/dev/null

python3 - "$tmp/run.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["runc"]["mean"]
print(f"  {'':8} {'mean':>10} {'± sd':>9} {'min':>9}  {'÷ runc':>7}")
for n in ("berth", "podman", "runc"):
    x = r[n]
    print(f"  {n:8} {x['mean']*1e3:8.1f}ms {x['stddev']*1e3:7.1f}ms {x['min']*1e3:7.1f}ms  {x['mean']/base:6.2f}x")
print(f"  berth run --rm is {r['berth']['mean']/base:.2f}x runc run; podman {r['podman']['mean']/base:.2f}x")
PY

# pss PID...: the sum of the processes' PSS in KiB.
pss() {
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
ppid_of() { awk '/^PPid:/ { print $2 }' "/proc/$1/status"; }

echo "bench: density, $density detached containers of sleep 3600 each"
for i in $(seq "$density"); do
	"$berth" "${berth_args[@]}" run -d --network none busybox sleep 3600 >/dev/null
done
mons=()
for id in $("$berth" "${berth_args[@]}" ps -q --no-trunc); do
	mons+=("$(ppid_of "$("$berth" "${berth_args[@]}" inspect --format '{{.State.Pid}}' "$id")")")
done
berth_pss=$(pss "${mons[@]}")
berth_rss=$(for p in "${mons[@]}"; do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s }')
"$berth" "${berth_args[@]}" ps -q --no-trunc | xargs -r "$berth" "${berth_args[@]}" rm -f >/dev/null

for i in $(seq "$density"); do
	"$tmp/bin/podman-bench" run -d --network none localhost/busybox sleep 3600 >/dev/null
done
conmons=()
for id in $("$tmp/bin/podman-bench" ps -q --no-trunc); do
	conmons+=("$("$tmp/bin/podman-bench" inspect --format '{{.State.ConmonPid}}' "$id")")
done
pm_pss=$(pss "${conmons[@]}")
pm_rss=$(for p in "${conmons[@]}"; do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s }')
"$tmp/bin/podman-bench" rm -af -t 0 >/dev/null

python3 - "$density" "${#mons[@]}" "$berth_pss" "$berth_rss" "${#conmons[@]}" "$pm_pss" "$pm_rss" <<'PY'
import sys
n, bn, bp, br, pn, pp, pr = map(int, sys.argv[1:])
print(f"  {'':16} {'containers':>10} {'PSS/container':>14} {'RSS/container':>14}")
print(f"  {'berth monitor':16} {bn:>10} {bp/bn/1024:11.3f}MiB {br/bn/1024:11.3f}MiB")
print(f"  {'podman conmon':16} {pn:>10} {pp/pn/1024:11.3f}MiB {pr/pn/1024:11.3f}MiB")
print(f"  berth's monitoring costs {bp/bn/(pp/pn):.2f}x conmon's PSS per container")
PY
