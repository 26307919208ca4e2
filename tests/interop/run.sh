#!/usr/bin/env bash
# Interop: containerd (ctr + containerd-shim-runc-v2) and podman (conmon)
# use berth's runc-compatible binary (bin/berth-runc) as their OCI runtime.
#
# Usage: tests/interop/run.sh [containerd] [podman]     (default: both)
#
# Everything lives in a private temp dir: containerd's root, state, socket
# and runtime root; podman's storage, runroot, tmp dir and containers.conf.
# All of it (containers, mounts, cgroups, daemons) is removed on exit, also
# on failure. Needs root. Installs containerd, podman, busybox-static with
# apt-get when they are missing.
#
# The engines call a small wrapper that records each berth-runc invocation
# (argv, and on failure the exit status and berth's --log file) before
# running the real binary; the record is printed for a failed case.
# BERTH_INTEROP_TRACE=0 hands the engines bin/berth-runc itself instead.
# BERTH_INTEROP_RUNTIME=/usr/sbin/runc runs the same cases against runc,
# to tell a berth bug from a test or engine problem.
#
# Prints "interop: N passed, M failed" last; exits non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=$(cd "$here/../../../shared" 2>/dev/null && pwd) || {
	echo "interop: shared/ not found beside the repository ($here/../../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(containerd podman)

if [ "$(id -u)" != 0 ]; then
	echo "interop: must run as root" >&2
	exit 1
fi

# ---------------------------------------------------------------- setup

lib_name=interop
# shellcheck source=../../scripts/lib.sh
. "$repo/scripts/lib.sh"

tmp=
lib_cases # pass, fail, cleanups+=(FN); $tmp removed and the tally printed on exit

# kill_matching STRING: kills (by pid) the processes whose command line
# contains STRING (always a path inside our temp dir).
kill_matching() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1" && kill -9 "${p#/proc/}" 2>/dev/null
	done
	return 0
}

# rmdir_cgroups REL: removes the cgroup REL (and its empty children) in
# every hierarchy; only empty cgroups can be removed, so this never
# touches a cgroup with processes.
rmdir_cgroups() {
	local h
	for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
		[ -d "$h/$1" ] || continue
		find "$h/$1" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	return 0
}

