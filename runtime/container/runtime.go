// Package container is berth's OCI runtime: it turns a bundle into a
// running container and manages it through the OCI lifecycle (create,
// start, state, kill, delete) plus exec, pause, resume, update, ps and
// events. Each container's state lives in ROOT/ID; nothing runs between
// commands but the container itself.
//
// A container's init is berth-init (cmd/berth-init: only this package's
// init side, which starts in a fraction of berth's time) from beside the
// berth binary, or berth itself where there is none, executed from a
// sealed copy (runtime/exeseal). The C constructor in runtime/nsexec enters and creates
// the namespaces and forks; the Go code in init.go then prepares the root
// filesystem, talks to the parent over the sync socket (JSON messages),
// waits for `start` and executes the user's program (process.go).
package container

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Runtime is a runtime root directory: one subdirectory per container.
type Runtime struct {
	Root string
	Log  *slog.Logger
	// InitPath is the binary that containers' init and exec processes
	// start from; "" means InitName beside the running executable when
	// there is one, else the running executable (berth has the init
	// built in).
	InitPath string
}

// InitName is the file name of the small container init binary that
// scripts/build.sh puts beside berth.
const InitName = "berth-init"

// initProtocol numbers the parent-init protocol (the initConfig and the
// sync messages): a change to either must increase it, so that a
// berth-init from another build is refused with a clear error instead of
// misreading its config. A variable only so that a test can build an init
// of another version (-ldflags -X).
var initProtocol = "3"

// initBinary returns the binary to seal and execute as a container's
// init ("" for the running executable).
func (r *Runtime) initBinary() string {
	if r.InitPath != "" {
		return r.InitPath
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), InitName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return exe
}

// New returns the runtime rooted at root, creating the directory.
func New(root string, log *slog.Logger) (*Runtime, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("runtime root %s: %w", root, err)
	}
	return &Runtime{Root: root, Log: log}, nil
}

// DefaultRoot is /run/berth for root, $XDG_RUNTIME_DIR/berth otherwise.
func DefaultRoot() string {
	if os.Geteuid() != 0 {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			return filepath.Join(d, "berth")
		}
		return filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Geteuid()))
	}
	return "/run/berth"
}
