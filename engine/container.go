package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mobynet "github.com/moby/moby/api/types/network"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/oci"
	"github.com/berth-project/berth/snapshot"
	"github.com/berth-project/berth/volume"
)

// ErrContainerNotFound is returned (wrapped, naming the container) when no
// container has the ID, name or ID prefix given.
var ErrContainerNotFound = metadata.ErrNotFound

// ErrConflict is returned (wrapped) when a container's state forbids an
// operation: removing a running container, a name already taken.
var ErrConflict = errors.New("conflict")

// CreateOptions are the options of CreateContainer.
type CreateOptions struct {
	// Name is the container's name; "" picks a free random one.
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	// Endpoint is the user's settings for the network of the network
	// mode (--network-alias, --ip, --ip6, --mac-address); nil for none.
	Endpoint *mobynet.EndpointSettings
	// Start, when set, is how the caller will start the container right
	// after (run): its monitor, and where it can its init, are started
	// while the container is created, and StartContainer with the same
	// options takes them over. Close or RemoveContainer give them up.
	Start *StartOptions
	// Prelaunch, when set, is the launch that BeginPrelaunch began for this
	// creation (with Start): the container takes its ID, and its start
	// takes the launch over where it fits.
	Prelaunch *Prelaunch
}

// containerDir is the container's directory in the store: its bundle
// (config.json, the rootfs mount point), its /etc files and its log.
func (s *layout) containerDir(id string) string { return filepath.Join(s.root, "containers", id) }

// runDir is the container's directory in the run root: the monitor's
// socket, pid and exit files.
func (s *layout) runDir(id string) string { return filepath.Join(s.runRoot, "containers", id) }

// runtimeRoot is the state root of berth's OCI runtime for the engine's
// containers.
func (s *layout) runtimeRoot() string { return filepath.Join(s.runRoot, "runtime") }

// snapshotKey is the key of the container's writable snapshot.
func snapshotKey(id string) string { return "container-" + id }

// Volumes returns the store's named volumes.
func (s *Store) Volumes() (*volume.Store, error) {
	return volume.Open(s.root) // ROOT/volumes/NAME/_data, docker's layout
}

// CreateContainer makes a container of the image opts.Config.Image: the
// image's config merged under the user's, a writable snapshot on the
// image's layers, its volumes, and its record, with status "created". On
// error nothing is left behind.
func (s *Store) CreateContainer(ctx context.Context, opts CreateOptions) (_ *containers.Container, retErr error) {
	cfg, hc := opts.Config, opts.HostConfig
	if cfg == nil {
		return nil, errors.New("create container: no config")
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if opts.Name != "" {
		if err := validName(opts.Name); err != nil {
			return nil, err
		}
	}
	img, err := s.Lookup(ctx, cfg.Image)
	if err != nil {
		return nil, err
	}
	runCfg, err := s.imageRunConfig(img)
	if err != nil {
		return nil, err
	}
	if err := oci.Merge(cfg, runCfg); err != nil {
		return nil, fmt.Errorf("image %s: %w", cfg.Image, err)
	}
	var id string
	if opts.Prelaunch != nil && opts.Prelaunch.e != nil {
		id = opts.Prelaunch.id
	} else if id, err = newContainerID(); err != nil {
		return nil, err
	}
	c := &containers.Container{ID: id, Name: opts.Name, Created: time.Now().UTC(), Image: cfg.Image, ImageID: img.ID,
		Config: cfg, HostConfig: hc, State: containers.State{Status: containers.Created}}
	if c.Mounts, err = planMounts(cfg, hc); err != nil {
		return nil, err
	}
	if err := s.planEndpoints(c, opts.Endpoint); err != nil {
		return nil, err
	}
	// Anonymous volumes are named now, so that the record names every
	// volume the container will use before any is created: a volume
	// prune in another process never sees one of them unused.
	for i := range c.Mounts {
		if m := &c.Mounts[i]; m.Type == "volume" && m.Name == "" {
			if m.Name, err = newContainerID(); err != nil {
				return nil, err
			}
		}
	}
	if opts.Start != nil {
		taken, err := s.takePrelaunch(opts.Prelaunch, c, *opts.Start)
		if err == nil && !taken {
			err = s.launchEarly(ctx, c, *opts.Start)
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				s.dropEarly(c.ID)
				os.RemoveAll(s.containerDir(id))
			}
		}()
	}
	if err := s.recordNew(ctx, c); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			s.destroy(context.WithoutCancel(ctx), c, true)
		}
	}()
	if err := os.MkdirAll(s.containerDir(id), 0o710); err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	parent := ""
	if chains := image.ChainIDs(img.Config.RootFS.DiffIDs); len(chains) > 0 {
		parent = chains[len(chains)-1].String()
	}
	var snOpts []snapshot.Opt
	if c.HostConfig.AutoRemove {
		// A --rm container's layer goes with it, and with the host.
		snOpts = append(snOpts, snapshot.WithVolatileRecord())
	}
	if _, err := s.sn.Prepare(snapshotKey(id), parent, snOpts...); err != nil {
		return nil, fmt.Errorf("create container %s: rootfs: %w", id, err)
	}
	if err := s.createVolumes(c); err != nil {
		return nil, err
	}
	s.containerEvent(ctx, c, "create")
	return c, nil
}

