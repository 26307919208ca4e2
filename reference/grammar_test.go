package reference

import (
	"regexp"
	"strings"
	"testing"
)

// The expressions the hand-written matchers stand for (docker's
// distribution/reference grammar and the OCI distribution spec).
var grammar = []struct {
	name  string
	re    *regexp.Regexp
	match func(string) bool
}{
	{"path component", regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`), ValidPathComponent},
	{"repository", regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`), ValidRepository},
	{"tag", regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`), ValidTag},
	{"host label", regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$`), ValidHostLabel},
	{"domain", regexp.MustCompile(`^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$`), ValidDomain},
}

var grammarSeeds = []string{
	"", "a", "A", "_", "-", ".", "/", ":", "[", "]", "a/b", "a//b", "/a", "a/", "busybox", "library/busybox",
	"a.b", "a..b", "a_b", "a__b", "a___b", "a-b", "a--b", "a-", "-a", "a.", ".a", "a_", "a.-b", "Ab",
	"latest", "v1.0", "_x", ".x", "-x", "localhost", "localhost:5000",
	"127.0.0.1:5000", "my-reg.example.com", "my-reg.example.com:", "my-reg.example.com:x", "a:1:2",
	"[::1]", "[::1]:5000", "[]", "[::1", "[::1]x", "[fe80::1%eth0]", "a-.b", "a.b-", "A-B.c9",
	strings.Repeat("a", 118), strings.Repeat("a", 128), strings.Repeat("a", 129), // tags: 128 at most
}

func checkGrammar(t *testing.T, s string) {
	t.Helper()
	for _, g := range grammar {
		if want, got := g.re.MatchString(s), g.match(s); got != want {
			t.Errorf("%s %q: matcher says %v, the expression %v", g.name, s, got, want)
		}
	}
}

func TestGrammar(t *testing.T) {
	for _, s := range grammarSeeds {
		checkGrammar(t, s)
	}
	// Every string of up to three bytes over the alphabet that matters.
	alphabet := []byte("aZ0_.-:/[]f")
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		checkGrammar(t, string(prefix))
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c), n-1)
		}
	}
	gen(nil, 4)
}

func FuzzGrammar(f *testing.F) {
	for _, s := range grammarSeeds {
		f.Add(s)
	}
	f.Fuzz(checkGrammar)
}
