#!/usr/bin/env bash
# Benchmark: `berth load` of the big test image (about 250 MiB in five
# layers, one of them 20,000 small files) against `podman load` of the
# same archive, side by side in one hyperfine invocation, and the unpack
# throughput against the floor of unpacking the same layers with gzip and
# tar.
#
# Usage: bench/load.sh        (root; env RUNS=4 WARMUP=0 to change)
#
# Two archives of the same image (same config, so the same image ID):
#   oci-archive     the test image's OCI layout in a tar, layers gzip
#                   compressed as make-test-images.py wrote them: the
#                   loader must decompress while it unpacks.
#   docker-archive  `skopeo copy oci:… docker-archive:…`, layers
#                   uncompressed, as `docker save` writes them.
# Each run is a cold load: hyperfine's --prepare removes berth's --root
# (a fresh store) or podman's --root and --runroot (podman: overlay
# driver, private containers.conf and storage.conf), then syncs, so no
# run pays for the previous one's writeback. The archives stay in the
# page cache, the same for all.
#
# Floors, the same layers unpacked one after the other into an empty dir:
#   gzip -dc LAYER.tar.gz | tar -x     (the oci-archive's layers)
#   tar -x -f LAYER.tar                (the docker-archive's layers)
# Throughput is the layers' uncompressed tar bytes over the wall time.
# Installs hyperfine, podman, skopeo, busybox-static and python3 with
# apt-get when missing. Removes everything it made, also on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
	echo "bench: shared/ not found beside the repository ($here/../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
runs=${RUNS:-4}
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
need_pkg busybox-static
need_pkg python3

tmp=$(mktemp -d /var/tmp/berth-bench-load.XXXXXX)
chmod 755 "$tmp"
pm_dir=$tmp/podman
podman_host_state_remember

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	[ -x "$tmp/bin/podman-bench" ] && timeout 60 "$tmp/bin/podman-bench" rmi -af >/dev/null 2>&1
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
tar -C "$layout" -cf "$tmp/big.oci.tar" .
skopeo copy -q "oci:$layout:latest" "docker-archive:$tmp/big.docker.tar:berth.bench/big:latest"

# The layers: gzip blobs of the layout, uncompressed tars from the
# docker-archive (files named by diff ID), the uncompressed byte count,
# the config digest (the image ID either archive must give).
mkdir -p "$tmp/layers.gz" "$tmp/layers.tar"
python3 - "$layout" "$tmp/big.docker.tar" "$tmp" <<'EOF'
import json, os, sys, tarfile
layout, docker, tmp = sys.argv[1:]
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
for i, l in enumerate(manifest["layers"]):
    os.symlink(blob(l["digest"]), os.path.join(tmp, "layers.gz", f"{i}.tar.gz"))
size = 0
with tarfile.open(docker) as t:
    m = json.load(t.extractfile("manifest.json"))[0]
    for i, name in enumerate(m["Layers"]):
        src = t.extractfile(t.getmember(name) if not t.getmember(name).issym() else
                            t.getmember(os.path.normpath(os.path.join(os.path.dirname(name), t.getmember(name).linkname))))
        with open(os.path.join(tmp, "layers.tar", f"{i}.tar"), "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
                size += len(chunk)
with open(os.path.join(tmp, "facts"), "w") as f:
    f.write(f"{manifest['config']['digest']} {size} {len(manifest['layers'])} {len(config['rootfs']['diff_ids'])}\n")
EOF
read -r image_id raw_bytes n_layers n_diffids <"$tmp/facts"
[ "$n_layers" = "$n_diffids" ] || { echo "bench: the layout has $n_layers layers, its config $n_diffids" >&2; exit 1; }

# podman on our storage (overlay) and config.
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
# The floors: the layers one after the other into DIR.
cat >"$tmp/bin/floor" <<EOF
#!/bin/sh
# floor gzip|tar DIR
set -e
mkdir -p "\$2"
for i in \$(seq 0 $((n_layers - 1))); do
	case \$1 in
	gzip) gzip -dc "$tmp/layers.gz/\$i.tar.gz" | tar -x -C "\$2" ;;
	tar) tar -x -C "\$2" -f "$tmp/layers.tar/\$i.tar" ;;
	esac
done
EOF
chmod 755 "$tmp/bin/floor"

