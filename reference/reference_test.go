package reference

import "testing"

func TestParse(t *testing.T) {
	const d = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"user/app":                        "docker.io/user/app:latest",
		"docker.io/busybox":               "docker.io/library/busybox:latest",
		"index.docker.io/busybox":         "docker.io/library/busybox:latest",
		"localhost/app":                   "localhost/app:latest",
		"localhost:5000/app":              "localhost:5000/app:latest",
		"127.0.0.1:5000/a/b":              "127.0.0.1:5000/a/b:latest",
		"[::1]:5000/a":                    "[::1]:5000/a:latest",
		"registry.example.com:443/a/b:v2": "registry.example.com:443/a/b:v2",
		"quay.io/org/img":                 "quay.io/org/img:latest",
		"busybox@" + d:                    "docker.io/library/busybox@" + d,
		"busybox:1@" + d:                  "docker.io/library/busybox:1@" + d,
	} {
		r, err := Parse(in)
		if err != nil || r.String() != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, r.String(), err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "a@sha256:00", "a:b:c", "a/:x", "a:-tag", "host:port/x", "a@md5:x", "-a"} {
		if r, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %q, want error", bad, r)
		}
	}
}

func TestForms(t *testing.T) {
	const d = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	r, err := Parse("busybox@" + d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Object() != d || r.Tagged() != "" || r.Familiar() != "busybox@"+d || r.Name() != "docker.io/library/busybox" {
		t.Errorf("digest reference: object %q tagged %q familiar %q name %q", r.Object(), r.Tagged(), r.Familiar(), r.Name())
	}
	r, _ = Parse("localhost:5000/x/y:2")
	if r.Object() != "2" || r.Tagged() != "localhost:5000/x/y:2" || r.Familiar() != "localhost:5000/x/y:2" {
		t.Errorf("tag reference: object %q tagged %q familiar %q", r.Object(), r.Tagged(), r.Familiar())
	}
	if w, err := r.WithTag("v3"); err != nil || w.String() != "localhost:5000/x/y:v3" {
		t.Errorf("WithTag = %q, %v", w, err)
	}
	if _, err := r.WithTag("-x"); err == nil {
		t.Error("WithTag(-x) succeeded")
	}
	for name, want := range map[string]string{"docker.io/library/busybox": "busybox", "docker.io/u/a": "u/a", "q.io/a": "q.io/a"} {
		if got := Familiar(name); got != want {
			t.Errorf("Familiar(%q) = %q, want %q", name, got, want)
		}
	}
	if !HasDomain("localhost/x") || !HasDomain("a.b/x") || HasDomain("user/app") || HasDomain("busybox") {
		t.Error("HasDomain")
	}
}
