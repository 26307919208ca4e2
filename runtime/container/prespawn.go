package container

import (
	"errors"
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/namespaces"
)

// Prespawned is a container's init started ahead of the container's
// creation (Prespawn): stage 0 has run and init, in its namespaces,
// waits for its config. Create takes it (CreateOpts.Prespawned).
type Prespawned struct {
	p          *proc
	cloneFlags int // as the config asks, a cgroup namespace included
	joins      []nsJoin
	taken      bool
}

// Prespawn starts a container's init through starter before the
// container's config is complete, so that stage 0, the exec of init and
// its runtime's start-up overlap the caller's own work (mounting the
// rootfs, writing the bundle). ns are the namespaces the config will
// have; user and time namespaces cannot be prespawned (their mappings
// and offsets come with the config).
//
// Two namespaces are made later, by init itself once it has its config
// (lateNamespaces): a new mount namespace is a copy of the host's mounts
// when it is made, and the container's rootfs may not be mounted yet; a
// new cgroup namespace is rooted in the cgroup init is in when it is
// made, and init is not in the container's cgroup yet (Create moves it
// there). Until Create takes it, init holds nothing of the container's;
// Discard kills it.
func (r *Runtime) Prespawn(starter Starter, ns []specs.LinuxNamespace) (*Prespawned, error) {
	if starter == nil {
		return nil, errors.New("prespawn: no starter")
	}
	flags, joins, userns, _, err := namespaceSpawn(ns)
	if err != nil {
		return nil, err
	}
	if userns || flags&unix.CLONE_NEWTIME != 0 {
		return nil, errors.New("prespawn: user and time namespaces need the config")
	}
	sp := &spawnSpec{starter: starter, cloneFlags: flags &^ lateNamespaces, joins: joins}
	p, err := r.spawn(sp)
	if err != nil {
		return nil, err
	}
	return &Prespawned{p: p, cloneFlags: flags, joins: joins}, nil
}

// lateNamespaces are the namespaces a prespawned init makes itself, on
// its config (initConfig.Unshare), on the thread that execs the
// container's process: unshare(2) allows both in a process of many
// threads, for the calling thread.
const lateNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP

// Discard kills a prespawned init that Create did not take. The starter
// reaps it.
func (pp *Prespawned) Discard() {
	if pp == nil || pp.taken {
		return
	}
	pp.taken = true
	if pp.p.pid > 0 {
		unix.Kill(pp.p.pid, unix.SIGKILL)
	}
	pp.p.sock.Close()
}

// take hands the prespawned init to a Create whose spawn is sp, if it was
// started as sp asks.
func (pp *Prespawned) take(sp *spawnSpec) (*proc, error) {
	if pp.taken {
		return nil, errors.New("prespawned init already taken")
	}
	if sp.cloneFlags != pp.cloneFlags || !slices.Equal(sp.joins, pp.joins) || len(sp.uidMap)+len(sp.gidMap) > 0 ||
		sp.timens != "" || len(sp.preserve)+len(sp.extra) > 0 {
		return nil, fmt.Errorf("the prespawned init (clone flags %#x, %d joined) is not what the config asks (clone flags %#x, %d joined)",
			pp.cloneFlags, len(pp.joins), sp.cloneFlags, len(sp.joins))
	}
	pp.taken = true
	return pp.p, nil
}

// namespaceSpawn is how stage 0 makes ns: the clone flags of the
// namespaces to create, those to join by path, and whether a user and a
// network namespace are created or joined, respectively created.
func namespaceSpawn(ns []specs.LinuxNamespace) (flags int, joins []nsJoin, userns, newNet bool, err error) {
	for _, n := range ns {
		flag, err := namespaces.CloneFlag(n.Type)
		if err != nil {
			return 0, nil, false, false, err
		}
		if n.Path == "" {
			flags |= flag
			newNet = newNet || n.Type == specs.NetworkNamespace
		} else {
			joins = append(joins, nsJoin{flag, n.Path})
		}
		userns = userns || n.Type == specs.UserNamespace
	}
	return flags, joins, userns, newNet, nil
}
