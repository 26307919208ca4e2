// Package cli is berth's runc-compatible command line: `berth runtime …`,
// and the whole command when berth runs as berth-runc. Flags, output
// formats and exit codes follow runc's, so containerd and podman can use
// berth as their runtime binary.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	goruntime "runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime/container"
	"github.com/berth-project/berth/runtime/seccomp"
)

// ExitError carries an exit code out of a command (a container's own,
// from run or exec) without an error message.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

type globals struct {
	root          string
	log           string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	logger        *slog.Logger
	logFile       io.Closer
}

// Command is the runtime command tree and its global options.
type Command struct {
	Cobra *cobra.Command
	g     *globals
}

// NewCommand returns the runtime command tree named name.
func NewCommand(name string) *Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   name,
		Short: "berth's OCI runtime (runc-compatible)",
		// runc's --version lines: podman shows the first one.
		Version:       fmt.Sprintf("%s\nspec: %s\ngo: %s\nlibseccomp: %s", Version, specs.Version, goruntime.Version(), seccomp.LibraryVersion()),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := g.setup(); err != nil {
				return err
			}
			g.logger.Debug("start", "command", cmd.Name())
			return nil
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&g.root, "root", container.DefaultRoot(), "root directory for container state")
	f.StringVar(&g.log, "log", "", "log file (default: stderr)")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&g.debug, "debug", false, "log debug messages")
	f.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "use systemd to manage cgroups (not supported: berth refuses it)")
	f.StringVar(&g.rootless, "rootless", "auto", "ignored: berth detects rootless mode itself")
	f.Bool("no-new-keyring", false, "")
	f.MarkHidden("no-new-keyring")
	f.String("criu", "", "")
	f.MarkHidden("criu")
	cmd.AddCommand(createCmd(g), startCmd(g), runCmd(g), stateCmd(g), killCmd(g), deleteCmd(g),
		listCmd(g), psCmd(g), execCmd(g), pauseCmd(g), resumeCmd(g), updateCmd(g), eventsCmd(g),
		specCmd(), featuresCmd())
	cmd.SetVersionTemplate("{{.Name}} version {{.Version}}\n")
	return &Command{Cobra: cmd, g: g}
}

// Version is berth's version, set at build time with
// -ldflags "-X github.com/berth-project/berth/runtime/cli.Version=…".
var Version = "0.1.0-dev"

func (g *globals) setup() error {
	if g.systemdCgroup {
		return errors.New("--systemd-cgroup: berth manages cgroups through cgroupfs only; configure your engine for the cgroupfs manager")
	}
	var w io.Writer = os.Stderr
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("--log %s: %w", g.log, err)
		}
		g.logFile = f
		w = f
	}
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	// containerd and podman parse runc's logrus-style lower-case levels.
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			return slog.String("level", strings.ToLower(a.Value.String()))
		}
		return a
	}}
	switch g.logFormat {
	case "text":
		g.logger = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		g.logger = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return fmt.Errorf("--log-format: unknown format %q (text or json)", g.logFormat)
	}
	return nil
}

func (g *globals) runtime() (*container.Runtime, error) {
	return container.New(g.root, g.logger)
}

func (g *globals) load(id string) (*container.Container, error) {
	rt, err := g.runtime()
	if err != nil {
		return nil, err
	}
	return rt.Load(id)
}

// Execute runs the command tree with args and returns the process exit
// code, printing an error (and logging it to --log) when there is one.
func (c *Command) Execute(args []string) int {
	return ExecuteRoot(c.Cobra, args, c)
}

// ExecuteRoot runs root (which contains c's tree, or is it) with args.
func ExecuteRoot(root *cobra.Command, args []string, c *Command) int {
	root.SetArgs(args)
	_, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", root.Name(), err)
	if c != nil && c.g.logger != nil && c.g.log != "" {
		c.g.logger.Error(err.Error())
	}
	return 1
}
