package seccomp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// cacheEntries bounds the programs a Cache keeps; the oldest go first.
const cacheEntries = 32

// Cache keeps compiled programs in a directory, so that the containers
// of one profile (every container of an engine runs docker's default
// profile) pay for libseccomp's compilation, about 10 ms, once. An entry
// is keyed by the profile's JSON and by everything else the compiled
// program depends on: the architecture, libseccomp's version and API
// level, and the running kernel's release. Put the directory on a tmpfs
// (the runtime's state root under /run) so that it starts empty after a
// reboot into another kernel. An entry that does not read back intact
// (its recorded digest of the filter does not match) is compiled again.
type Cache struct {
	Dir string
}

type cacheEntry struct {
	Program
	Digest string `json:"digest"` // sha256 of Filter
}

// Compile returns the compiled program of s from the cache, or compiles
// it and stores it. Failing to store is not an error: the program is
// returned all the same.
func (c Cache) Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil || c.Dir == "" {
		return Compile(s)
	}
	key, err := cacheKey(s)
	if err != nil {
		return Compile(s)
	}
	path := filepath.Join(c.Dir, key+".json")
	if p, ok := readEntry(path); ok {
		return p, nil
	}
	p, err := Compile(s)
	if err != nil {
		return nil, err
	}
	c.store(path, p)
	return p, nil
}

func cacheKey(s *specs.LinuxSeccomp) (string, error) {
	profile, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	api, _ := libseccomp.GetAPI()
	h := sha256.New()
	fmt.Fprintf(h, "berth seccomp cache 2\x00%s\x00%s\x00%d\x00%s\x00", runtime.GOARCH, libseccompVersion(), api, unix.ByteSliceToString(u.Release[:]))
	h.Write(profile)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func readEntry(path string) (*Program, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, false
	}
	sum := sha256.Sum256(e.Filter)
	if len(e.Filter) == 0 || len(e.Filter)%8 != 0 || e.Digest != hex.EncodeToString(sum[:]) {
		return nil, false
	}
	p := e.Program
	return &p, true
}

// store writes the entry atomically (a temporary file renamed over it)
// and drops the oldest entries beyond cacheEntries.
func (c Cache) store(path string, p *Program) {
	sum := sha256.Sum256(p.Filter)
	data, err := json.Marshal(cacheEntry{Program: *p, Digest: hex.EncodeToString(sum[:])})
	if err != nil {
		return
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(c.Dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr != nil || cerr != nil {
		os.Remove(f.Name())
		return
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return
	}
	c.trim()
}

func (c Cache) trim() {
	entries, err := os.ReadDir(c.Dir)
	if err != nil || len(entries) <= cacheEntries {
		return
	}
	type aged struct {
		name string
		mod  int64
	}
	var all []aged
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		all = append(all, aged{e.Name(), info.ModTime().UnixNano()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod < all[j].mod })
	for _, a := range all[:max(0, len(all)-cacheEntries)] {
		os.Remove(filepath.Join(c.Dir, a.name))
	}
}
