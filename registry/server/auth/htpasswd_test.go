package auth

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hashOf is a bcrypt hash of password, of the lowest cost (fast tests).
func hashOf(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// writeHtpasswd writes an htpasswd file of users (name and password
// pairs) at path, replacing it (a new inode, as editors do).
func writeHtpasswd(t testing.TB, path string, users ...string) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(users); i += 2 {
		b.WriteString(users[i] + ":" + hashOf(t, users[i+1]) + "\n")
	}
	writeFile(t, path, b.String())
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestParseHtpasswd(t *testing.T) {
	alice := hashOf(t, "alice-pw")
	// htpasswd -B writes $2y$; Go's bcrypt writes $2a$; both are read.
	bob := "$2y$" + strings.TrimPrefix(hashOf(t, "bob-pw"), "$2a$")
	carol := "$2b$" + strings.TrimPrefix(hashOf(t, "carol-pw"), "$2a$")
	good := "# users\n\nalice:" + alice + "\n  bob:" + bob + "  \ncarol:" + carol + "\n"
	users, err := parseHtpasswd("good", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 3 {
		t.Fatalf("users = %v, want alice, bob and carol", users)
	}
	for user, pw := range map[string]string{"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"} {
		if err := bcrypt.CompareHashAndPassword(users[user], []byte(pw)); err != nil {
			t.Errorf("%s: %v", user, err)
		}
	}

	for _, tc := range []struct {
		name, content, want string
	}{
		{"no colon", "alice:" + alice + "\nbob\n", "bad:2: not user:hash"},
		{"no user", ":" + alice + "\n", "bad:1: not user:hash"},
		{"twice", "alice:" + alice + "\n#\nalice:" + alice + "\n", `bad:3: user "alice" again`},
		{"apr1", "\nalice:$apr1$salt$hash\n", `bad:2: user "alice": an MD5 (apr1) hash`},
		{"sha1", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", `bad:1: user "alice": a SHA-1 hash`},
		{"sha512 crypt", "alice:$6$salt$hash\n", `bad:1: user "alice": a SHA-crypt hash`},
		{"plain", "alice:secret\n", `bad:1: user "alice": not a bcrypt hash`},
		{"empty hash", "alice:\n", `bad:1: user "alice": no password hash`},
		{"broken bcrypt", "alice:$2y$xx$abc\n", `bad:1: user "alice": bad bcrypt hash`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseHtpasswd("bad", strings.NewReader(tc.content))
			if err == nil || !strings.Contains(err.Error(), "htpasswd "+tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, "htpasswd "+tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestHtpasswdMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	_, err := newHtpasswd(path, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHtpasswdReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, path, "alice", "alice-pw")
	var logs syncBuffer
	h, err := newHtpasswd(path, func(f string, args ...any) { fmt.Fprintf(&logs, f+"\n", args...) })
	if err != nil {
		t.Fatal(err)
	}
	h.recheck = 0
	if !h.verify("alice", "alice-pw") || h.verify("alice", "wrong") || h.verify("bob", "bob-pw") {
		t.Fatal("the first file is not what verify checks")
	}

	// An operator adds bob.
	writeHtpasswd(t, path, "alice", "alice-pw", "bob", "bob-pw")
	if !h.verify("bob", "bob-pw") {
		t.Fatal("bob, added to the file, is refused")
	}
	// Then removes alice and changes bob's password: the password
	// remembered as verified no longer counts.
	writeHtpasswd(t, path, "bob", "new-pw")
	if h.verify("alice", "alice-pw") {
		t.Error("alice, removed from the file, is accepted")
	}
	if h.verify("bob", "bob-pw") {
		t.Error("bob's old password is accepted")
	}
	if !h.verify("bob", "new-pw") {
		t.Error("bob's new password is refused")
	}

	// A file that no longer parses keeps the users as they were, and
	// says so.
	writeFile(t, path, "bob:$apr1$x$y\n")
	if !h.verify("bob", "new-pw") {
		t.Error("a broken file locked bob out")
	}
	if !strings.Contains(logs.String(), path+":1") || !strings.Contains(logs.String(), "keeping the users") {
		t.Errorf("log = %q, want the broken line and that the users are kept", logs.String())
	}

	// With the default recheck interval a change is seen after it.
	h.recheck = time.Hour
	h.verify("bob", "new-pw")
	writeHtpasswd(t, path, "carol", "carol-pw")
	if h.verify("carol", "carol-pw") {
		t.Error("the file was read again before the recheck interval")
	}
	h.checked = time.Now().Add(-2 * time.Hour)
	if !h.verify("carol", "carol-pw") {
		t.Error("the file was not read again after the recheck interval")
	}
}
