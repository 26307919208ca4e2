// Package container is berth's OCI runtime: it turns a bundle into a
// running container and manages it through the OCI lifecycle (create,
// start, state, kill, delete) plus exec, pause, resume, update, ps and
// events. Each container's state lives in ROOT/ID; nothing runs between
// commands but the container itself.
//
// A container's init is berth itself, re-executed from a sealed copy
// (runtime/exeseal). The C constructor in runtime/nsexec enters and creates
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
