package seccomp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCache: a profile is compiled once and read back from the cache
// identical; another profile gets its own entry; an entry whose filter
// was damaged is compiled again; the cache keeps at most cacheEntries.
func TestCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c := Cache{Dir: dir}
	want, err := Compile(programProfile())
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Compile(programProfile())
	if err != nil {
		t.Fatal(err)
	}
	entries := func() []string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	files := entries()
	if len(files) != 1 {
		t.Fatalf("%d cache entries after one compile, want 1", len(files))
	}
	// A hit is served from the file: prove it by changing the file's
	// filter (with a matching digest) and seeing the change come back.
	marked := &Program{Filter: append(bytes.Clone(first.Filter), first.Filter[:8]...), Flags: first.Flags}
	c.store(files[0], marked)
	hit, err := c.Compile(programProfile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hit.Filter, marked.Filter) || hit.Flags != want.Flags {
		t.Fatal("the second compile did not come from the cache")
	}
	// A damaged entry (its digest no longer matches) is compiled again.
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"filter":"`), []byte(`"filter":"AAAA`), 1)
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := c.Compile(programProfile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Filter, want.Filter) {
		t.Fatal("a damaged cache entry was used")
	}
	// Other profiles: their own entries, at most cacheEntries kept.
	for i := 0; i < cacheEntries+5; i++ {
		p := programProfile()
		p.Syscalls[0].Names = append(p.Syscalls[0].Names, []string{"rmdir", "unlink", "unlinkat", "rename", "renameat", "chmod", "fchmod"}[i%7])
		errno := uint(i + 1)
		p.Syscalls[0].ErrnoRet = &errno
		if _, err := c.Compile(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(entries()); n != cacheEntries {
		t.Fatalf("%d cache entries, want at most %d", n, cacheEntries)
	}
	// An invalid profile is still an error, and is not cached.
	bad := &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}
	if _, err := c.Compile(bad); err == nil {
		t.Fatal("an invalid profile compiled")
	}
}
