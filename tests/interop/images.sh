#!/usr/bin/env bash
# Interop of berth's image archives with skopeo, podman and umoci, both
# ways:
#   berth save (docker-archive, oci-archive, oci-dir) -> skopeo inspect,
#     skopeo copy, podman load, umoci unpack;
#   skopeo copy (docker-archive, oci-archive), podman save (docker-archive,
#     oci-archive), gzip and zstd compressed archives -> berth load.
# An image moved either way must keep its config digest (the image ID)
# and its name, and its layers must still give the merged tree that
# shared/images/make-test-images.py describes in layered.expect (checked
# on umoci's unpack of a `berth save --format oci-dir`, since berth has
# no command that mounts an image).
#
# Usage: tests/interop/images.sh
#
# Everything lives in a private temp dir: berth's stores (a fresh --root
# for each load from another tool), podman's storage, runroot, tmp dir,
# containers.conf and storage.conf, the archives and umoci's bundles. It
# is removed on exit, also on failure. Needs root. Installs skopeo,
# podman, umoci, zstd and busybox-static with apt-get when missing.
#
# Prints "images: N passed, M failed" last; exits non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=$(cd "$here/../../../shared" 2>/dev/null && pwd) || {
	echo "images: shared/ not found beside the repository ($here/../../../shared)" >&2
	exit 1
}
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

if [ "$(id -u)" != 0 ]; then
	echo "images: must run as root" >&2
	exit 1
fi

# ---------------------------------------------------------------- setup

lib_name=images
# shellcheck source=../../scripts/lib.sh
. "$repo/scripts/lib.sh"

tmp=
lib_cases # pass, fail, cleanups+=(FN); $tmp removed and the tally printed on exit

# check NAME CMD...: CMD must exit 0 (a command within 120 s; a function
# of this script bounds its own commands); on failure its output is
# printed. Functions print what they found wrong and return non-zero.
check() {
	local what=$1 out rc
	shift
	if declare -F "$1" >/dev/null; then
		out=$("$@" 2>&1)
	else
		out=$(timeout 120 "$@" 2>&1)
	fi
	rc=$?
	if [ $rc -eq 0 ]; then
		pass "$what"
		return 0
	fi
	fail "$what" "exit status $rc"
	echo "      command: $*"
	sed 's/^/      | /' <<<"$out"
	return 1
}

tmp=$(mktemp -d /tmp/berth-images.XXXXXX)
chmod 755 "$tmp"

# make-test-images.py needs Debian's static busybox at /usr/bin/busybox.
for p in python3 busybox-static tar gzip zstd skopeo podman umoci; do
	need_pkg "$p" || exit 1
done

echo "images: building berth"
bash "$repo/scripts/build.sh" "$tmp/bin" >/dev/null || { fail build "scripts/build.sh failed"; exit 1; }
export PATH=$tmp/bin:$PATH

echo "images: making the busybox and layered test images"
python3 "$shared/images/make-test-images.py" "$tmp/images" busybox layered >/dev/null ||
	{ fail image "make-test-images.py failed"; exit 1; }
layout=$tmp/images/layered
expect_file=$tmp/images/layered.expect

