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

# podman_conf DIR DRIVER [CONTAINERS-LINES [ENGINE-LINES]]: writes
# DIR/containers.conf and DIR/storage.conf for a rootful podman whose
# storage (DIR/root, DIR/runroot), tmp dir, events log, volumes and network
# configs all live in DIR, with the storage driver DRIVER. The extra lines
# go into the [containers] and [engine] tables. The rlimits stay within
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
