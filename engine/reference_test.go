package engine

import "testing"

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"user/app":                        "docker.io/user/app:latest",
		"docker.io/busybox":               "docker.io/library/busybox:latest",
		"localhost/app":                   "localhost/app:latest",
		"localhost:5000/app":              "localhost:5000/app:latest",
		"registry.example.com:443/a/b:v2": "registry.example.com:443/a/b:v2",
		"quay.io/org/img":                 "quay.io/org/img:latest",
	} {
		got, err := NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "a@sha256:00", "a:b:c", "a/:x", "a:-tag", "host:port/x"} {
		if got, err := NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q) = %q, want error", bad, got)
		}
	}
	for name, want := range map[string][2]string{
		"docker.io/library/busybox:latest": {"busybox", "latest"},
		"docker.io/user/app:1":             {"user/app", "1"},
		"localhost:5000/app:x":             {"localhost:5000/app", "x"},
	} {
		if r, tag := SplitName(name); r != want[0] || tag != want[1] {
			t.Errorf("SplitName(%q) = %q %q", name, r, tag)
		}
	}
}