# jget EXPR: prints EXPR of the JSON document d read from stdin.
jget() {
	python3 -c 'import json, sys; d = json.load(sys.stdin); v = eval(sys.argv[1]); print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# The layered layout's manifest digest, config digest (the image ID),
# layer blob digests and diff IDs, as the test image wrote them.
read -r lay_manifest lay_config < <(python3 - "$layout" <<'EOF'
import json, os, sys
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
m = idx["manifests"][0]["digest"]
man = json.load(open(os.path.join(lay, "blobs", "sha256", m[7:])))
print(m, man["config"]["digest"])
EOF
)
lay_layers=$(jget '[l["digest"] for l in d["layers"]]' <"$layout/blobs/sha256/${lay_manifest#sha256:}")
lay_diffids=$(jget 'd["rootfs"]["diff_ids"]' <"$layout/blobs/sha256/${lay_config#sha256:}")
if [ -z "$lay_config" ] || [ -z "$lay_diffids" ]; then
	fail image "cannot read the layered layout"
	exit 1
fi

# The checker of a rootfs against layered.expect: lines
# "path<TAB>kind mode uid:gid [content]", kinds file, dir, symlink TARGET,
# hardlink-of PATH, absent.
cat >"$tmp/check-tree.py" <<'EOF'
import codecs, os, stat, sys
root, expect = sys.argv[1:]
bad = 0
def wrong(path, msg):
    global bad
    bad += 1
    print(f"{path}: {msg}")
for line in open(expect):
    path, spec = line.rstrip("\n").split("\t", 1)
    p = os.path.join(root, path)
    kind, _, rest = spec.partition(" ")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    if kind == "absent":
        if st is not None:
            wrong(path, "present, want absent")
        continue
    if st is None:
        wrong(path, f"absent, want {spec}")
        continue
    if kind == "symlink":
        if not stat.S_ISLNK(st.st_mode) or os.readlink(p) != rest:
            wrong(path, f"want symlink to {rest!r}")
        continue
    if kind == "hardlink-of":
        other = os.lstat(os.path.join(root, rest))
        if (st.st_dev, st.st_ino) != (other.st_dev, other.st_ino):
            wrong(path, f"not a hardlink of {rest} (inode {st.st_ino} vs {other.st_ino})")
        continue
    fields = rest.split(" ", 2)
    mode, owner = int(fields[0], 8), fields[1]
    want_type = {"file": stat.S_ISREG, "dir": stat.S_ISDIR}[kind]
    if not want_type(st.st_mode):
        wrong(path, f"want a {kind}, mode is {st.st_mode:o}")
        continue
    if stat.S_IMODE(st.st_mode) != mode:
        wrong(path, f"mode {stat.S_IMODE(st.st_mode):04o}, want {mode:04o}")
    if f"{st.st_uid}:{st.st_gid}" != owner:
        wrong(path, f"owner {st.st_uid}:{st.st_gid}, want {owner}")
    if kind == "file" and len(fields) == 3:
        want = codecs.decode(fields[2], "unicode_escape").encode("latin-1")
        got = open(p, "rb").read()
        if got != want:
            wrong(path, f"content {got!r}, want {want!r}")
# The busybox layer underneath must be there too.
if not os.access(os.path.join(root, "bin", "busybox"), os.X_OK):
    wrong("bin/busybox", "missing or not executable")
print(f"{bad} differences from {expect}" if bad else "tree matches layered.expect")
sys.exit(1 if bad else 0)
EOF

# umoci_tree LAYOUT-DIR TAG: unpacks the image with umoci and checks its
# rootfs against layered.expect.
umoci_tree() {
	local b
	b=$(mktemp -d "$tmp/bundle.XXXXXX") || return 1
	timeout 60 umoci unpack --image "$1:$2" "$b/b" >/dev/null || return 1
	python3 "$tmp/check-tree.py" "$b/b/rootfs" "$expect_file"
}

# umoci_tree_archive ARCHIVE TAG: the same for a docker-archive as docker
# 25 and berth write it, which is also an OCI image layout.
umoci_tree_archive() {
	local d
	d=$(mktemp -d "$tmp/layout.XXXXXX") || return 1
	tar -C "$d" -xf "$1" || return 1
	umoci_tree "$d" "$2"
}

# berth_id ROOT NAME: the image ID berth gives NAME.
berth_id() {
	timeout 60 berth --root "$1" image inspect "$2" | jget 'd[0]["Id"]'
}

# berth_has ROOT NAME WANT-ID: NAME is listed by `berth images` and is
# the image WANT-ID (also per `berth image inspect`).
berth_has() {
	local root=$1 name=$2 want=$3 got listed
	listed=$(timeout 60 berth --root "$root" images --format json) || return 1
	python3 -c '
import json, sys
repo, _, tag = sys.argv[1].rpartition(":")
rows = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
sys.exit(0 if any(r["Repository"] == repo and r["Tag"] == tag for r in rows) else 1)' "$name" "$listed" || {
		echo "berth images does not list $name:"
		echo "$listed"
		return 1
	}
	got=$(berth_id "$root" "$name") || return 1
	[ "$got" = "$want" ] || { echo "berth image inspect $name: Id $got, want $want"; return 1; }
	echo "$name is $got"
}