// recordCtx is ctx for the writes of c's record: that of a --rm
// container goes with it, and need not survive a crash of the host, which
// the container does not survive either (metadata.Volatile).
func recordCtx(ctx context.Context, c *containers.Container) context.Context {
	if c.HostConfig != nil && c.HostConfig.AutoRemove {
		return metadata.Volatile(ctx)
	}
	return ctx
}

// recordNew records c, picking a random name when c has none (retrying
// on the rare collision).
func (s *Store) recordNew(ctx context.Context, c *containers.Container) error {
	if c.Name != "" {
		err := s.db.CreateContainer(recordCtx(ctx, c), c)
		if errors.Is(err, metadata.ErrNameInUse) {
			return fmt.Errorf("Conflict. %w", errors.Join(err, ErrConflict))
		}
		return err
	}
	var err error
	for i := 0; i < 10; i++ {
		c.Name = randomName(i > 3)
		if err = s.db.CreateContainer(recordCtx(ctx, c), c); !errors.Is(err, metadata.ErrNameInUse) {
			return err
		}
	}
	return err
}

func newContainerID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("container id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validName checks a container name as docker does:
// [a-zA-Z0-9][a-zA-Z0-9_.-]+ (a leading "/" is allowed and dropped).
func validName(name string) error {
	n := strings.TrimPrefix(name, "/")
	ok := len(n) >= 2
	for i, r := range n {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '_' && r != '.' && r != '-')) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return nil
}

