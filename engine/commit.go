package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
)

// ChangeKind is the kind of a change of a container's file system, as
// docker diff prints it.
type ChangeKind byte

// The kinds of change.
const (
	Modified ChangeKind = 'C'
	Added    ChangeKind = 'A'
	Deleted  ChangeKind = 'D'
)

// Change is one changed path of a container's file system.
type Change struct {
	Kind ChangeKind
	Path string
}

// String returns docker diff's line: "C /etc".
func (c Change) String() string { return string(c.Kind) + " " + c.Path }

// Diff returns the changes of the container ref's file system over its
// image, sorted by path, like docker diff: added and changed paths (a
// changed file's parent directories show as changed) and deleted ones.
func (s *Store) Diff(ctx context.Context, ref string) ([]Change, error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	mounts, err := s.sn.Mounts(snapshotKey(c.ID))
	if err != nil {
		return nil, fmt.Errorf("container %s rootfs: %w", c.Name, err)
	}
	dir, lowers, err := unpackDir(mounts)
	if err != nil {
		return nil, fmt.Errorf("container %s rootfs: %w", c.Name, err)
	}
	var changes []Change
	if s.overlay && len(mounts) == 1 && mounts[0].Type == "overlay" {
		changes, err = overlayChanges(dir, lowers)
	} else {
		var parent string
		if parent, err = s.parentDir(c); err == nil {
			changes, err = treeChanges(dir, parent)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("diff container %s: %w", c.Name, err)
	}
	slices.SortFunc(changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return dropMountPoints(changes, mountPoints(c)), nil
}

// dropMountPoints leaves out the changes at the mount points skip, and
// the directories above them that show as changed only because of them
// (overlayfs copied them up to create the mount point), as docker, which
// makes mount points in a layer of its own, shows none. changes are
// sorted by path.
func dropMountPoints(changes []Change, skip map[string]bool) []Change {
	parents := map[string]bool{}
	for p := range skip {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			parents[d] = true
		}
	}
	var out []Change
	for i, ch := range changes {
		if skip[ch.Path] {
			continue
		}
		if ch.Kind == Modified && parents[ch.Path] {
			// Kept only if a real change lies under it.
			real := false
			for _, next := range changes[i+1:] {
				// Not a break: "/etc-x" sorts between "/etc" and "/etc/x".
				if !strings.HasPrefix(next.Path, ch.Path+"/") {
					continue
				}
				if !skip[next.Path] && !parents[next.Path] {
					real = true
					break
				}
			}
			if !real {
				continue
			}
		}
		out = append(out, ch)
	}
	return out
}

// mountPoints are the paths where the runtime mounts something over the
// rootfs (the container's mounts and the /etc files berth provides):
// the empty files or directories it creates for them are no change of
// the container's own.
func mountPoints(c *containers.Container) map[string]bool {
	m := map[string]bool{"/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true}
	for _, mt := range c.Mounts {
		m[path.Clean(mt.Destination)] = true
	}
	return m
}

// parentDir is, for a snapshotter whose trees are full copies (native),
// the tree of the container's image: its snapshot's parent.
func (s *Store) parentDir(c *containers.Container) (string, error) {
	info, err := s.sn.Stat(snapshotKey(c.ID))
	if err != nil {
		return "", err
	}
	if info.Parent == "" {
		return "", nil
	}
	key := "diff-view-" + c.ID
	s.sn.Remove(key)
	mounts, err := s.sn.View(key, info.Parent)
	if err != nil {
		return "", err
	}
	// The view of a native snapshot is a bind mount of its parent's
	// tree: the path stays valid once the view record is gone.
	defer s.sn.Remove(key)
	dir, _, err := unpackDir(mounts)
	return dir, err
}

// overlayChanges lists the changes an overlayfs upper directory holds
// over its lower directories (nearest first).
func overlayChanges(upper string, lowers []string) ([]Change, error) {
	var out []Change
	var walk func(rel string, opaque bool) error
	walk = func(rel string, hidden bool) error {
		d, err := os.Open(filepath.Join(upper, rel))
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return err
		}
		present := map[string]bool{}
		for _, n := range names {
			present[n] = true
			child := path.Join(rel, n)
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(upper, child), &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				if !hidden && inLowers(lowers, child) {
					out = append(out, Change{Deleted, "/" + child})
				}
				continue
			}
			kind := Added
			if !hidden && inLowers(lowers, child) {
				kind = Modified
			}
			out = append(out, Change{kind, "/" + child})
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			opq := isOpaque(filepath.Join(upper, child))
			if opq && kind == Modified {
				// Everything the lower layers held here is gone but
				// what the upper directory has again.
				for _, n := range lowerNames(lowers, child) {
					if _, err := os.Lstat(filepath.Join(upper, child, n)); errors.Is(err, os.ErrNotExist) {
						out = append(out, Change{Deleted, "/" + path.Join(child, n)})
					}
				}
			}
			if err := walk(child, hidden || opq || kind == Added); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", false); err != nil {
		return nil, err
	}
	return out, nil
}

func isOpaque(p string) bool {
	for _, k := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		buf := make([]byte, 8)
		if n, err := unix.Lgetxattr(p, k, buf); err == nil && string(buf[:n]) == "y" {
			return true
		}
	}
	return false
}

