#!/usr/bin/env bash
# Benchmark: `berth pull` of the big test image (about 270 MB uncompressed
# in five gzip layers, one of them 20,000 small files) from a registry on
# the loopback interface, against `podman pull` of the same image, with
# `skopeo copy docker://… oci:…` (fetch, no unpack) as a reference, side
# by side in one hyperfine invocation.
#
# Usage: bench/pull.sh        (root; env RUNS=3 WARMUP=0 to change)
#
# The registry is Debian's docker-registry (distribution 2.8) on a free
# 127.0.0.1 port, plain HTTP, its storage in the script's temp dir, seeded
# with `skopeo copy --preserve-digests` from the test image's OCI layout,
# so the layers are served as make-test-images.py gzip compressed them.
# Each run is a cold pull: hyperfine's --prepare removes berth's --root (a
# fresh store), podman's --root and --runroot (overlay driver, private
# containers.conf and storage.conf) or skopeo's OCI layout, then syncs, so
# no run pays for the previous one's writeback. The registry's blobs stay
# in the page cache, the same for all. Everything lives under one dir in
# /var/tmp, one file system.
#
# Throughput is the layers' uncompressed tar bytes (the sum of their diff
# sizes, measured by decompressing the blobs) over the wall time of the
# whole command, so berth's and podman's include fetching, decompressing,
# unpacking and recording the image; skopeo's only fetching and storing
# the compressed blobs, which is why it is a reference, not a floor.
# Installs hyperfine, podman, skopeo, docker-registry and python3 with
# apt-get when missing. Stops the registry and removes everything it made,
# also on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
	echo "bench: shared/ not found beside the repository ($here/../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
runs=${RUNS:-3}
warmup=${WARMUP:-0}

if [ "$(id -u)" != 0 ]; then
	echo "bench: must run as root" >&2
	exit 1
fi

lib_name=bench
# shellcheck source=../scripts/lib.sh
. "$repo/scripts/lib.sh"
need_pkg hyperfine
need_pkg podman
need_pkg skopeo
need_pkg docker-registry
need_pkg python3

tmp=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
chmod 755 "$tmp"
pm_dir=$tmp/podman
reg_pid=
podman_host_state_remember

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	[ -x "$tmp/bin/podman-bench" ] && timeout 60 "$tmp/bin/podman-bench" rmi -af >/dev/null 2>&1
	if [ -n "$reg_pid" ]; then
		kill "$reg_pid" 2>/dev/null
		wait "$reg_pid" 2>/dev/null
	fi
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

echo "bench: making the big test image"
python3 "$shared/images/make-test-images.py" "$tmp/images" big >/dev/null
layout=$tmp/images/big

# The facts the runs are checked against: the config digest (the image ID
# berth and podman must give), the manifest digest (what skopeo's layout
# must name), the layers' compressed and uncompressed byte counts.
python3 - "$layout" "$tmp/facts" <<'EOF'
import gzip, json, os, sys
layout, out = sys.argv[1:]
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
index = json.load(open(os.path.join(layout, "index.json")))
mdigest = index["manifests"][0]["digest"]
manifest = json.load(open(blob(mdigest)))
gz = raw = 0
for l in manifest["layers"]:
    if not l["mediaType"].endswith("gzip"):
        sys.exit(f"layer {l['digest']} is {l['mediaType']}, not gzip")
    gz += l["size"]
    with gzip.open(blob(l["digest"])) as f:
        while chunk := f.read(1 << 20):
            raw += len(chunk)
with open(out, "w") as f:
    f.write(f"{manifest['config']['digest']} {mdigest} {gz} {raw} {len(manifest['layers'])}\n")
EOF
read -r image_id manifest_digest gz_bytes raw_bytes n_layers <"$tmp/facts"

# The registry on a free loopback port. A port another process takes
# between the probe and the registry's bind makes the registry exit, which
# the wait below reports.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
mkdir -p "$tmp/registry/data"
cat >"$tmp/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $tmp/registry/data
  delete:
    enabled: true
http:
  addr: $reg
EOF
docker-registry serve "$tmp/registry/config.yml" >"$tmp/registry/log" 2>&1 &
reg_pid=$!
for i in $(seq 100); do
	curl -fs -o /dev/null "http://$reg/v2/" && break
	if ! kill -0 "$reg_pid" 2>/dev/null || [ "$i" = 100 ]; then
		echo "bench: the registry did not come up on $reg:" >&2
		cat "$tmp/registry/log" >&2
		exit 1
	fi
	sleep 0.1
done
ref=$reg/big:latest
echo "bench: seeding $ref"
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$layout:latest" "docker://$ref"