# json_is WANT JSON: the two JSON values are equal.
json_is() {
	python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2" ||
		{ echo "got $2, want $1"; return 1; }
}

# ---------------------------------------------------------------- podman

pm_dir=$tmp/podman
podman_host_state_remember

# podman on our storage and config. The storage driver is vfs: the
# layered image hardlinks a file of an earlier layer (data/keep-link ->
# data/keep), which podman 4.3's overlay driver cannot apply ("processing
# tar file(no such file or directory)"), also from the image's own
# layout; vfs applies each layer over a copy of the one below.
podman_conf "$pm_dir" vfs
printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --root %s --runroot %s --tmpdir %s --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"\n' \
	"$pm_dir/containers.conf" "$pm_dir/storage.conf" "$pm_dir/root" "$pm_dir/runroot" "$pm_dir/tmp" >"$tmp/bin/podman-images"
chmod 755 "$tmp/bin/podman-images"

pm_cleanup() {
	timeout 60 podman-images rmi -af
	unmount_under "$pm_dir"
	podman_host_state_restore
}
cleanups+=(pm_cleanup)

# pm_id NAME: the image ID (sha256:…) podman gives NAME.
pm_id() {
	local id
	id=$(podman-images image inspect --format '{{.ID}}' "$1") || return 1
	echo "sha256:${id#sha256:}"
}

# pm_has NAME WANT-ID: podman has NAME as the image WANT-ID.
pm_has() {
	local got
	got=$(pm_id "$1") || return 1
	[ "$got" = "$2" ] || { echo "podman image inspect $1: ID $got, want $2"; return 1; }
	echo "$1 is $got"
}

# ---------------------------------------------------------------- berth -> others

src=$tmp/berth-src
name=berth.test/layered:v1
bb_name=berth.test/busybox:v1

# skopeo_config REF WANT: skopeo reads REF's manifest, whose config is
# WANT (the image ID).
skopeo_config() {
	local raw got
	raw=$(timeout 60 skopeo inspect --raw "$1") || return 1
	got=$(jget 'd["config"]["digest"]' <<<"$raw") || return 1
	[ "$got" = "$2" ] || { echo "config $got, want $2"; return 1; }
	echo "config $got"
}

# skopeo_layers REF WANT-JSON: skopeo lists REF's layers as WANT-JSON.
skopeo_layers() {
	local out
	out=$(timeout 60 skopeo inspect "$1") || return 1
	json_is "$2" "$(jget 'd["Layers"]' <<<"$out")"
}

# archive_names ARCHIVE: berth's docker-archive names the image in
# manifest.json (RepoTags) and, as docker 25 does, in index.json
# (io.containerd.image.name: the full name; ref.name: the tag).
archive_names() {
	json_is "[[\"$name\"]]" "$(tar -xOf "$1" manifest.json | jget '[e["RepoTags"] for e in d]')" &&
		json_is "[[\"$name\", \"${name##*:}\"]]" "$(tar -xOf "$1" index.json |
			jget '[[m["annotations"]["io.containerd.image.name"], m["annotations"]["org.opencontainers.image.ref.name"]] for m in d["manifests"]]')"
}

# pm_load_has ARCHIVE NAME...: podman loads ARCHIVE, then has each NAME.
pm_load_has() {
	local a=$1 n
	shift
	timeout 60 podman-images load -q -i "$a" || return 1
	for n in "$@"; do
		timeout 60 podman-images image inspect --format '{{.ID}} {{.RepoTags}}' "$n" || return 1
	done
}