// inLowers reports whether the merged lower layers show rel.
func inLowers(lowers []string, rel string) bool {
	for _, l := range lowers {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(l, rel), &st); err == nil {
			return !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0)
		}
		// Absent here: a whiteout or opaque directory above it hides
		// the layers further down.
		for a := path.Dir(rel); a != "."; a = path.Dir(a) {
			p := filepath.Join(l, a)
			if err := unix.Lstat(p, &st); err == nil {
				if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 || st.Mode&unix.S_IFMT == unix.S_IFDIR && isOpaque(p) {
					return false
				}
			}
		}
	}
	return false
}

// lowerNames lists the names the merged lower layers show in dir rel.
func lowerNames(lowers []string, rel string) []string {
	var names []string
	for _, l := range lowers {
		d, err := os.Open(filepath.Join(l, rel))
		if err != nil {
			continue
		}
		ns, _ := d.Readdirnames(-1)
		d.Close()
		for _, n := range ns {
			if !slices.Contains(names, n) && inLowers(lowers, path.Join(rel, n)) {
				names = append(names, n)
			}
		}
	}
	return names
}

// treeChanges compares the full tree dir with the tree parent ("" for an
// empty one), as for the native snapshotter: a path is changed when its
// type, mode, owner, size, modification time or link target differ.
func treeChanges(dir, parent string) ([]Change, error) {
	var out []Change
	var walk func(rel string) error
	walk = func(rel string) error {
		d, err := os.Open(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			child := path.Join(rel, n)
			var st, pst unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, child), &st); err != nil {
				return err
			}
			perr := errors.New("no parent")
			if parent != "" {
				perr = unix.Lstat(filepath.Join(parent, child), &pst)
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			switch {
			case perr != nil:
				out = append(out, Change{Added, "/" + child})
				isDir = false // everything under it is added with it
			case sameFile(filepath.Join(dir, child), filepath.Join(parent, child), &st, &pst):
			default:
				out = append(out, Change{Modified, "/" + child})
			}
			if isDir && pst.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := walk(child); err != nil {
					return err
				}
			}
		}
		if parent == "" {
			return nil
		}
		pd, err := os.Open(filepath.Join(parent, rel))
		if err != nil {
			return nil
		}
		pnames, _ := pd.Readdirnames(-1)
		pd.Close()
		for _, n := range pnames {
			if !slices.Contains(names, n) {
				out = append(out, Change{Deleted, "/" + path.Join(rel, n)})
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return out, nil
}

func sameFile(a, b string, st, pst *unix.Stat_t) bool {
	if st.Mode != pst.Mode || st.Uid != pst.Uid || st.Gid != pst.Gid || st.Rdev != pst.Rdev {
		return false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return st.Mtim == pst.Mtim
	case unix.S_IFLNK:
		la, _ := os.Readlink(a)
		lb, _ := os.Readlink(b)
		return la == lb
	}
	return st.Size == pst.Size && st.Mtim == pst.Mtim
}

// CommitOptions are the options of Commit, like docker commit's flags.
type CommitOptions struct {
	// Ref names the new image ("" for a dangling image).
	Ref string
	// Author and Comment go into the image's history (-a, -m).
	Author, Comment string
	// Changes are Dockerfile instructions applied to the new config (-c).
	Changes []string
	// Pause pauses a running container while its changes are read.
	Pause bool
}

// Commit makes a new image of the container ref's changes: a layer of
// them on top of the container's image, whose config is the container's
// (Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes,
// StopSignal) with opts.Changes applied. It returns the new image's ID.
func (s *Store) Commit(ctx context.Context, ref string, opts CommitOptions) (digest.Digest, error) {
	name := ""
	if opts.Ref != "" {
		var err error
		if name, err = NormalizeName(opts.Ref); err != nil {
			return "", err
		}
	}
	c, err := s.Container(ctx, ref)
	if err != nil {
		return "", err
	}
	base, err := s.Get(ctx, c.ImageID.String())
	if err != nil {
		return "", fmt.Errorf("container %s: image: %w", c.Name, err)
	}
	mfData, err := s.readBlob(base.Target, image.MaxManifestSize)
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", base.ID, err)
	}
	baseMf, err := image.ParseManifest(mfData)
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", base.ID, err)
	}
	cfgData, err := s.readBlob(baseMf.Config, image.MaxConfigSize)
	if err != nil {
		return "", fmt.Errorf("image %s: config: %w", base.ID, err)
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(cfgData, &img); err != nil {
		return "", fmt.Errorf("image %s: config: %w", base.ID, err)
	}
	commitConfig(&img.Config, c)
	if err := applyChanges(&img.Config.ImageConfig, opts.Changes); err != nil {
		return "", err
	}

	lease, err := s.newLease(ctx, "commit")
	if err != nil {
		return "", err
	}
	defer s.db.DeleteLease(context.WithoutCancel(ctx), lease)
	// The base image may be removed meanwhile: its blobs stay ours.
	for _, l := range baseMf.Layers {
		if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceContent, l.Digest.String()); err != nil {
			return "", err
		}
	}
	layer, diffID, err := s.commitLayer(ctx, lease, c, opts.Pause)
	if err != nil {
		return "", err
	}

	now := time.Now().UTC()
	img.Created = &now
	img.Author = opts.Author
	img.RootFS.Type = "layers"
	img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
	createdBy := strings.Join(append(slices.Clone(c.Config.Entrypoint), c.Config.Cmd...), " ")
	img.History = append(img.History, ocispec.History{Created: &now, CreatedBy: createdBy, Author: opts.Author, Comment: opts.Comment})
	configDesc, err := s.writeJSON(ctx, lease, ocispec.MediaTypeImageConfig, img)
	if err != nil {
		return "", fmt.Errorf("write config: %w", err)
	}
	layers := append(slices.Clone(baseMf.Layers), layer)
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    layers,
	}
	mfDesc, err := s.writeJSON(ctx, lease, ocispec.MediaTypeImageManifest, mf)
	if err != nil {
		return "", fmt.Errorf("write manifest: %w", err)
	}
	if err := s.unpackLayers(ctx, lease, layers, img.RootFS.DiffIDs); err != nil {
		return "", err
	}
	if err := s.putName(ctx, name, mfDesc, configDesc.Digest); err != nil {
		return "", err
	}
	s.containerEvent(ctx, c, "commit", "comment", opts.Comment, "imageID", configDesc.Digest.String())
	return configDesc.Digest, nil
}

