package network

import (
	"slices"
	"testing"
)

func TestWithEnvDefault(t *testing.T) {
	base := []string{"PATH=/bin", "CNI_COMMAND=ADD"}
	got := withEnvDefault(base, "GOMAXPROCS", "1")
	if !slices.Equal(got, []string{"PATH=/bin", "CNI_COMMAND=ADD", "GOMAXPROCS=1"}) {
		t.Errorf("added: %q", got)
	}
	if len(base) != 2 {
		t.Errorf("the caller's slice changed: %q", base)
	}
	set := []string{"GOMAXPROCS=4", "PATH=/bin"}
	if got := withEnvDefault(set, "GOMAXPROCS", "1"); !slices.Equal(got, set) {
		t.Errorf("the caller's GOMAXPROCS replaced: %q", got)
	}
	if got := withEnvDefault([]string{"GOMAXPROCSX=2"}, "GOMAXPROCS", "1"); !slices.Contains(got, "GOMAXPROCS=1") {
		t.Errorf("a longer key taken for the key: %q", got)
	}
}