// planMounts turns -v, --mount, --tmpfs and the image's VOLUMEs into the
// container's mounts: a later mount on a destination replaces an earlier
// one, and an image volume is only made where the user mounted nothing.
func planMounts(cfg *container.Config, hc *container.HostConfig) ([]containers.Mount, error) {
	var out []containers.Mount
	add := func(m containers.Mount) error {
		if !path.IsAbs(m.Destination) {
			return fmt.Errorf("invalid mount destination %q: not an absolute path", m.Destination)
		}
		m.Destination = path.Clean(m.Destination)
		if m.Destination == "/" {
			return fmt.Errorf("invalid mount destination %q: cannot mount over /", m.Destination)
		}
		for _, o := range out {
			if o.Destination == m.Destination {
				return fmt.Errorf("duplicate mount point: %s", m.Destination)
			}
		}
		out = append(out, m)
		return nil
	}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, mm := range hc.Mounts {
		m := containers.Mount{Type: string(mm.Type), Source: mm.Source, Destination: mm.Target, ReadOnly: mm.ReadOnly}
		switch mm.Type {
		case mount.TypeBind:
			if !filepath.IsAbs(mm.Source) {
				return nil, fmt.Errorf("invalid mount config for type \"bind\": invalid mount path: %q: mount path must be absolute", mm.Source)
			}
			if _, err := os.Stat(mm.Source); err != nil {
				return nil, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s", mm.Source)
			}
			if mm.BindOptions != nil {
				m.Propagation = string(mm.BindOptions.Propagation)
			}
		case mount.TypeVolume:
			m.Name, m.Source = mm.Source, ""
			m.Anonymous = mm.Source == ""
			if mm.VolumeOptions != nil {
				m.NoCopy = mm.VolumeOptions.NoCopy
			}
		case mount.TypeTmpfs:
			m.Source = ""
			if mm.TmpfsOptions != nil {
				if mm.TmpfsOptions.SizeBytes > 0 {
					m.Options = append(m.Options, fmt.Sprintf("size=%d", mm.TmpfsOptions.SizeBytes))
				}
				if mm.TmpfsOptions.Mode != 0 {
					m.Options = append(m.Options, fmt.Sprintf("mode=%o", mm.TmpfsOptions.Mode))
				}
			}
		default:
			return nil, fmt.Errorf("invalid mount config: mount type %q is not supported", mm.Type)
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for dst, opts := range hc.Tmpfs {
		m := containers.Mount{Type: "tmpfs", Destination: dst}
		if opts != "" {
			m.Options = strings.Split(opts, ",")
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	var vols []string
	for v := range cfg.Volumes {
		vols = append(vols, v)
	}
	slices.Sort(vols)
	for _, v := range vols {
		if slices.ContainsFunc(out, func(m containers.Mount) bool { return m.Destination == path.Clean(v) }) {
			continue
		}
		if err := add(containers.Mount{Type: "volume", Destination: v, Anonymous: true}); err != nil {
			return nil, fmt.Errorf("image volume: %w", err)
		}
	}
	return out, nil
}

// parseBind parses one -v: SRC:DST[:OPTS] or DST (an anonymous volume).
// SRC is a host path (absolute) or a volume name.
func parseBind(spec string) (containers.Mount, error) {
	parts := strings.Split(spec, ":")
	bad := func(why string) (containers.Mount, error) {
		return containers.Mount{}, fmt.Errorf("invalid volume specification: %q: %s", spec, why)
	}
	var m containers.Mount
	switch len(parts) {
	case 1:
		m = containers.Mount{Type: "volume", Destination: parts[0], Anonymous: true}
	case 2, 3:
		if parts[0] == "" || parts[1] == "" {
			return bad("empty section")
		}
		m = containers.Mount{Type: "volume", Name: parts[0], Destination: parts[1]}
		if strings.HasPrefix(parts[0], "/") {
			m = containers.Mount{Type: "bind", Source: filepath.Clean(parts[0]), Destination: parts[1]}
		} else if strings.ContainsAny(parts[0], "/.") && !validVolumeName(parts[0]) {
			return bad("source must be an absolute path or a volume name")
		}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.ReadOnly = true
				case "rw", "z", "Z", "":
				case "nocopy":
					m.NoCopy = true
				case "private", "rprivate", "shared", "rshared", "slave", "rslave":
					m.Propagation = o
				default:
					return bad("unknown option " + o)
				}
			}
		}
	default:
		return bad("too many colons")
	}
	if !path.IsAbs(m.Destination) {
		return bad("the destination must be an absolute path")
	}
	return m, nil
}

func validVolumeName(n string) bool {
	if len(n) < 2 {
		return false
	}
	for i, r := range n {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '_' && r != '.' && r != '-')) {
			return false
		}
	}
	return true
}

// createVolumes creates the container's volumes that do not exist yet
// (named ones on demand, anonymous ones always), records their names and
// paths, seeds new ones from the image's content at their destination,
// and creates missing host directories of -v binds, as docker does.
func (s *Store) createVolumes(c *containers.Container) error {
	var vs *volume.Store
	var seed []containers.Mount
	for i := range c.Mounts {
		m := &c.Mounts[i]
		switch m.Type {
		case "bind":
			// A file is bound as it is; only a missing source is
			// made, as a directory.
			if _, err := os.Stat(m.Source); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(m.Source, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
					return fmt.Errorf("bind source %s: %w", m.Source, err)
				}
			}
		case "volume":
			if vs == nil {
				var err error
				if vs, err = s.Volumes(); err != nil {
					return err
				}
			}
			v, created, err := vs.Create(m.Name, volume.CreateOptions{Anonymous: m.Anonymous})
			if err != nil {
				return fmt.Errorf("volume for %s: %w", m.Destination, err)
			}
			s.VolumeEvents(context.Background(), "create", map[bool][]string{true: {v.Name}}[created])
			m.Name, m.Source = v.Name, v.Mountpoint
			// Docker copies the image's content into a volume mounted
			// for the first time while it is empty, also one made by
			// `volume create`. Only empty ones are worth mounting the
			// rootfs for.
			if !m.NoCopy && emptyDir(m.Source) {
				seed = append(seed, *m)
			}
		}
	}
	if len(seed) > 0 {
		if err := s.seedVolumes(c.ID, seed); err != nil {
			return err
		}
	}
	if vs == nil {
		return nil // no volume: the record's mounts are as they were
	}
	_, err := s.db.UpdateContainer(context.Background(), c.ID, func(rec *containers.Container) error {
		rec.Mounts = c.Mounts
		return nil
	})
	return err
}