# berth_load_has ROOT ARCHIVE NAME...: berth loads ARCHIVE into ROOT,
# then has each NAME.
berth_load_has() {
	local root=$1 a=$2 n
	shift 2
	timeout 60 berth --root "$root" load -i "$a" || return 1
	for n in "$@"; do
		timeout 60 berth --root "$root" image inspect "$n" | jget 'd[0]["Id"] + " " + str(d[0]["RepoTags"])' || return 1
	done
}

part_berth_out() {
	echo "== berth save -> skopeo, podman, umoci"
	local id=$lay_config out=$tmp/out
	mkdir -p "$out"
	check "berth: load the layered OCI layout as $name" berth --root "$src" load -q -i "$layout" "$name" || return
	check "berth: loaded image ID is the layout's config digest" berth_has "$src" "$name" "$id" || return
	check "berth: load the busybox OCI layout as $bb_name" berth --root "$src" load -q -i "$tmp/images/busybox" "$bb_name"

	# docker-archive
	local da=$out/layered.docker.tar
	check "berth save (docker-archive)" berth --root "$src" save -o "$da" "$name" || return
	check "berth save (docker-archive): manifest.json and index.json name the image" archive_names "$da"
	check "umoci unpack of berth's docker-archive as an OCI layout matches layered.expect" \
		umoci_tree_archive "$da" "${name##*:}"
	check "skopeo inspect docker-archive: config digest is the image ID" skopeo_config "docker-archive:$da" "$id"
	# docker-archive layers are uncompressed: their digests are the diff IDs.
	check "skopeo inspect docker-archive: layers are the diff IDs" skopeo_layers "docker-archive:$da" "$lay_diffids"
	if check "skopeo copy docker-archive: -> oci:" skopeo copy -q "docker-archive:$da" "oci:$out/skopeo-oci:copied"; then
		# skopeo converts the manifest to OCI, re-serializing the config
		# and gzipping the layers, so no digest is kept (the same for its
		# own docker-archives): the unpacked tree is what must not change.
		check "umoci unpack of skopeo's copy matches layered.expect" umoci_tree "$out/skopeo-oci" copied
	fi
	check "podman load of berth's docker-archive" podman-images load -q -i "$da" &&
		check "podman image inspect: same image ID as berth" pm_has "$name" "$id"

	# several images in one docker-archive
	local multi=$out/two.docker.tar
	if check "berth save of two images (docker-archive)" berth --root "$src" save -o "$multi" "$name" "$bb_name"; then
		check "berth load of the two-image archive into a fresh store" \
			berth_load_has "$tmp/berth-two" "$multi" "$name" "$bb_name"
		check "podman load of the two-image archive" pm_load_has "$multi" "$name" "$bb_name"
	fi

	# oci-archive: the layer blobs as stored (gzip), same manifest
	local oa=$out/layered.oci.tar
	check "berth save --format oci-archive" berth --root "$src" save --format oci-archive -o "$oa" "$name" || return
	check "skopeo inspect oci-archive:FILE:v1: the layout's layers" skopeo_layers "oci-archive:$oa:v1" "$lay_layers"
	check "skopeo inspect oci-archive:FILE:v1: config digest is the image ID" skopeo_config "oci-archive:$oa:v1" "$id"
	timeout 60 podman-images rmi -af >/dev/null 2>&1
	check "podman load of berth's oci-archive" podman-images load -q -i "$oa" &&
		check "podman image inspect (oci-archive): same image ID as berth" pm_has "$name" "$id"

	# oci-dir
	check "berth save --format oci-dir" berth --root "$src" save --format oci-dir -o "$out/layered.oci" "$name" &&
		check "umoci unpack of berth's oci-dir matches layered.expect" umoci_tree "$out/layered.oci" v1
}

# ---------------------------------------------------------------- others -> berth

