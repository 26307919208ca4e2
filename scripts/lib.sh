# shellcheck shell=bash
# Functions shared by berth's test and benchmark scripts. Source it after
# setting lib_name, the prefix of the messages it prints:
#
#   lib_name=interop; . "$repo/scripts/lib.sh"

lib_name=${lib_name:-berth}
lib_apt_updated=

# need_pkg DEBIAN-PACKAGE: installs the package unless it is installed.
need_pkg() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' && return 0
	lib_install "$1"
}

# need CMD DEBIAN-PACKAGE: installs the package unless CMD is there.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	lib_install "$2"
}

lib_install() {
	echo "$lib_name: installing $1"
	if [ -z "$lib_apt_updated" ]; then
		apt-get update -qq >/dev/null || { echo "$lib_name: apt-get update failed" >&2; return 1; }
		lib_apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
		{ echo "$lib_name: apt-get install $1 failed" >&2; return 1; }
}

# unmount_under DIR: lazily unmounts every mount point at or below DIR,
# deepest first.
unmount_under() {
	local m
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
}

# lib_cases: sets up a script of test cases. pass NAME and fail NAME
# MESSAGE count them; cleanups+=(FN) registers functions run (last first)
# on exit, after which everything under $tmp is unmounted and $tmp
# removed; the last line printed is "$lib_name: N passed, M failed", and
# the exit status is non-zero if a case failed or the script aborted.
lib_cases() {
	passed=0
	failed=0
	cleanups=()
	trap lib_on_exit EXIT
	trap 'exit 130' INT TERM
}

pass() { passed=$((passed + 1)); echo "PASS  $1"; }
fail() { # fail NAME MESSAGE
	failed=$((failed + 1))
	echo "FAIL  $1: $2"
}

lib_finish() {
	local i
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
		${cleanups[i]} >/dev/null 2>&1 || true
	done
	if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
		unmount_under "$tmp"
		rm -rf "$tmp"
	fi
}

lib_on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	lib_finish
	[ "$rc" -eq 0 ] && [ "$failed" -gt 0 ] && rc=1
	[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && fail "$lib_name" "aborted (exit status $rc)"
	echo "$lib_name: $passed passed, $failed failed"
	exit "$rc"
}

# podman_conf DIR DRIVER [CONTAINERS-LINES [ENGINE-LINES [NETWORK-LINES]]]: writes
# DIR/containers.conf and DIR/storage.conf for a rootful podman whose
# storage (DIR/root, DIR/runroot), tmp dir, events log, volumes and network
# configs all live in DIR, with the storage driver DRIVER. The extra lines
# go into the [containers], [engine] and [network] tables. The rlimits stay within
# this machine's hard limits: rootful podman otherwise asks for nofile and
# nproc 1048576, which needs CAP_SYS_RESOURCE (runc fails the same way).
podman_conf() {
	local dir=$1 driver=$2
	mkdir -p "$dir/tmp" "$dir/networks"
	cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
${3:-}

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/tmp/events.log"
tmp_dir = "$dir/tmp"
volume_path = "$dir/volumes"
lock_type = "file"
${4:-}

[network]
network_config_dir = "$dir/networks"
${5:-}
CONF
	cat >"$dir/storage.conf" <<CONF
[storage]
driver = "$driver"
graphroot = "$dir/root"
runroot = "$dir/runroot"
CONF
}

# podman_host_state_remember / podman_host_state_restore: a private podman
# still creates /var/lib/containers and keeps containers/image's blob cache
# in /var/lib/containers/cache whatever --root says. Remember whether they
# existed before, and remove what podman created there afterwards.
podman_host_state_remember() {
	lib_vlc_existed=
	[ -d /var/lib/containers ] && lib_vlc_existed=1
	lib_vlc_cache_existed=
	[ -d /var/lib/containers/cache ] && lib_vlc_cache_existed=1
	return 0
}
podman_host_state_restore() {
	if [ -z "${lib_vlc_cache_existed:-1}" ]; then
		rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
		rmdir /var/lib/containers/cache 2>/dev/null
	fi
	[ -z "${lib_vlc_existed:-1}" ] && rmdir /var/lib/containers 2>/dev/null
	return 0
}