// commitConfig sets in cfg what the container's config says.
func commitConfig(cfg *dockerspec.DockerOCIImageConfig, c *containers.Container) {
	cc := c.Config
	cfg.Env, cfg.Cmd, cfg.Entrypoint = cc.Env, cc.Cmd, cc.Entrypoint
	cfg.WorkingDir, cfg.User, cfg.StopSignal = cc.WorkingDir, cc.User, cc.StopSignal
	cfg.Labels = cc.Labels
	cfg.Volumes = cc.Volumes
	cfg.ExposedPorts = nil
	for p := range cc.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p.String()] = struct{}{}
	}
	if cc.Healthcheck != nil {
		cfg.Healthcheck = &dockerspec.HealthcheckConfig{
			Test: cc.Healthcheck.Test, Interval: cc.Healthcheck.Interval, Timeout: cc.Healthcheck.Timeout,
			StartPeriod: cc.Healthcheck.StartPeriod, StartInterval: cc.Healthcheck.StartInterval, Retries: cc.Healthcheck.Retries,
		}
	}
	if len(cc.OnBuild) > 0 {
		cfg.OnBuild = cc.OnBuild
	}
	if len(cc.Shell) > 0 {
		cfg.Shell = cc.Shell
	}
}

// commitLayer stores the container's changes as a gzip layer blob, under
// the container's lock (so that it is not started or cleaned up
// meanwhile) and, when pause, with a running container paused.
func (s *Store) commitLayer(ctx context.Context, lease string, c *containers.Container, pause bool) (ocispec.Descriptor, digest.Digest, error) {
	unlock, err := s.lockContainer(c.ID)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer unlock()
	if c, err = s.Container(ctx, c.ID); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if pause && c.State.Status == containers.Running {
		if err := s.PauseContainer(ctx, c.ID); err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("pause container %s: %w", c.Name, err)
		}
		defer s.UnpauseContainer(context.WithoutCancel(ctx), c.ID)
	}
	mounts, err := s.sn.Mounts(snapshotKey(c.ID))
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("container %s rootfs: %w", c.Name, err)
	}
	upper, _, err := unpackDir(mounts)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("container %s rootfs: %w", c.Name, err)
	}
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		if info, err := s.sn.Stat(snapshotKey(c.ID)); err != nil || info.Parent != "" {
			return ocispec.Descriptor{}, "", fmt.Errorf("commit container %s: only the overlay snapshotter can commit a container on an image with layers", c.Name)
		}
		// Without a parent, the native snapshot's tree is the change.
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.DiffOverlayUpper(pw, upper)) }()
	fr, fw := io.Pipe()
	// The mount points the runtime created in the container's upper
	// directory are not the container's changes.
	skip := mountPoints(c)
	go func() {
		fw.CloseWithError(filterTar(fw, pr, func(h *tar.Header) bool { return !skip[path.Clean("/"+h.Name)] }))
	}()
	desc, diffID, err := s.writeLayer(ctx, lease, fr)
	fr.Close()
	pr.Close()
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit container %s: %w", c.Name, err)
	}
	return desc, diffID, nil
}

// filterTar copies the tar stream r to w, passing each entry's header
// through keep, which may change it, and leaving out the entries it
// refuses.
func filterTar(w io.Writer, r io.Reader, keep func(*tar.Header) bool) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if !keep(hdr) {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