# verify: hyperfine's --cleanup, after the runs of each command: the
# last run's store must hold the image (same ID), the floor's dir the
# unpacked layers; then all of it is wiped. A load that gives another
# image ID is no benchmark.
cat >"$tmp/bin/verify" <<EOF
#!/bin/sh
set -u
if [ -d "$tmp/berth-root" ]; then
	got=\$("$berth" --root "$tmp/berth-root" image inspect "$image_id" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Id"])')
	echo "berth: \$got" >>"$tmp/verify.log"
	[ "\$got" = "$image_id" ] || exit 1
elif [ -d "$pm_dir/root" ]; then
	got=\$("$tmp/bin/podman-bench" image inspect --format '{{.ID}}' "$image_id")
	echo "podman: sha256:\$got" >>"$tmp/verify.log"
	[ "sha256:\$got" = "$image_id" ] || exit 1
	"$tmp/bin/podman-bench" rmi -af >/dev/null 2>&1
elif [ -d "$tmp/floor" ]; then
	n=\$(find "$tmp/floor/small" -type f | wc -l)
	echo "floor: \$n small files" >>"$tmp/verify.log"
	[ "\$n" = 20000 ] || exit 1
else
	echo "nothing to verify" >>"$tmp/verify.log"
	exit 1
fi
"$tmp/bin/wipe" "$tmp/berth-root" "$pm_dir/root" "$pm_dir/runroot" "$tmp/floor"
EOF
chmod 755 "$tmp/bin/verify"

echo "bench: $n_layers layers, $raw_bytes bytes uncompressed; ${runs} cold runs each"
hyperfine --warmup "$warmup" --runs "$runs" --export-json "$tmp/result.json" --cleanup "$tmp/bin/verify" \
	-n "berth oci" --prepare "$tmp/bin/wipe $tmp/berth-root" "$berth --root $tmp/berth-root load -q -i $tmp/big.oci.tar" \
	-n "podman oci" --prepare "$tmp/bin/wipe $pm_dir/root $pm_dir/runroot" "$tmp/bin/podman-bench load -q -i $tmp/big.oci.tar" \
	-n "floor gzip" --prepare "$tmp/bin/wipe $tmp/floor" "$tmp/bin/floor gzip $tmp/floor" \
	-n "berth docker" --prepare "$tmp/bin/wipe $tmp/berth-root" "$berth --root $tmp/berth-root load -q -i $tmp/big.docker.tar" \
	-n "podman docker" --prepare "$tmp/bin/wipe $pm_dir/root $pm_dir/runroot" "$tmp/bin/podman-bench load -q -i $tmp/big.docker.tar" \
	-n "floor tar" --prepare "$tmp/bin/wipe $tmp/floor" "$tmp/bin/floor tar $tmp/floor"
if [ "$(grep -c . "$tmp/verify.log")" != 6 ]; then
	echo "bench: the loads were not all verified:" >&2
	cat "$tmp/verify.log" >&2
	exit 1
fi
sed 's/^/verified: /' "$tmp/verify.log"

python3 - "$tmp/result.json" "$raw_bytes" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
mb = int(sys.argv[2]) / 1e6
t = lambda n: r[n]["mean"]
sd = lambda n: r[n]["stddev"] or 0.0
print()
print(f"load of the big image ({mb:.0f} MB uncompressed), mean of {len(r['berth oci']['times'])} cold runs:")
print(f"  {'':16} {'berth':>16} {'podman':>16} {'floor':>16} {'berth/podman':>13} {'berth/floor':>12}")
for arc, floor, what in [("oci", "gzip", "gzip -dc | tar -x"), ("docker", "tar", "tar -x")]:
    b, p, f = t(f"berth {arc}"), t(f"podman {arc}"), t(f"floor {floor}")
    cell = lambda n: f"{t(n):6.2f}s ±{sd(n):4.2f}"
    print(f"  {arc + '-archive':16} {cell(f'berth {arc}'):>16} {cell(f'podman {arc}'):>16} "
          f"{cell(f'floor {floor}'):>16} {b / p:13.2f} {b / f:12.2f}")
    print(f"  {'  MB/s':16} {mb / b:16.0f} {mb / p:16.0f} {mb / f:16.0f}   (floor: {what})")
EOF
