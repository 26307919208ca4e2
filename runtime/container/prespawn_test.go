package container

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestNamespaceSpawn(t *testing.T) {
	flags, joins, userns, newNet, err := namespaceSpawn([]specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: "/run/netns/x"}, {Type: specs.CgroupNamespace},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP; flags != want {
		t.Errorf("flags %#x, want %#x", flags, want)
	}
	if len(joins) != 1 || joins[0] != (nsJoin{unix.CLONE_NEWNET, "/run/netns/x"}) {
		t.Errorf("joins %v", joins)
	}
	if userns || newNet {
		t.Errorf("userns %v newNet %v, want both false", userns, newNet)
	}
	if _, _, _, _, err := namespaceSpawn([]specs.LinuxNamespace{{Type: "bogus"}}); err == nil {
		t.Error("an unknown namespace type was accepted")
	}
}

// A prespawned init is only taken by a spawn that asks for what it was
// started with; anything else is an error, never a silent mismatch.
func TestPrespawnedTake(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	base := spawnSpec{cloneFlags: unix.CLONE_NEWPID | unix.CLONE_NEWNS, joins: []nsJoin{{unix.CLONE_NEWNET, "/n"}}}
	newPP := func() *Prespawned {
		return &Prespawned{p: &proc{pid: 0, sock: r}, cloneFlags: base.cloneFlags, joins: base.joins}
	}
	for name, mod := range map[string]func(*spawnSpec){
		"flags":   func(s *spawnSpec) { s.cloneFlags |= unix.CLONE_NEWUTS },
		"joins":   func(s *spawnSpec) { s.joins = []nsJoin{{unix.CLONE_NEWNET, "/other"}} },
		"uid map": func(s *spawnSpec) { s.uidMap = []specs.LinuxIDMapping{{Size: 1}} },
		"timens":  func(s *spawnSpec) { s.timens = "monotonic 1 0" },
		"extra":   func(s *spawnSpec) { s.extra = []*os.File{w} },
	} {
		sp := base
		mod(&sp)
		if _, err := newPP().take(&sp); err == nil || !strings.Contains(err.Error(), "not what the config asks") {
			t.Errorf("%s: take = %v, want a mismatch", name, err)
		}
	}
	pp := newPP()
	sp := base
	if p, err := pp.take(&sp); err != nil || p != pp.p {
		t.Fatalf("take of a match: %v, %v", p, err)
	}
	if _, err := pp.take(&sp); err == nil {
		t.Error("a prespawned init was taken twice")
	}
	pp.Discard() // taken: must not kill or close
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatalf("Discard of a taken init closed its socket: %v", err)
	}
}

// TestConfigWarmUp: init's warm-up config decodes cleanly (a decode
// that failed part-way would build only some of the decoders) and
// reaches the spec's nested parts.
func TestConfigWarmUp(t *testing.T) {
	var m message
	if err := json.Unmarshal([]byte(configWarmUp), &m); err != nil {
		t.Fatalf("configWarmUp: %v", err)
	}
	c := m.Config
	if m.Type != msgConfig || c == nil || c.Spec == nil || c.Spec.Process == nil || c.Spec.Linux == nil || c.Seccomp == nil {
		t.Fatalf("configWarmUp decoded to %+v", m)
	}
	s := c.Spec
	if len(s.Mounts) != 1 || len(s.Process.Rlimits) != 1 || s.Process.Capabilities == nil || s.Hooks == nil ||
		len(s.Linux.Namespaces) != 1 || len(s.Linux.Devices) != 1 || s.Linux.Seccomp == nil || len(s.Linux.TimeOffsets) != 1 {
		t.Errorf("configWarmUp lacks parts of the spec: %+v", s)
	}
}