# expect NAME WANT CMD...: CMD must exit 0 within 60 s and print WANT.
# On failure it prints the command, its output and the diagnostics of
# the current part ($diag).
diag=:
expect() {
	local name=$1 want=$2 out rc
	shift 2
	trace_seen=$(wc -l <"$trace")
	out=$(timeout 60 "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && grep -qF -- "$want" <<<"$out"; then
		pass "$name"
		return 0
	fi
	if [ $rc -ne 0 ]; then
		fail "$name" "exit status $rc (want 0 and output containing \"$want\")"
	else
		fail "$name" "output lacks \"$want\""
	fi
	echo "      command: $*"
	sed 's/^/      | /' <<<"$out"
	$diag
	return 1
}

# show_trace: the berth-runc invocations made during the current case.
trace_seen=0
show_trace() {
	[ -s "$trace" ] || return 0
	echo "      berth-runc invocations (and failures) by the engine:"
	tail -n +$((trace_seen + 1)) "$trace" | sed 's/^/      > /'
	trace_seen=$(wc -l <"$trace")
}

tmp=$(mktemp -d /tmp/berth-interop.XXXXXX)
chmod 755 "$tmp"

# make-test-images.py needs Debian's static busybox at /usr/bin/busybox.
need python3 python3 && need_pkg busybox-static && need script bsdutils && need tar tar || exit 1

echo "interop: building berth"
bash "$repo/scripts/build.sh" "$tmp/bin" || { fail build "scripts/build.sh failed"; exit 1; }
export PATH=$PATH:$tmp/bin
berth_runc=$tmp/bin/berth-runc
# A control run of the same cases against another runtime (e.g. runc).
[ -n "${BERTH_INTEROP_RUNTIME:-}" ] && berth_runc=$BERTH_INTEROP_RUNTIME
trace=$tmp/berth-runc.trace
: >"$trace"
runtime=$berth_runc
if [ "${BERTH_INTEROP_TRACE:-1}" != 0 ]; then
	mkdir -p "$tmp/trace"
	runtime=$tmp/trace/berth-runc
	cat >"$runtime" <<EOF
#!/bin/sh
# Records the engine's call, then runs berth-runc (stdio untouched).
printf '%s\n' "berth-runc \$*" >>'$trace'
'$berth_runc' "\$@"
rc=\$?
if [ \$rc -ne 0 ]; then
	printf '  -> exit %s\n' "\$rc" >>'$trace'
	log=
	while [ \$# -gt 0 ]; do
		case \$1 in --log) log=\$2; shift ;; --log=*) log=\${1#--log=} ;; esac
		shift
	done
	[ -n "\$log" ] && [ -f "\$log" ] && sed 's/^/  log: /' "\$log" >>'$trace'
fi
exit \$rc
EOF
	chmod 755 "$runtime"
fi

echo "interop: making the busybox test image"
python3 "$shared/images/make-test-images.py" "$tmp/images" busybox >/dev/null ||
	{ fail image "make-test-images.py failed"; exit 1; }
image_tar=$tmp/images/busybox.tar
tar -C "$tmp/images/busybox" -cf "$image_tar" . || { fail image "tar of the OCI layout failed"; exit 1; }

# ---------------------------------------------------------------- containerd

ctd_ns=berth-interop-$$
ctd_dir=$tmp/containerd
ctd_sock=$ctd_dir/containerd.sock
ctd_pid=
ctd_image=berth.test/busybox:latest
run_containerd_existed=
[ -d /run/containerd ] && run_containerd_existed=1

# ctr-berth: ctr on our containerd, in our namespace.
printf '#!/bin/sh\nexec ctr -a %s -n %s "$@"\n' "$ctd_sock" "$ctd_ns" >"$tmp/bin/ctr-berth"
chmod 755 "$tmp/bin/ctr-berth"

ctd_diag() {
	show_trace
	local f
	find "$ctd_dir/state" -name log.json -size +0 2>/dev/null | while read -r f; do
		echo "      $f:"
		sed 's/^/      | /' "$f"
	done
	echo "      containerd log (last 15 lines):"
	grep -v 'level=debug' "$ctd_dir/containerd.log" | tail -n 15 | sed 's/^/      | /'
}

ctd_cleanup() {
	local c
	if [ -n "$ctd_pid" ] && kill -0 "$ctd_pid" 2>/dev/null; then
		for c in $(ctr-berth task ls -q 2>/dev/null); do
			timeout 10 ctr-berth task kill -s SIGKILL "$c"
			timeout 10 ctr-berth task delete -f "$c"
		done
		for c in $(ctr-berth containers ls -q 2>/dev/null); do
			timeout 10 ctr-berth containers rm "$c"
		done
		kill "$ctd_pid"
		for _ in $(seq 50); do kill -0 "$ctd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$ctd_pid" 2>/dev/null
	fi
	# Shims outlive containerd; theirs name our socket.
	kill_matching "$ctd_sock"
	# Container processes left by a failed kill: they run under the
	# runtime root's cgroups "/<namespace>/<id>".
	local h
	for h in /sys/fs/cgroup/*/"$ctd_ns" /sys/fs/cgroup/"$ctd_ns"; do
		# shellcheck disable=SC2038 # the files hold pids
		[ -d "$h" ] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9
	done
	sleep 0.2
	unmount_under "$ctd_dir"
	rmdir_cgroups "$ctd_ns"
	# containerd 1.6 keeps shim sockets in /run/containerd/s whatever
	# the config says; remove the directories if we made them.
	if [ -z "$run_containerd_existed" ]; then
		rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null
	fi
	return 0
}

part_containerd() {
	need containerd containerd && need ctr containerd ||
		{ fail "containerd: install" "apt-get install containerd failed"; return; }
	echo "== containerd $(containerd --version | awk '{print $3}') with $berth_runc"
	diag=ctd_diag
	mkdir -p "$ctd_dir"
	cat >"$ctd_dir/config.toml" <<EOF
version = 2
root = "$ctd_dir/root"
state = "$ctd_dir/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$ctd_sock"

[ttrpc]
  address = "$ctd_sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$ctd_dir/opt"

[plugins."io.containerd.runtime.v2.task"]
  platforms = ["linux/amd64"]

[plugins."io.containerd.service.v1.diff-service"]
  default = ["walking"]
EOF
	cleanups+=(ctd_cleanup)
	containerd --config "$ctd_dir/config.toml" >"$ctd_dir/containerd.log" 2>&1 &
	ctd_pid=$!
	local up=
	for _ in $(seq 100); do
		if [ -S "$ctd_sock" ] && ctr-berth version >/dev/null 2>&1; then up=1; break; fi
		kill -0 "$ctd_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$up" ]; then
		fail "containerd: start" "containerd did not answer on $ctd_sock within 10 s"
		tail -n 20 "$ctd_dir/containerd.log" | sed 's/^/      | /'
		return
	fi
	pass "containerd: start (private root, state and socket)"

	expect "containerd: import busybox" "$ctd_image" \
		ctr-berth images import --base-name berth.test/busybox "$image_tar" || return

	local rt=(--runc-binary "$runtime" --runc-root "$ctd_dir/runc-root" --snapshotter overlayfs)
	local fifo=(--fifo-dir "$ctd_dir/fifo")

	expect "containerd: run --rm echo" hello-from-berth \
		ctr-berth run --rm "${rt[@]}" "${fifo[@]}" "$ctd_image" c-echo echo hello-from-berth

	expect "containerd: exit status of the task" "exit=7" \
		sh -c 'ctr-berth run --rm --runc-binary "$1" --runc-root "$2" --fifo-dir "$3" "$4" c-exit sh -c "exit 7"; echo "exit=$?"' \
		_ "$runtime" "$ctd_dir/runc-root" "$ctd_dir/fifo" "$ctd_image"

	expect "containerd: run -t (console socket)" tty-ok \
		script -qec "ctr-berth run --rm -t --runc-binary '$runtime' --runc-root '$ctd_dir/runc-root' --fifo-dir '$ctd_dir/fifo' '$ctd_image' c-tty sh -c 'tty | grep -q /dev/pts/ && echo tty-ok'" /dev/null </dev/null

	if expect "containerd: run -d" "" \
		ctr-berth run -d "${rt[@]}" "${fifo[@]}" --memory-limit 67108864 "$ctd_image" c-bg sleep 300; then
		expect "containerd: task ls shows RUNNING" RUNNING sh -c \
			'ctr-berth task ls | grep -w c-bg'
		expect "containerd: task exec cat /etc/passwd" "root:x:0:0" \
			ctr-berth task exec "${fifo[@]}" --exec-id e1 c-bg cat /etc/passwd
		expect "containerd: task exec id" "uid=0(root)" \
			ctr-berth task exec "${fifo[@]}" --exec-id e2 c-bg id
		expect "containerd: task exec exit status" "exit=3" sh -c \
			'ctr-berth task exec --fifo-dir "$1" --exec-id e3 c-bg sh -c "exit 3"; echo "exit=$?"' \
			_ "$ctd_dir/fifo"
		expect "containerd: task exec -t (console socket)" exec-tty-ok \
			script -qec "ctr-berth task exec -t --fifo-dir '$ctd_dir/fifo' --exec-id e4 c-bg sh -c 'tty | grep -q /dev/pts/ && echo exec-tty-ok'" /dev/null </dev/null
		expect "containerd: task ps" "PID" ctr-berth task ps c-bg
		expect "containerd: task metrics (memory limit)" 67108864 ctr-berth task metrics c-bg
		expect "containerd: task pause" PAUSED sh -c \
			'ctr-berth task pause c-bg && ctr-berth task ls | grep -w c-bg'
		expect "containerd: task resume" RUNNING sh -c \
			'ctr-berth task resume c-bg && ctr-berth task ls | grep -w c-bg'
		# sleep is pid 1 in its namespace and has no SIGTERM handler, so
		# the default SIGTERM would be ignored (as with runc): use SIGKILL.
		expect "containerd: task kill -s SIGKILL" STOPPED sh -c '
			ctr-berth task kill -s SIGKILL c-bg || exit 1
			for i in $(seq 50); do
				s=$(ctr-berth task ls | grep -w c-bg)
				case $s in *STOPPED*) echo "$s"; exit 0 ;; esac
				sleep 0.1
			done
			echo "still: $s"; exit 1'
		expect "containerd: task delete" "137" ctr-berth task delete c-bg
		expect "containerd: container rm" "" ctr-berth containers rm c-bg
		# containerd maps the runtime's "container not running" to
		# NotFound ("process already finished"); CRI's StopContainer
		# relies on it when the process exits just before it is killed.
		if expect "containerd: run -d of a task that exits" "" \
			ctr-berth run -d "${rt[@]}" "${fifo[@]}" "$ctd_image" c-done true; then
			expect "containerd: kill of an exited task is NotFound" "process already finished" sh -c '
				for i in $(seq 50); do
					ctr-berth task ls | grep -w c-done | grep -q STOPPED && break
					sleep 0.1
				done
				ctr-berth task kill -s SIGKILL c-done 2>&1; true'
			timeout 10 ctr-berth task delete c-done >/dev/null 2>&1
			timeout 10 ctr-berth containers rm c-done >/dev/null 2>&1
		fi
		expect "containerd: task ls is empty" "TASK" sh -c \
			'out=$(ctr-berth task ls); echo "$out"; [ "$(echo "$out" | wc -l)" -eq 1 ]'
	fi
	diag=:
}

# ---------------------------------------------------------------- podman

pm_dir=$tmp/podman
pm_image=localhost/berth-busybox:latest
podman_host_state_remember
run_containers_existed=
[ -d /run/containers ] && run_containers_existed=1
libpod_parent_existed=
[ -d /sys/fs/cgroup/memory/libpod_parent ] || [ -d /sys/fs/cgroup/libpod_parent ] && libpod_parent_existed=1

# podman-berth: podman on our storage and config, with berth-runc.
printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --root %s --runroot %s --runtime %s --runtime-flag root=%s --cgroup-manager cgroupfs --events-backend file "$@"\n' \
	"$pm_dir/containers.conf" "$pm_dir/storage.conf" "$pm_dir/root" "$pm_dir/runroot" "$runtime" "$pm_dir/runtime-root" >"$tmp/bin/podman-berth"
chmod 755 "$tmp/bin/podman-berth"

pm_diag() {
	show_trace
}

pm_cleanup() {
	timeout 30 podman-berth rm -af -t 0
	# conmon and the containers left by a failed rm name our paths.
	kill_matching "$pm_dir/"
	sleep 0.2
	timeout 30 podman-berth rmi -af
	unmount_under "$pm_dir"
	if [ -z "$libpod_parent_existed" ]; then
		rmdir_cgroups libpod_parent
	fi
	podman_host_state_restore
	# netavark makes its run dir even for --network none.
	if [ -z "$run_containers_existed" ]; then
		rmdir /run/containers/networks /run/containers 2>/dev/null
	fi
	return 0
}

part_podman() {
	need podman podman || { fail "podman: install" "apt-get install podman failed"; return; }
	echo "== podman $(podman --version | awk '{print $3}') with $berth_runc"
	diag=pm_diag
	# berth-runc's state goes to a private --root (conmon passes none, so
	# it would be berth's default /run/berth); podman passes --log and
	# --log-format json only to runtimes it knows.
	podman_conf "$pm_dir" overlay 'log_driver = "k8s-file"' \
		'runtime_supports_json = ["berth-runc", "runc", "crun"]
runtime_supports_nocgroups = ["berth-runc", "crun"]'
	export CONTAINERS_CONF=$pm_dir/containers.conf
	export CONTAINERS_STORAGE_CONF=$pm_dir/storage.conf
	cleanups+=(pm_cleanup)

	expect "podman: load busybox (OCI archive)" "Loaded image" \
		podman-berth load -i "$image_tar" || return
	expect "podman: tag busybox" "" sh -c \
		'id=$(podman-berth images -q | head -n1) && podman-berth tag "$id" "$1"' _ "$pm_image" || return

	local run=(run --pull never --network none)
	expect "podman: run --rm echo" hello-from-berth \
		podman-berth "${run[@]}" --rm "$pm_image" echo hello-from-berth
	expect "podman: exit status" "exit=7" sh -c \
		'podman-berth run --pull never --network none --rm "$1" sh -c "exit 7"; echo "exit=$?"' _ "$pm_image"
	expect "podman: run -i (stdin)" piped-in sh -c \
		'echo piped-in | podman-berth run --pull never --network none --rm -i "$1" cat' _ "$pm_image"
	expect "podman: run --rm -t (console socket)" tty-ok \
		script -qec "podman-berth run --pull never --network none --rm -t '$pm_image' sh -c 'tty | grep -q /dev/pts/ && echo tty-ok'" /dev/null </dev/null
	expect "podman: run --user 65534" "uid=65534" \
		podman-berth "${run[@]}" --rm --user 65534:65534 "$pm_image" id
	expect "podman: run --cap-drop all" "CapEff:	0000000000000000" \
		podman-berth "${run[@]}" --rm --cap-drop all "$pm_image" grep CapEff /proc/self/status
	# --read-only mounts tmpfs on /tmp, /run, /var/tmp with "tmpcopyup".
	expect "podman: run --read-only (tmpfs with tmpcopyup)" ro-ok \
		podman-berth "${run[@]}" --rm --read-only "$pm_image" sh -c 'touch /x 2>/dev/null || touch /tmp/y && echo ro-ok'
	# podman makes /proc/sys read-only (linux.readonlyPaths): the runtime
	# must write sysctls before applying readonly paths, as runc does.
	expect "podman: run --sysctl" "forward=1" \
		podman-berth "${run[@]}" --rm --sysctl net.ipv4.ip_forward=1 "$pm_image" sh -c 'echo "forward=$(cat /proc/sys/net/ipv4/ip_forward)"'
	# podman info runs "RUNTIME --version".
	expect "podman: info shows the runtime's version" version \
		podman-berth info --format '{{.Host.OCIRuntime.Version}}'

	local cid
	cid=$(timeout 60 podman-berth "${run[@]}" -d --memory 64m --pids-limit 50 "$pm_image" sleep 300 2>"$pm_dir/run-d.err")
	if [ $? -ne 0 ] || [ -z "$cid" ]; then
		fail "podman: run -d" "no container id"
		sed 's/^/      | /' "$pm_dir/run-d.err"
		pm_diag
	else
		pass "podman: run -d"
		expect "podman: ps shows it Up" "Up" podman-berth ps --filter "id=$cid" --format '{{.Status}}'
		expect "podman: exec cat /etc/hostname" "${cid:0:12}" podman-berth exec "$cid" cat /etc/hostname
		expect "podman: exec exit status" "exit=3" sh -c \
			'podman-berth exec "$1" sh -c "exit 3"; echo "exit=$?"' _ "$cid"
		expect "podman: exec -t (console socket)" exec-tty-ok \
			script -qec "podman-berth exec -t '$cid' sh -c 'tty | grep -q /dev/pts/ && echo exec-tty-ok'" /dev/null </dev/null
		expect "podman: memory limit in the container's cgroup" 67108864 \
			podman-berth exec "$cid" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
		expect "podman: top" "sleep 300" podman-berth top "$cid"
		expect "podman: pause" Paused sh -c \
			'podman-berth pause "$1" >/dev/null && podman-berth ps -a --filter "id=$1" --format "{{.Status}}"' _ "$cid"
		expect "podman: unpause" Up sh -c \
			'podman-berth unpause "$1" >/dev/null && podman-berth ps -a --filter "id=$1" --format "{{.Status}}"' _ "$cid"
		expect "podman: update --memory" 134217728 sh -c \
			'podman-berth update --memory 128m "$1" >/dev/null && podman-berth exec "$1" sh -c "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"' _ "$cid"
		expect "podman: stop -t 1" "$cid" podman-berth stop -t 1 "$cid"
		expect "podman: stopped container is Exited" Exited \
			podman-berth ps -a --filter "id=$cid" --format '{{.Status}}'
		expect "podman: rm" "$cid" podman-berth rm "$cid"
		expect "podman: no containers left" "none-left" sh -c \
			'[ -z "$(podman-berth ps -aq)" ] && echo none-left'
	fi
	diag=:
}

for p in "${parts[@]}"; do
	case $p in
	containerd) part_containerd ;;
	podman) part_podman ;;
	*) fail "$p" "unknown part (want containerd or podman)" ;;
	esac
done