# load_into NAME ARCHIVE|- [LOAD-ARGS...]: berth load (-i ARCHIVE, or
# stdin for -) into a fresh store, which must then list NAME as the
# layered image; a round trip through berth save and umoci unpack must
# give layered.expect's tree. (berth keeps the manifest it loaded or
# made: after a docker archive, a Docker schema2 one, which umoci does
# not read; berth save's docker-archive has an OCI manifest whatever
# berth stores.)
load_into() {
	local want=$1 archive=$2 root
	shift 2
	root=$(mktemp -d "$tmp/berth-in.XXXXXX") || return 1
	if [ "$archive" = - ]; then
		timeout 60 berth --root "$root" load "$@" || return 1
	else
		timeout 60 berth --root "$root" load -i "$archive" "$@" || return 1
	fi
	berth_has "$root" "$want" "$lay_config" || return 1
	timeout 60 berth --root "$root" save -o "$root.tar" "$want" || return 1
	umoci_tree_archive "$root.tar" "${want##*:}"
}

part_berth_in() {
	echo "== skopeo, podman, gzip, zstd -> berth load"
	local in=$tmp/in
	mkdir -p "$in"
	local sk_docker=berth.test/sk-docker:v2 sk_oci=berth.test/sk-oci:v3
	if check "skopeo copy oci: -> docker-archive:" \
		skopeo copy -q "oci:$layout:latest" "docker-archive:$in/skopeo.docker.tar:$sk_docker"; then
		check "berth load of skopeo's docker-archive (name, ID, tree)" \
			load_into "$sk_docker" "$in/skopeo.docker.tar"
		gzip -c "$in/skopeo.docker.tar" >"$in/skopeo.docker.tar.gz"
		check "berth load -i of a gzip docker-archive (name, ID, tree)" \
			load_into "$sk_docker" "$in/skopeo.docker.tar.gz"
		check "berth load from stdin of a gzip docker-archive (name, ID, tree)" \
			load_into "$sk_docker" - <"$in/skopeo.docker.tar.gz"
		zstd -q -c "$in/skopeo.docker.tar" >"$in/skopeo.docker.tar.zst"
		check "berth load -i of a zstd docker-archive (name, ID, tree)" \
			load_into "$sk_docker" "$in/skopeo.docker.tar.zst"
	fi
	if check "skopeo copy oci: -> oci-archive:" \
		skopeo copy -q "oci:$layout:latest" "oci-archive:$in/skopeo.oci.tar:v3"; then
		# The archive's only name is ref.name "v3", no repository: NAME names it.
		check "berth load of skopeo's oci-archive with NAME (name, ID, tree)" \
			load_into "$sk_oci" "$in/skopeo.oci.tar" "$sk_oci"
		gzip -c "$in/skopeo.oci.tar" >"$in/skopeo.oci.tar.gz"
		check "berth load from stdin of a gzip oci-archive with NAME (name, ID, tree)" \
			load_into "$sk_oci" - "$sk_oci" <"$in/skopeo.oci.tar.gz"
	fi

	# podman loads the layout itself (no berth in between), under a name.
	local pm_name=berth.test/pm-layered:v4
	timeout 60 podman-images rmi -af >/dev/null 2>&1
	tar -C "$layout" -cf "$in/layout.tar" . || { fail "tar of the layout" "tar failed"; return; }
	check "podman load of the layered OCI layout, tagged $pm_name" sh -c '
		podman-images load -q -i "$1" && podman-images tag "$2" "$3"' _ "$in/layout.tar" "${lay_config#sha256:}" "$pm_name" || return
	if check "podman save (docker-archive)" podman-images save -q -o "$in/podman.docker.tar" "$pm_name"; then
		check "berth load of podman's docker-archive (name, ID, tree)" \
			load_into "$pm_name" "$in/podman.docker.tar"
	fi
	if check "podman save --format oci-archive" podman-images save -q --format oci-archive -o "$in/podman.oci.tar" "$pm_name"; then
		check "berth load of podman's oci-archive (name, ID, tree)" \
			load_into "$pm_name" "$in/podman.oci.tar"
	fi
}

part_berth_out
part_berth_in