# podman on our storage (overlay, as load.sh) and config.
podman_conf "$pm_dir" overlay
printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --root %s --runroot %s --tmpdir %s --storage-driver overlay --cgroup-manager cgroupfs --events-backend file "$@"\n' \
	"$pm_dir/containers.conf" "$pm_dir/storage.conf" "$pm_dir/root" "$pm_dir/runroot" "$pm_dir/tmp" >"$tmp/bin/podman-bench"
chmod 755 "$tmp/bin/podman-bench"

# The --prepare commands: an empty store (or dir), then sync.
cat >"$tmp/bin/wipe" <<EOF
#!/bin/sh
# wipe DIR...: unmounts what is mounted below each DIR, removes it, syncs.
for d in "\$@"; do
	awk -v d="\$d" '\$5 == d || index(\$5, d "/") == 1 { print \$5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "\$m"; done
	rm -rf "\$d"
done
sync
EOF
chmod 755 "$tmp/bin/wipe"

# verify: hyperfine's --cleanup, after the runs of each command: the last
# run's store must hold the image (same ID), skopeo's layout the manifest
# and every blob; then all of it is wiped. A pull that gives another image
# ID is no benchmark.
cat >"$tmp/bin/verify" <<EOF
#!/bin/sh
set -u
if [ -d "$tmp/berth-root" ]; then
	got=\$("$berth" --root "$tmp/berth-root" image inspect "$ref" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Id"])')
	echo "berth: \$got" >>"$tmp/verify.log"
	[ "\$got" = "$image_id" ] || exit 1
elif [ -d "$pm_dir/root" ]; then
	got=\$("$tmp/bin/podman-bench" image inspect --format '{{.ID}}' "$ref")
	echo "podman: sha256:\$got" >>"$tmp/verify.log"
	[ "sha256:\$got" = "$image_id" ] || exit 1
	"$tmp/bin/podman-bench" rmi -af >/dev/null 2>&1
elif [ -d "$tmp/skopeo" ]; then
	got=\$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$tmp/skopeo/index.json")
	n=\$(find "$tmp/skopeo/blobs/sha256" -type f | wc -l)
	echo "skopeo: \$got, \$n blobs" >>"$tmp/verify.log"
	[ "\$got" = "$manifest_digest" ] && [ "\$n" = $((n_layers + 2)) ] || exit 1
else
	echo "nothing to verify" >>"$tmp/verify.log"
	exit 1
fi
"$tmp/bin/wipe" "$tmp/berth-root" "$pm_dir/root" "$pm_dir/runroot" "$tmp/skopeo"
EOF
chmod 755 "$tmp/bin/verify"

echo "bench: $n_layers layers, $gz_bytes bytes compressed, $raw_bytes uncompressed; ${runs} cold runs each"
hyperfine --warmup "$warmup" --runs "$runs" --export-json "$tmp/result.json" --cleanup "$tmp/bin/verify" \
	-n "berth" --prepare "$tmp/bin/wipe $tmp/berth-root" "$berth --root $tmp/berth-root pull -q $ref" \
	-n "podman" --prepare "$tmp/bin/wipe $pm_dir/root $pm_dir/runroot" "$tmp/bin/podman-bench pull -q --tls-verify=false $ref" \
	-n "skopeo" --prepare "$tmp/bin/wipe $tmp/skopeo" "skopeo copy -q --src-tls-verify=false docker://$ref oci:$tmp/skopeo:latest"
if [ "$(grep -c . "$tmp/verify.log")" != 3 ]; then
	echo "bench: the pulls were not all verified:" >&2
	cat "$tmp/verify.log" >&2
	exit 1
fi
sed 's/^/verified: /' "$tmp/verify.log"

python3 - "$tmp/result.json" "$raw_bytes" "$gz_bytes" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
mb, gzmb = int(sys.argv[2]) / 1e6, int(sys.argv[3]) / 1e6
t = lambda n: r[n]["mean"]
sd = lambda n: r[n]["stddev"] or 0.0
print()
print(f"pull of the big image ({mb:.0f} MB uncompressed, {gzmb:.0f} MB gzip) from a loopback registry,")
print(f"mean of {len(r['berth']['times'])} cold runs:")
print(f"  {'':8} {'wall':>14} {'min':>7} {'max':>7} {'user':>7} {'sys':>7} {'MB/s':>6}")
for n in ("berth", "podman", "skopeo"):
    print(f"  {n:8} {t(n):6.2f}s ±{sd(n):4.2f} {r[n]['min']:6.2f}s {r[n]['max']:6.2f}s "
          f"{r[n]['user']:6.2f}s {r[n]['system']:6.2f}s {mb / t(n):6.0f}")
print("  (MB/s: uncompressed layer bytes over wall time; skopeo fetches the gzip blobs, no unpack)")
print(f"  berth speedup over podman: {t('podman') / t('berth'):.2f}x (issue's target: 2.5x)")
print(f"  berth time / skopeo time:  {t('berth') / t('skopeo'):.2f}")
EOF
