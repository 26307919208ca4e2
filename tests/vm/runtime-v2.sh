#!/bin/sh
# Runs inside the cgroup v2 VM (busybox sh): berth's runtime on a pure
# cgroup v2 host. usage: runtime-v2.sh BERTH_RUNC BUNDLE
# Prints "vm-v2: N passed, M failed"; exits non-zero on a failure.
R=$1; B=$2; ROOT=/run/berth-vmtest
pass=0; fail=0
check() { # name expected actual
  if [ "$2" = "$3" ]; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}
# A container that reports its own cgroup limits, as the container sees them.
out=$("$R" --root $ROOT run --bundle "$B" v2a 2>&1)
check "run exits 0" 0 $?
check "memory.max inside" "memory.max=67108864" "$(echo "$out" | grep memory.max=)"
check "pids.max inside" "pids.max=64" "$(echo "$out" | grep pids.max=)"
check "cpu.max inside" "cpu.max=50000 100000" "$(echo "$out" | grep cpu.max=)"
check "device c 1:11 (kmsg) denied" "kmsg=denied" "$(echo "$out" | grep kmsg=)"
check "device /dev/null allowed" "null=ok" "$(echo "$out" | grep null=)"
check "cgroup ns root" "cgroup=0::/" "$(echo "$out" | grep cgroup=)"
# create/pause/resume/update/delete against the freezer and live limits
"$R" --root $ROOT create --bundle "$B.sleep" v2b </dev/null >/dev/null 2>&1
check "create" 0 $?
"$R" --root $ROOT start v2b
pid=$("$R" --root $ROOT state v2b | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/$pid/cgroup)
"$R" --root $ROOT pause v2b
check "paused" '"status": "paused",' "$("$R" --root $ROOT state v2b | grep status | tr -d ' ' | sed 's/:/: /')"
check "cgroup.freeze" 1 "$(cat $cg/cgroup.freeze)"
"$R" --root $ROOT resume v2b
check "cgroup.freeze after resume" 0 "$(cat $cg/cgroup.freeze)"
"$R" --root $ROOT update --memory 32m --pids-limit 20 v2b
check "update memory.max" 33554432 "$(cat $cg/memory.max)"
check "update pids.max" 20 "$(cat $cg/pids.max)"
"$R" --root $ROOT events --stats v2b | grep -q '"memory"'
check "events --stats" 0 $?
"$R" --root $ROOT delete -f v2b
check "delete" 0 $?
check "cgroup removed" no "$([ -d "$cg" ] && echo yes || echo no)"
# The engine: a run's init is prespawned before its cgroup is made, and
# makes its cgroup namespace once it has been moved into it.
E="$(dirname "$R")/berth --root /run/berth-vmtest-engine --runroot /run/berth-vmtest-engine-run"
tar -C "$B/rootfs" -cf /tmp/engine-rootfs.tar . && $E import /tmp/engine-rootfs.tar vm:local >/dev/null
check "engine import" 0 $?
check "engine run: cgroup ns root" "0::/" "$($E run --rm --network none vm:local cat /proc/self/cgroup)"
check "engine run: host cgroup ns" "0::/berth/" "$($E run --rm --network none --cgroupns host vm:local cat /proc/self/cgroup | cut -c1-10)"
check "engine run: memory.max" 67108864 "$($E run --rm --network none -m 64m vm:local cat /sys/fs/cgroup/memory.max)"
check "engine run: nothing left" "" "$($E ps -aq)"
echo "vm-v2: $pass passed, $fail failed"
[ $fail -eq 0 ]
