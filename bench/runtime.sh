#!/usr/bin/env bash
# Benchmark: berth's runtime against runc, "RUNTIME run" of `true` on the
# same busybox bundle (run = create, start, wait for exit, delete), side by
# side in one hyperfine invocation.
#
# Usage: bench/runtime.sh        (root; env RUNS=50 WARMUP=5 to change)
#
# Builds berth from this repository, makes the busybox test image with
# shared/images/make-test-images.py, unpacks it as the bundle's rootfs and
# writes config.json with `runc spec` (process.args ["true"], terminal
# false). Each runtime gets its own --root under a temp dir; each run uses
# a fresh container id (the benchmark shell's pid). Installs runc,
# hyperfine and busybox-static with apt-get when missing. Leaves no
# containers, mounts or cgroups behind, also on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
	echo "bench: shared/ not found beside the repository ($here/../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
runs=${RUNS:-50}
warmup=${WARMUP:-5}

if [ "$(id -u)" != 0 ]; then
	echo "bench: must run as root" >&2
	exit 1
fi

lib_name=bench
# shellcheck source=../scripts/lib.sh
. "$repo/scripts/lib.sh"
need_pkg runc
need_pkg hyperfine
need_pkg busybox-static
need_pkg python3

tmp=$(mktemp -d /tmp/berth-bench.XXXXXX)
chmod 755 "$tmp"
prefix=bench-$$- # container ids: $prefix<pid of hyperfine's shell>

# leftovers: prints what the runs left behind (containers, mounts, cgroups).
leftovers() {
	local r
	for r in berth runc; do
		[ -d "$tmp/root-$r" ] || continue
		find "$tmp/root-$r" -mindepth 1 -maxdepth 1 -type d -name "$prefix*" -printf "container state: %p\n"
	done
	awk -v d="$tmp" 'index($5, d) == 1 { print "mount: " $5 }' /proc/self/mountinfo
	find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$prefix*" -printf "cgroup: %p\n" 2>/dev/null
	return 0
}

cleanup() {
	local rc=$? r
	trap - EXIT INT TERM
	set +e
	for r in berth runc; do
		[ -d "$tmp/root-$r" ] || continue
		find "$tmp/root-$r" -mindepth 1 -maxdepth 1 -type d -name "$prefix*" -printf '%f\n' |
			while read -r id; do
				"${bin[$r]}" --root "$tmp/root-$r" delete --force "$id" >/dev/null 2>&1
			done
	done
	# Whatever delete could not remove: mounts below tmp, empty cgroups.
	awk -v d="$tmp" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
	find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$prefix*" 2>/dev/null |
		while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building berth"
mkdir -p "$tmp/bin"
bash "$repo/scripts/build.sh" "$tmp/bin" # berth, static, and the berth-runc link
# argv[0] ending in "runc": the runc CLI
declare -A bin=([berth]=$tmp/bin/berth-runc [runc]=$(command -v runc))

echo "bench: making the bundle"
python3 "$shared/images/make-test-images.py" "$tmp/images" busybox >/dev/null
bundle=$tmp/bundle
mkdir -p "$bundle/rootfs"
python3 - "$tmp/images/busybox" "$bundle/rootfs" <<'EOF'
import json, os, sys, tarfile
layout, rootfs = sys.argv[1:]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"])) as t:
        t.extractall(rootfs)
EOF
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
# runc spec lists ambient capabilities that are not inheritable: runc
# cannot raise them and goes on silently, berth refuses the config. Both do
# the same work without them.
c["process"]["capabilities"].pop("ambient", None)
json.dump(c, open(path, "w"), indent=1)
EOF
mkdir -p "$tmp/root-berth" "$tmp/root-runc"

# One check run each, so a failing runtime stops here with its error.
for r in berth runc; do
	if ! out=$("${bin[$r]}" --root "$tmp/root-$r" run -b "$bundle" "${prefix}check" </dev/null 2>&1); then
		echo "bench: $r run failed: $out" >&2
		exit 1
	fi
done

# The benchmarked command line; $$ (the pid of hyperfine's shell) makes a
# fresh container id for each run.
cmd() { # cmd RUNTIME
	printf '%s --root %s run -b %s %s$$ </dev/null >/dev/null 2>&1' \
		"${bin[$1]}" "$tmp/root-$1" "$bundle" "$prefix"
}

hyperfine --warmup "$warmup" --runs "$runs" --export-json "$tmp/result.json" \
	-n berth "$(cmd berth)" -n runc "$(cmd runc)"

left=$(leftovers)
if [ -n "$left" ]; then
	echo "bench: the runs left these behind:" >&2
	echo "$left" >&2
	exit 1
fi

python3 - "$tmp/result.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, c = r["berth"]["mean"] * 1000, r["runc"]["mean"] * 1000
print(f"runtime run true: berth {b:.1f} ms, runc {c:.1f} ms, ratio berth/runc {b / c:.2f}")
EOF
