package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswd is an htpasswd file of bcrypt entries, read again when it
// changes.
type htpasswd struct {
	path string
	logf func(format string, args ...any)

	mu      sync.Mutex
	stamp   fileStamp
	checked time.Time // when the file was last looked at
	users   map[string][]byte
	// ok remembers the passwords that matched, so that a client sending
	// basic auth with every request costs one bcrypt comparison, not
	// one per request: by user, the HMAC of the password under macKey
	// and the hash it matched.
	ok     map[string]verified
	macKey []byte
	// dummy is compared with the password of an unknown user, so that
	// unknown and known users take as long to refuse.
	dummy []byte
	// recheck is how often the file is looked at for changes at most.
	recheck time.Duration
}

type verified struct {
	mac  []byte
	hash []byte
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mtime time.Time
	size  int64
	ino   uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

func newHtpasswd(path string, logf func(string, ...any)) (*htpasswd, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword(key, bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	h := &htpasswd{path: path, logf: logf, macKey: key, dummy: dummy, recheck: time.Second}
	if err := h.load(); err != nil {
		return nil, err
	}
	return h, nil
}

// load reads the file.
func (h *htpasswd) load() error {
	f, err := os.Open(h.path)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	users, err := parseHtpasswd(h.path, f)
	if err != nil {
		return err
	}
	h.users, h.stamp = users, stampOf(fi)
	h.ok = map[string]verified{}
	return nil
}

// refresh reads the file again when it changed since it was read, at
// most once every recheck. A file that can no longer be read or parsed
// leaves the users as they were (logged): a typo in the file does not
// lock everyone out.
func (h *htpasswd) refresh(now time.Time) {
	if now.Sub(h.checked) < h.recheck && !h.checked.IsZero() {
		return
	}
	h.checked = now
	fi, err := os.Stat(h.path)
	if err != nil {
		h.logf("htpasswd: %v; keeping the users read before", err)
		return
	}
	if stampOf(fi) == h.stamp {
		return
	}
	if err := h.load(); err != nil {
		h.logf("%v; keeping the users read before", err)
		// Do not try again until the file changes again.
		h.stamp = stampOf(fi)
	}
}

// hash returns the bcrypt hash of user, nil for an unknown user.
func (h *htpasswd) hash(user string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refresh(time.Now())
	return h.users[user]
}

// verify reports whether password is user's.
func (h *htpasswd) verify(user, password string) bool {
	h.mu.Lock()
	h.refresh(time.Now())
	hash, known := h.users[user]
	mac := hmac.New(sha256.New, h.macKey)
	mac.Write([]byte(password))
	sum := mac.Sum(nil)
	if v, ok := h.ok[user]; ok && known && bytes.Equal(v.hash, hash) && hmac.Equal(v.mac, sum) {
		h.mu.Unlock()
		return true
	}
	h.mu.Unlock()

	if !known {
		bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	h.mu.Lock()
	if bytes.Equal(h.users[user], hash) { // not changed meanwhile
		h.ok[user] = verified{mac: sum, hash: hash}
	}
	h.mu.Unlock()
	return true
}

// parseHtpasswd parses an htpasswd file: lines of user:hash, where hash
// is bcrypt ($2y$, $2a$ or $2b$); blank lines and lines starting with #
// are ignored. Errors name the file (name) and line.
func parseHtpasswd(name string, r io.Reader) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s:%d: not user:hash", name, n)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("htpasswd %s:%d: user %q again", name, n, user)
		}
		if err := checkBcrypt(hash); err != nil {
			return nil, fmt.Errorf("htpasswd %s:%d: user %q: %w", name, n, user, err)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", name, err)
	}
	return users, nil
}

// checkBcrypt checks that hash is a bcrypt hash, naming the kind of hash
// it is otherwise.
func checkBcrypt(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("bad bcrypt hash: %w", err)
		}
		return nil
	case strings.HasPrefix(hash, "$apr1$"):
		return fmt.Errorf("an MD5 (apr1) hash; only bcrypt is accepted (htpasswd -B)")
	case strings.HasPrefix(hash, "{SHA}"):
		return fmt.Errorf("a SHA-1 hash; only bcrypt is accepted (htpasswd -B)")
	case strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		return fmt.Errorf("a SHA-crypt hash; only bcrypt is accepted (htpasswd -B)")
	case hash == "":
		return fmt.Errorf("no password hash")
	default:
		return fmt.Errorf("not a bcrypt hash (crypt or plain text?); only bcrypt is accepted (htpasswd -B)")
	}
}
