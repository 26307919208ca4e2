package network

import (
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// TestFirstPlugins: the shorter lists undoAdd deletes with keep the
// list's name and version and its first plugins, in order.
func TestFirstPlugins(t *testing.T) {
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"n1","plugins":[
		{"type":"bridge","bridge":"br1"},{"type":"portmap"},{"type":"missing"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int][]string{1: {"bridge"}, 2: {"bridge", "portmap"}, 3: {"bridge", "portmap", "missing"}, 5: {"bridge", "portmap", "missing"}} {
		got, err := firstPlugins(list, n)
		if err != nil {
			t.Fatalf("firstPlugins(%d): %v", n, err)
		}
		if got.Name != "n1" || got.CNIVersion != "1.0.0" {
			t.Errorf("firstPlugins(%d): name %q version %q", n, got.Name, got.CNIVersion)
		}
		var types []string
		for _, p := range got.Plugins {
			types = append(types, p.Network.Type)
		}
		if len(types) != len(want) {
			t.Fatalf("firstPlugins(%d): %v, want %v", n, types, want)
		}
		for i := range want {
			if types[i] != want[i] {
				t.Errorf("firstPlugins(%d): %v, want %v", n, types, want)
			}
		}
	}
}
