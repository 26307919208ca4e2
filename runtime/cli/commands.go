package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/container"
	"github.com/berth-project/berth/runtime/spec"
)

func stdio() [3]*os.File { return [3]*os.File{os.Stdin, os.Stdout, os.Stderr} }

func createFlags(cmd *cobra.Command, o *container.CreateOpts) {
	f := cmd.Flags()
	f.StringVarP(&o.Bundle, "bundle", "b", "", "path to the bundle (default: current directory)")
	f.StringVar(&o.PidFile, "pid-file", "", "write the container's init pid to this file")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master (process.terminal)")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "do not use pivot_root (for a rootfs on ramfs)")
	f.BoolVar(&o.NoNewKeyring, "no-new-keyring", false, "do not create a new session keyring")
	f.IntVar(&o.PreserveFds, "preserve-fds", 0, "pass N more file descriptors (3..3+N-1) to the container")
}

func fixBundle(o *container.CreateOpts) error {
	b, err := container.BundleAbs(o.Bundle)
	o.Bundle = b
	if o.PreserveFds < 0 {
		return fmt.Errorf("--preserve-fds: %d is negative", o.PreserveFds)
	}
	return err
}

func createCmd(g *globals) *cobra.Command {
	var o container.CreateOpts
	cmd := &cobra.Command{
		Use:   "create [flags] CONTAINER_ID",
		Short: "create a container; its process waits for start",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fixBundle(&o); err != nil {
				return err
			}
			rt, err := g.runtime()
			if err != nil {
				return err
			}
			o.ID, o.Stdio = args[0], stdio()
			_, _, err = rt.Create(o)
			return err
		},
	}
	createFlags(cmd, &o)
	return cmd
}

func runCmd(g *globals) *cobra.Command {
	var o container.CreateOpts
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [flags] CONTAINER_ID",
		Short: "create and start a container, wait for it and delete it",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fixBundle(&o); err != nil {
				return err
			}
			rt, err := g.runtime()
			if err != nil {
				return err
			}
			o.ID, o.Stdio = args[0], stdio()
			code, err := rt.Run(o, detach)
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	createFlags(cmd, &o)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait for the container")
	cmd.Flags().Bool("keep", false, "ignored")
	return cmd
}

func startCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start CONTAINER_ID",
		Short: "start a created container",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			return c.Start()
		},
	}
}

func stateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "state CONTAINER_ID",
		Short: "print the container's state as JSON",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			return printJSON(c.OCIState(), true)
		},
	}
}

func killCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] CONTAINER_ID [SIGNAL]",
		Short: "send a signal (default SIGTERM) to the container's init",
		Args:  rangeArgs(1, 2, "CONTAINER_ID [SIGNAL]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = ParseSignal(args[1]); err != nil {
					return err
				}
			}
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			return c.Kill(sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process in the container")
	return cmd
}

// ParseSignal accepts "KILL", "SIGKILL", "kill" and "9", and real-time
// signals as "RTMIN+3".
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && 34+n <= 64 {
			return unix.Signal(34 + n), nil
		}
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

func deleteCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [flags] CONTAINER_ID",
		Short: "delete a container and everything it holds",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if errors.Is(err, container.ErrNotExist) {
				// A create that died before saving state leaves a bare
				// directory behind: remove it.
				if container.ValidateID(args[0]) == nil {
					os.RemoveAll(filepath.Join(g.root, args[0]))
				}
				if force {
					return nil
				}
			}
			if err != nil {
				return err
			}
			return c.Delete(force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it is running")
	return cmd
}

func listCmd(g *globals) *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list containers",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := g.runtime()
			if err != nil {
				return err
			}
			cs, err := rt.List()
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range cs {
					fmt.Println(c.ID())
				}
				return nil
			}
			states := []any{}
			for _, c := range cs {
				states = append(states, c.OCIState())
			}
			switch format {
			case "json":
				return printJSON(states, false)
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, c := range cs {
					st := c.Status()
					pid := c.State.Pid
					if st == container.Stopped {
						pid = 0
					}
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", c.ID(), pid, st, c.State.Bundle,
						c.State.Created.Format(time.RFC3339Nano), c.Owner())
				}
				return w.Flush()
			}
			return fmt.Errorf("--format: unknown format %q (table or json)", format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only ids")
	return cmd
}

func psCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] CONTAINER_ID [ps options]",
		Short: "list the container's processes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			pids, err := c.Pids()
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return printJSON(pids, false)
			case "table":
			default:
				return fmt.Errorf("--format: unknown format %q (table or json)", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			return filterPs(string(out), pids)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// filterPs prints ps's header and the lines of the container's pids.
func filterPs(out string, pids []int) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > col {
			if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
				fmt.Println(l)
			}
		}
	}
	return nil
}

func pauseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "pause CONTAINER_ID", Short: "freeze every process of the container",
		Args: exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			return c.Pause()
		},
	}
}

func resumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "resume CONTAINER_ID", Short: "thaw a paused container",
		Args: exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			return c.Resume()
		},
	}
}

func specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "write a default config.json in the bundle",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: remove it first", path)
			}
			data, err := json.MarshalIndent(spec.Default(rootless), "", "\t")
			if err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
			if err != nil {
				return err
			}
			if _, err := f.Write(append(data, '\n')); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "a config for a container run by a non-root user")
	return cmd
}

func printJSON(v any, indent bool) error {
	enc := json.NewEncoder(os.Stdout)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return fmt.Errorf("%s takes no arguments", cmd.Name())
			}
			return fmt.Errorf("%s needs %s (got %d arguments)", cmd.Name(), usage, len(args))
		}
		return nil
	}
}

func rangeArgs(min, max int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return fmt.Errorf("%s needs %s (got %d arguments)", cmd.Name(), usage, len(args))
		}
		return nil
	}
}

var _ = specs.Version