# bench_prepare: the common set-up of the container-run benchmarks, for a
# script that set here (its directory), repo and shared. Root only. It
# installs runc, podman, hyperfine, busybox-static and python3; makes
# $tmp (removed on exit by bench_cleanup, which it traps, after the
# script's own bench_cleanups+=(FN)); builds berth into $berth, whose
# store options are "${berth_args[@]}"; loads the busybox test image
# into berth (as busybox) and into a private podman, run as $podman
# (localhost/busybox; PODMAN_CONF_ARGS: extra podman_conf arguments 3..5);
# and unpacks it into the runc bundle $bundle (runc spec, `true`, no
# terminal), with runc's state in $runc_root.
bench_prepare() {
	export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
	if [ "$(id -u)" != 0 ]; then
		echo "$lib_name: must run as root" >&2
		exit 1
	fi
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
	bench_cleanups=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM

	echo "$lib_name: building berth"
	mkdir -p "$tmp/bin"
	bash "$repo/scripts/build.sh" "$tmp/bin" >/dev/null
	berth=$tmp/bin/berth

	echo "$lib_name: making the busybox test image"
	python3 "$shared/images/make-test-images.py" "$tmp/images" busybox >/dev/null
	layout=$tmp/images/busybox
	tar -C "$layout" -cf "$tmp/busybox.oci.tar" .
	"$berth" "${berth_args[@]}" load -q -i "$layout" busybox >/dev/null

	podman_conf "$pm_dir" overlay "${PODMAN_CONF_ARGS[@]}"
	printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --root %s --runroot %s --tmpdir %s --storage-driver overlay --cgroup-manager cgroupfs --events-backend file "$@"\n' \
		"$pm_dir/containers.conf" "$pm_dir/storage.conf" "$pm_dir/root" "$pm_dir/runroot" "$pm_dir/tmp" >"$tmp/bin/podman-bench"
	chmod 755 "$tmp/bin/podman-bench"
	podman=$tmp/bin/podman-bench
	"$podman" load -q -i "$tmp/busybox.oci.tar" >/dev/null
	"$podman" tag "$("$podman" images -q | head -1)" localhost/busybox:latest

	# runc's bundle: the same rootfs, runc's default spec running `true`.
	bundle=$tmp/bundle
	runc_root=$tmp/runc-root
	mkdir -p "$bundle/rootfs" "$runc_root"
	local layer
	layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"].split(":")[1]; mf=json.load(open(sys.argv[1]+"/blobs/sha256/"+m)); print(mf["layers"][0]["digest"].split(":")[1])' "$layout")
	tar -C "$bundle/rootfs" -xzf "$layout/blobs/sha256/$layer"
	(cd "$bundle" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["true"]
c["process"]["terminal"] = False
json.dump(c, open("config.json", "w"))
PY
)
}

# bench_cleanup: removes what bench_prepare and the script made: the
# script's bench_cleanups (last first), berth's and podman's containers
# and images, runc's containers, mounts, podman's host state and $tmp.
bench_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	set +e
	for ((i = ${#bench_cleanups[@]} - 1; i >= 0; i--)); do
		${bench_cleanups[i]} >/dev/null 2>&1
	done
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

# hostnet_remember FILE / hostnet_restore FILE: remember the host's links
# and iptables (v4 and v6) chains and rules in FILE; restore deletes the
# links, rules and chains that appeared since (the bridges and NAT rules
# of the networks a benchmark's containers made).
hostnet_remember() {
	{
		ip -o link | awk -F': ' '{ split($2, a, "@"); print "link " a[1] }'
		for t in filter nat; do
			iptables-save -t "$t" 2>/dev/null | awk -v t="$t" '/^[:-]/ { print "ipt4 " t " " $0 }'
			ip6tables-save -t "$t" 2>/dev/null | awk -v t="$t" '/^[:-]/ { print "ipt6 " t " " $0 }'
		done
	} | sed -E 's/^(ipt. [a-z]+ :[^ ]+) .*/\1/' | sort -u >"$1"
}
hostnet_restore() {
	local now fam t line cmd
	now=$(mktemp)
	hostnet_remember "$now"
	comm -13 "$1" "$now" | awk '$1 == "link" { print $2 }' | while read -r line; do ip link del "$line" 2>/dev/null; done
	for fam in 4 6; do
		cmd=iptables
		[ "$fam" = 6 ] && cmd=ip6tables
		for t in filter nat; do
			comm -13 "$1" "$now" | awk -v p="ipt$fam" -v t="$t" '$1 == p && $2 == t && $3 == "-A" { $1 = ""; $2 = ""; $3 = "-D"; sub(/^ +/, ""); print }' |
				while read -r line; do eval "$cmd -t $t $line" 2>/dev/null; done
			comm -13 "$1" "$now" | awk -v p="ipt$fam" -v t="$t" '$1 == p && $2 == t && $3 ~ /^:/ { print substr($3, 2) }' |
				while read -r line; do $cmd -t "$t" -F "$line" 2>/dev/null; done
			comm -13 "$1" "$now" | awk -v p="ipt$fam" -v t="$t" '$1 == p && $2 == t && $3 ~ /^:/ { print substr($3, 2) }' |
				while read -r line; do $cmd -t "$t" -X "$line" 2>/dev/null; done
		done
	done
	rm -f "$now"
}
