#!/usr/bin/env bash
# Benchmark: a whole container run of `true` in the busybox test image,
# three ways timed in alternation (bench/alternate.py: each round runs
# each once, in a rotating order):
#   berth   berth run --rm --network none busybox true (engine: image, snapshot,
#                                                   bundle, monitor, runtime)
#   podman  podman run --rm --network none busybox true
#                                                  (same image, loaded into a
#                                                   private podman: runc,
#                                                   cgroupfs, overlay)
#   runc    runc run of an equivalent bundle       (the bare runtime, no image
#                                                   store, no monitor)
# and prints each one's time over runc's (mean and median).
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
runs=${RUNS:-30}
warmup=${WARMUP:-3}
density=${DENSITY:-50}

lib_name=bench
# shellcheck source=../scripts/lib.sh
. "$repo/scripts/lib.sh"
bench_prepare

# Each tool once, to fail early with its own message.
"$berth" "${berth_args[@]}" run --rm --network none busybox true
"$podman" run --rm --network none localhost/busybox true
runc --root "$runc_root" run --bundle "$bundle" bench-check

echo "bench: run --rm of true, $runs rounds of the three in turn (warmup $warmup)"
python3 "$here/alternate.py" "$runs" "$warmup" \
	"berth=$berth ${berth_args[*]} run --rm --network none busybox true" \
	"podman=$podman run --rm --network none localhost/busybox true" \
	"runc=runc --root $runc_root run --bundle $bundle bench-run"

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
	"$podman" run -d --network none localhost/busybox sleep 3600 >/dev/null
done
conmons=()
for id in $("$podman" ps -q --no-trunc); do
	conmons+=("$("$podman" inspect --format '{{.State.ConmonPid}}' "$id")")
done
pm_pss=$(pss "${conmons[@]}")
pm_rss=$(for p in "${conmons[@]}"; do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status"; done | awk '{ s += $1 } END { print s }')
"$podman" rm -af -t 0 >/dev/null

python3 - "$density" "${#mons[@]}" "$berth_pss" "$berth_rss" "${#conmons[@]}" "$pm_pss" "$pm_rss" <<'PY'
import sys
n, bn, bp, br, pn, pp, pr = map(int, sys.argv[1:])
print(f"  {'':16} {'containers':>10} {'PSS/container':>14} {'RSS/container':>14}")
print(f"  {'berth monitor':16} {bn:>10} {bp/bn/1024:11.3f}MiB {br/bn/1024:11.3f}MiB")
print(f"  {'podman conmon':16} {pn:>10} {pp/pn/1024:11.3f}MiB {pr/pn/1024:11.3f}MiB")
print(f"  berth's monitoring costs {bp/bn/(pp/pn):.2f}x conmon's PSS per container")
PY
