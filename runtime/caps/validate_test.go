package caps

import (
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestValidate(t *testing.T) {
	if err := Validate(nil); err != nil {
		t.Fatalf("Validate(nil): %v", err)
	}
	if err := Validate(setsConfig()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	all := make([]string, 0, len(known))
	for n := range known {
		all = append(all, n)
	}
	if err := Validate(&specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all, Inheritable: all, Ambient: all}); err != nil {
		t.Fatalf("Validate(every capability): %v", err)
	}

	tests := []struct {
		name   string
		modify func(c *specs.LinuxCapabilities)
		want   string
	}{
		{"bounding", func(c *specs.LinuxCapabilities) { c.Bounding[3] = "CAP_FOO" },
			`process.capabilities.bounding[3]: unknown capability "CAP_FOO"`},
		{"effective", func(c *specs.LinuxCapabilities) { c.Effective[1] = "SYS_ADMIN" },
			`process.capabilities.effective[1]: unknown capability "SYS_ADMIN"`},
		{"inheritable", func(c *specs.LinuxCapabilities) { c.Inheritable[0] = "cap_kill" },
			`process.capabilities.inheritable[0]: unknown capability "cap_kill"`},
		{"permitted", func(c *specs.LinuxCapabilities) { c.Permitted[2] = "" },
			`process.capabilities.permitted[2]: unknown capability ""`},
		{"ambient", func(c *specs.LinuxCapabilities) { c.Ambient = append(c.Ambient, "CAP_BAR") },
			`process.capabilities.ambient[1]: unknown capability "CAP_BAR"`},
		{"effective not permitted", func(c *specs.LinuxCapabilities) { c.Effective = append(c.Effective, "CAP_SYS_ADMIN") },
			"process.capabilities.effective[2]: CAP_SYS_ADMIN is not in process.capabilities.permitted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := setsConfig()
			tc.modify(c)
			err := Validate(c)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// A capability newer than the kernel is left out, not refused.
func TestParseNewerThanKernel(t *testing.T) {
	c := &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_KILL", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"},
		Effective: []string{"CAP_BPF"}, // not permitted, but unknown to this kernel
		Ambient:   []string{"CAP_CHECKPOINT_RESTORE"},
	}
	s, err := parse(c, 37) // a kernel with CAP_AUDIT_READ as last capability
	if err != nil {
		t.Fatal(err)
	}
	if s.bounding.bits != 1<<5 || len(s.bounding.entries) != 1 || s.effective.bits != 0 || s.ambient.bits != 0 {
		t.Fatalf("parse kept capabilities the kernel does not know: %+v", s)
	}
	if _, err := parse(c, 40); err == nil || !strings.HasPrefix(err.Error(), "process.capabilities.effective[0]: CAP_BPF") {
		t.Fatalf("parse with CAP_BPF known: %v", err)
	}
}

func TestLastCap(t *testing.T) {
	last, err := lastCap()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Skipf("cannot compare with the kernel: %v", err)
	}
	if want, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || last != want {
		t.Fatalf("lastCap = %d, /proc/sys/kernel/cap_last_cap says %q", last, b)
	}
}

// runc's default config has ambient capabilities that are not
// inheritable: they are skipped, not refused.
func TestAmbientNotInheritableSkipped(t *testing.T) {
	c := &specs.LinuxCapabilities{
		Bounding: []string{"CAP_KILL", "CAP_DAC_OVERRIDE"}, Permitted: []string{"CAP_KILL", "CAP_DAC_OVERRIDE"},
		Effective: []string{"CAP_KILL"}, Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL", "CAP_DAC_OVERRIDE"},
	}
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	last, err := lastCap()
	if err != nil {
		t.Fatal(err)
	}
	s, err := parse(c, last)
	if err != nil {
		t.Fatal(err)
	}
	if s.ambient.bits != 1<<unix.CAP_KILL || len(s.ambient.entries) != 1 {
		t.Errorf("ambient set %#x (%d entries), want only CAP_KILL", s.ambient.bits, len(s.ambient.entries))
	}
}