// seedVolumes copies the image's content at each mount's destination into
// its new volume, with the container's rootfs mounted for the time of the
// copy.
func (s *Store) seedVolumes(id string, ms []containers.Mount) error {
	rootfs := filepath.Join(s.containerDir(id), "rootfs")
	if err := s.mountRootfs(id, rootfs, false); err != nil {
		return err
	}
	defer snapshot.Unmount(rootfs)
	for _, m := range ms {
		if err := volume.Seed(m.Source, rootfs, m.Destination); err != nil {
			return fmt.Errorf("seed volume %s from image path %s: %w", m.Name, m.Destination, err)
		}
	}
	return nil
}

// mountRootfs mounts the container's writable snapshot on target;
// volatile for a layer that is removed when the container exits (see
// snapshot.Volatile: no sync of berth's whole file system at unmount).
func (s *Store) mountRootfs(id, target string, volatile bool) error {
	mounts, err := s.sn.Mounts(snapshotKey(id))
	if err != nil {
		return fmt.Errorf("container %s rootfs: %w", id, err)
	}
	if volatile {
		mounts = snapshot.Volatile(mounts)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := snapshot.MountAll(mounts, target); err != nil {
		return fmt.Errorf("container %s rootfs: %w", id, err)
	}
	return nil
}

// destroy removes what the container has on disk and its record:
// mounts, snapshot, directories, and (with volumes) its anonymous
// volumes. Missing pieces are not errors: a create killed half-way leaves
// a record that rm must be able to remove.
func (s *Store) destroy(ctx context.Context, c *containers.Container, volumes bool) error {
	return s.destroyAfter(ctx, c, volumes, nil)
}

// destroyAfter is destroy, with the container's files removed at once
// (its snapshot, its directory and its run directory, in parallel) and the
// record only once pending (nil: nothing) returned nil: a container whose
// removal failed half-way keeps its record, for rm to try again.
func (s *Store) destroyAfter(ctx context.Context, c *containers.Container, volumes bool, pending func() error) error {
	dir := s.containerDir(c.ID)
	if err := snapshot.Unmount(filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.sn.Remove(snapshotKey(c.ID)); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
			errs[0] = fmt.Errorf("remove rootfs: %w", err)
		}
	})
	wg.Go(func() { errs[1] = removeDir(dir) })
	errs[2] = os.RemoveAll(s.runDir(c.ID))
	wg.Wait()
	if pending != nil {
		errs = append(errs, pending())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if err := s.db.DeleteContainer(recordCtx(ctx, c), c.ID); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if volumes {
		if err := s.removeAnonymousVolumes(c); err != nil {
			return fmt.Errorf("remove container %s: %w", c.ID, err)
		}
	}
	s.containerEvent(ctx, c, "destroy")
	return nil
}

// removeDir removes dir, first renaming it out of the way so that a
// removal cut short never leaves a half-empty directory under its name.
func removeDir(dir string) error {
	trash := filepath.Join(filepath.Dir(dir), ".removing-"+filepath.Base(dir))
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return os.RemoveAll(trash)
		}
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return os.RemoveAll(trash)
}

