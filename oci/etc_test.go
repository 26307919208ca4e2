package oci

import (
	"strings"
	"testing"
)

func TestHosts(t *testing.T) {
	b, err := Hosts("box", []string{"db:10.0.0.2", "v6=::1", "br:[fe80::1]"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n", "10.0.0.2\tdb\n", "::1\tv6\n", "fe80::1\tbr\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
	b, err = Hosts("box", []string{"x:1.2.3.4"}, true, []byte("127.0.0.1 myhost"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "127.0.0.1 myhost\n1.2.3.4\tx\n" {
		t.Errorf("host network hosts = %q", b)
	}
	for _, bad := range []struct{ e, msg string }{
		{"gw:host-gateway", "host-gateway is not supported"},
		{"nocolon", "want host:ip"},
		{"h:1.2.3", "bad IP address"},
		{":1.2.3.4", "want host:ip"},
	} {
		_, err := Hosts("box", []string{bad.e}, false, nil)
		if err == nil || !strings.Contains(err.Error(), bad.msg) || !strings.Contains(err.Error(), bad.e) {
			t.Errorf("Hosts(%q) = %v, want error naming it and containing %q", bad.e, err, bad.msg)
		}
	}
}

func TestResolvConf(t *testing.T) {
	host := []byte("# from the host\nnameserver 127.0.0.53\nnameserver 192.168.1.1\nsearch lan\noptions edns0\n")
	tests := []struct {
		name                 string
		host                 []byte
		dns, search, options []string
		want                 string
	}{
		{"host's without loopback", host, nil, nil, nil,
			"# from the host\nnameserver 192.168.1.1\nsearch lan\noptions edns0\n"},
		{"only loopback: google", []byte("nameserver 127.0.0.1\nnameserver ::1\n"), nil, nil, nil,
			"nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"user's replace", host, []string{"1.1.1.1"}, []string{"a.example", "b.example"}, []string{"ndots:2"},
			"# from the host\nnameserver 1.1.1.1\nsearch a.example b.example\noptions ndots:2\n"},
		{"search dot clears", host, nil, []string{"."}, nil,
			"# from the host\nnameserver 192.168.1.1\noptions edns0\n"},
	}
	for _, tt := range tests {
		if got := string(ResolvConf(tt.host, tt.dns, tt.search, tt.options)); got != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}