func (s *Store) removeAnonymousVolumes(c *containers.Container) error {
	var errs []error
	var vs *volume.Store
	for _, m := range c.Mounts {
		if m.Type != "volume" || !m.Anonymous || m.Name == "" {
			continue
		}
		if vs == nil {
			var err error
			if vs, err = s.Volumes(); err != nil {
				return err
			}
		}
		err := vs.Remove(m.Name, func(name string) bool { return s.volumeInUse(name, c.ID) })
		s.VolumeEvents(context.Background(), "destroy", map[bool][]string{true: {m.Name}}[err == nil])
		if err != nil && !errors.Is(err, volume.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// volumeInUse reports whether a container other than except mounts the
// volume name.
func (s *Store) volumeInUse(name, except string) bool {
	list, err := s.db.ListContainers(context.Background())
	if err != nil {
		return true
	}
	for _, c := range list {
		if c.ID == except {
			continue
		}
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				return true
			}
		}
	}
	return false
}

// VolumeInUse reports whether any container mounts the volume name.
func (s *Store) VolumeInUse(name string) bool { return s.volumeInUse(name, "") }

// Container returns the container ref names (ID, name or unique ID
// prefix), its state brought up to date.
func (s *Store) Container(ctx context.Context, ref string) (*containers.Container, error) {
	c, err := s.db.GetContainer(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.reconcile(ctx, c)
}

// Containers returns every container, oldest first, states brought up to
// date.
func (s *Store) Containers(ctx context.Context) ([]*containers.Container, error) {
	s.finishPendingTeardowns(ctx, false)
	list, err := s.db.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, c := range list {
		c, err := s.reconcile(ctx, c)
		if errors.Is(err, metadata.ErrNotFound) {
			continue // removed meanwhile (--rm)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ImageUse returns what Prune and DiskUsage need to know of which images
// containers use.
func (s *Store) ImageUse(ctx context.Context) (ImageUse, error) {
	n, err := s.db.ContainersByImage(ctx)
	if err != nil {
		return nil, err
	}
	return imageCounts(n), nil
}

type imageCounts map[digest.Digest]int

func (u imageCounts) Containers(id digest.Digest) int { return u[id] }

// RunDir is the container's directory in the run root (its monitor's
// attach socket and exit file).
func (s *Store) RunDir(id string) string { return s.runDir(id) }

// RenameContainer gives the container ref the name newName.
func (s *Store) RenameContainer(ctx context.Context, ref, newName string) error {
	if err := validName(newName); err != nil {
		return err
	}
	newName = strings.TrimPrefix(newName, "/")
	oldName := ""
	c, err := s.db.UpdateContainer(ctx, ref, func(c *containers.Container) error {
		if c.Name == newName {
			return fmt.Errorf("renaming a container with the same name as its current name: %w", ErrConflict)
		}
		oldName, c.Name = c.Name, newName
		renameDNSNames(c)
		return nil
	})
	if err == nil {
		s.containerEvent(ctx, c, "rename", "oldName", "/"+oldName)
		if err := s.refreshNames(c); err != nil {
			return fmt.Errorf("container renamed, but its name on a network is not: %w", err)
		}
	}
	if errors.Is(err, metadata.ErrNameInUse) {
		return fmt.Errorf("error when allocating new name: %w", errors.Join(err, ErrConflict))
	}
	return err
}

// ContainerSize is the disk space of the container's own changes (its
// writable layer).
func (s *Store) ContainerSize(c *containers.Container) (int64, error) {
	size, _, err := s.sn.Usage(snapshotKey(c.ID))
	return size, err
}

// imageRunConfig reads the image's config in docker's form, which keeps
// what the OCI form drops (HEALTHCHECK).
func (s *Store) imageRunConfig(img Image) (dockerspec.DockerOCIImageConfig, error) {
	ra, err := s.cs.ReaderAt(img.ID)
	if err != nil {
		return dockerspec.DockerOCIImageConfig{}, fmt.Errorf("image %s: config: %w", img.ID, err)
	}
	defer ra.Close()
	data, err := image.ReadBlob(&sectionReader{ra: ra}, ocispec.Descriptor{Digest: img.ID, Size: ra.Size()}, image.MaxConfigSize)
	if err != nil {
		return dockerspec.DockerOCIImageConfig{}, fmt.Errorf("image %s: config: %w", img.ID, err)
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return dockerspec.DockerOCIImageConfig{}, fmt.Errorf("image %s: config: %w", img.ID, err)
	}
	return cfg.Config, nil
}

// emptyDir reports whether dir has no entries.
func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}
