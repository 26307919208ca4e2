package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/monitor"
	rcli "github.com/berth-project/berth/runtime/cli"
)

// exitWith prints err as berth's error line and makes the command exit
// with code, as docker's CLI exits 125 when the engine failed and 126 or
// 127 when the container's command could not be run.
func exitWith(cmd *cobra.Command, code int, err error) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "berth: %v\n", err)
	return &rcli.ExitError{Code: code}
}

// startCode is the exit code of a failed start: the StartError's, else 125.
func startCode(err error) int {
	var se *engine.StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return 125
}

func addContainerCommands(root *cobra.Command, o *options) {
	ctr := &cobra.Command{Use: "container", Short: "Manage containers", Args: cobra.NoArgs}
	ctr.AddCommand(runCmd(o, false), runCmd(o, true), startCmd(o), stopCmd(o, "stop"), stopCmd(o, "restart"), killCmd(o),
		rmCmd(o, "rm"), psCmd(o, "ls"), logsCmd(o), execCmd(o), attachCmd(o), waitCmd(o), containerInspectCmd(o, "inspect", false),
		pauseCmd(o, true), pauseCmd(o, false), renameCmd(o), containerPruneCmd(o), cleanupCmd(o), portCmd(o), teardownNetworkCmd(o))
	root.AddCommand(ctr, runCmd(o, false), runCmd(o, true), startCmd(o), stopCmd(o, "stop"), stopCmd(o, "restart"), killCmd(o),
		rmCmd(o, "rm"), psCmd(o, "ps"), logsCmd(o), execCmd(o), attachCmd(o), waitCmd(o), containerInspectCmd(o, "inspect", true),
		pauseCmd(o, true), pauseCmd(o, false), renameCmd(o), portCmd(o))
	root.AddCommand(volumeCmd(o))
	addObsCommands(ctr, root, o)
	addFSCommands(ctr, root, o)
	addPolicyCommands(ctr, o)
	addNetworkCommands(root, o)
}

// runCmd is `run` (create and start) or, with createOnly, `create`.
func runCmd(o *options, createOnly bool) *cobra.Command {
	var f runFlags
	use, short := "run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image"
	if createOnly {
		use, short = "create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, hc, err := f.parse(args[0], args[1:], os.LookupEnv)
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			if createOnly {
				cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = false, false, false
			}
			engine.WarmUp()
			if !createOnly && !f.detach && !cfg.Tty && f.sigProxy {
				var stop func()
				f.sigs, f.sigsReady, stop = proxiedSignals() // see attachRun
				defer stop()
			}
			ctx := cmd.Context()
			co := engine.CreateOptions{Name: f.name, Config: cfg, HostConfig: hc, Endpoint: f.opts.Endpoint}
			if !createOnly {
				co.Start = &engine.StartOptions{}
				if !f.detach {
					*co.Start = attachStartOptions(hc)
				}
				if f.pull != "always" {
					// The container's monitor and init start up
					// while the store opens and the container is
					// made.
					co.Prelaunch = engine.BeginPrelaunch(ctx, o.root, o.storeOptions(), co)
					defer co.Prelaunch.Abort()
				}
			}
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			defer s.Close()
			if f.sigsReady != nil {
				// From here on the container is made: a signal
				// must find it caught.
				<-f.sigsReady
			}
			// An image to pull first: no init waits that long.
			if err := ensureImage(ctx, s, cfg.Image, f.pull, f.platform, cmd.ErrOrStderr(), co.Prelaunch.Abort); err != nil {
				return exitWith(cmd, 125, err)
			}
			c, err := s.CreateContainer(ctx, co)
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			if f.cidfile != "" {
				if err := writeCIDFile(f.cidfile, c.ID); err != nil {
					s.RemoveContainer(ctx, c.ID, engine.RemoveOptions{Force: true, Volumes: true})
					return exitWith(cmd, 125, err)
				}
			}
			if createOnly {
				fmt.Fprintln(cmd.OutOrStdout(), c.ID)
				return nil
			}
			if f.detach {
				if _, _, err := s.StartContainer(ctx, c.ID, engine.StartOptions{}); err != nil {
					if hc.AutoRemove {
						s.RemoveContainer(context.WithoutCancel(ctx), c.ID, engine.RemoveOptions{Force: true, Volumes: true})
					}
					return exitWith(cmd, startCode(err), err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), c.ID)
				return nil
			}
			code, err := attachRun(cmd, s, c, &f, true)
			if err != nil {
				if hc.AutoRemove {
					s.RemoveContainer(context.WithoutCancel(ctx), c.ID, engine.RemoveOptions{Force: true, Volumes: true})
				}
				return exitWith(cmd, startCode(err), err)
			}
			if code != 0 {
				return &rcli.ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return exitWith(cmd, 125, err) })
	cmd.Flags().SetInterspersed(false)
	// -h is --hostname, as in docker: help is --help only.
	cmd.Flags().Bool("help", false, "help for "+cmd.Name())
	addRunFlags(cmd.Flags(), &f)
	return cmd
}

// proxiedSignals catches the signals a foreground container gets from
// its berth process (docker's --sig-proxy) on a new channel, until stop.
//
// It registers them on a goroutine of its own and returns at once, and
// ready closes once they are caught: the Go runtime enables each signal
// by a round trip to its signal-handling thread, six round trips that
// took 2-3 ms on a machine whose CPUs are busy with the container's
// start, which `run` begins meanwhile (its prelaunch) and waits for ready
// only before it makes the container. A signal sent before then has its
// default effect, as one sent before this process got this far: the
// run's monitor sees it die and kills the init it started.
func proxiedSignals() (sigs chan os.Signal, ready <-chan struct{}, stop func()) {
	sigs = make(chan os.Signal, 8)
	registered := make(chan struct{})
	go func() {
		defer close(registered)
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	}()
	return sigs, registered, func() {
		<-registered
		signal.Stop(sigs)
	}
}

// writeCIDFile writes the container's ID to path, which must not exist.
func writeCIDFile(path, id string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", path)
		}
		return fmt.Errorf("--cidfile: %w", err)
	}
	_, err = f.WriteString(id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ensureImage makes sure the image name is in the store, pulling it as
// policy says: "missing" (default) pulls when absent, "always" pulls
// every time, "never" fails when absent. beforePull runs before a pull.
func ensureImage(ctx context.Context, s *engine.Store, name, policy, platform string, progressOut io.Writer, beforePull func()) error {
	_, err := s.Lookup(ctx, name)
	switch {
	case policy == "always":
	case err == nil:
		return nil
	case !errors.Is(err, engine.ErrNotFound):
		return err
	case policy == "never":
		return fmt.Errorf("%w (--pull never)", err)
	}
	beforePull()
	opts := engine.PullOptions{}
	if platform != "" {
		p, err := image.ParsePlatform(platform)
		if err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
		opts.Platform = p
	}
	if policy != "always" {
		fmt.Fprintf(progressOut, "Unable to find image '%s' locally\n", name)
	}
	ro := &remoteOptions{tlsVerify: true}
	if _, perr := pullImage(ctx, s, ro, name, opts, progressOut); perr != nil {
		if policy == "always" && err == nil {
			return fmt.Errorf("pull %s: %w", name, perr)
		}
		return fmt.Errorf("unable to find image %s locally, and pulling it failed: %w", name, perr)
	}
	return nil
}

// attachRun starts (start) or attaches to the container c, streams its
// stdio until it exits (or the user detaches) and, once it exited,
// cleans it up and returns its exit code.
func attachRun(cmd *cobra.Command, s *engine.Store, c *containers.Container, f *runFlags, start bool) (int, error) {
	ctx := cmd.Context()
	var conn *monitor.Conn
	var err error
	// Without a restart policy this process cleans up after the exit
	// (WaitContainer below): the monitor need not start another berth
	// for it. With one, the monitor's cleanup decides what follows. A
	// start claims it before the container runs (one that exits at once
	// would otherwise beat the claim).
	so := attachStartOptions(c.HostConfig)
	claim := so.ClaimCleanup
	claimed := false
	// Signals are proxied to the container without a tty. They are
	// caught from before the start (for run, from before the
	// container is made: f.sigs), so that one sent meanwhile does not
	// kill this process and leave the container behind, and passed on
	// once it runs.
	var sigs chan os.Signal
	if !c.Config.Tty && (f == nil || f.sigProxy) {
		if f != nil && f.sigs != nil {
			sigs = f.sigs // run stops it
		} else {
			var ready <-chan struct{}
			var stop func()
			sigs, ready, stop = proxiedSignals()
			defer stop()
			<-ready // before the start
		}
	}
	if start {
		c, conn, err = s.StartContainer(ctx, c.ID, so)
		if err != nil {
			return 0, err
		}
		claimed = conn != nil
	} else if conn, err = monitor.Attach(s.RunDir(c.ID)); err != nil {
		return 0, fmt.Errorf("attach to %s: %w", c.Name, err)
	}
	if conn == nil { // already running
		if conn, err = monitor.Attach(s.RunDir(c.ID)); err != nil {
			return 0, fmt.Errorf("attach to %s: %w", c.Name, err)
		}
	}
	defer conn.Close()
	if claim && !claimed {
		conn.ClaimCleanup()
	}
	stdin := int(os.Stdin.Fd())
	tty := c.Config.Tty && term.IsTerminal(stdin)
	if tty {
		old, err := term.MakeRaw(stdin)
		if err == nil {
			defer term.Restore(stdin, old)
		}
		resize := func() {
			if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
				conn.Resize(uint16(h), uint16(w))
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				resize()
			}
		}()
	} else if sigs != nil {
		go func() {
			for sig := range sigs {
				s.KillContainer(context.WithoutCancel(ctx), c.ID, sig.(unix.Signal))
			}
		}()
	}
	detached := make(chan struct{})
	if c.Config.OpenStdin && (f == nil || f.interactive) {
		keys := []byte{16, 17} // ctrl-p ctrl-q
		if f != nil && f.detachKeys != "" {
			if keys, err = parseDetachKeys(f.detachKeys); err != nil {
				return 0, err
			}
		}
		if !c.Config.Tty {
			keys = nil // docker: detach keys only with a tty
		}
		go pumpStdin(os.Stdin, conn, keys, detached)
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := conn.Stream(cmd.OutOrStdout(), cmd.ErrOrStderr())
		done <- result{code, err}
	}()
	var r result
	select {
	case <-detached:
		if tty {
			fmt.Fprint(cmd.ErrOrStderr(), "\r\n")
		}
		return 0, nil
	case r = <-done:
	}
	var code int
	if start && claim {
		// Nothing but this process cleans c up after the exit: the
		// record StartContainer returned is still c's.
		code, err = s.WaitStarted(context.WithoutCancel(ctx), c)
	} else {
		code, err = s.WaitContainer(context.WithoutCancel(ctx), c.ID)
	}
	if errors.Is(err, metadata.ErrNotFound) && r.code >= 0 {
		return r.code, nil // removed by its --rm cleanup already
	}
	if err != nil {
		return 0, err
	}
	return code, nil
}

// attachStartOptions are the options of a start with the container's
// stdio attached: without a restart policy the client cleans up after
// the exit (see attachRun).
func attachStartOptions(hc *container.HostConfig) engine.StartOptions {
	return engine.StartOptions{Attach: true, ClaimCleanup: hc.RestartPolicy.Name == "" || hc.RestartPolicy.Name == "no"}
}

// pumpStdin copies in to the container's stdin until EOF (then closes
// the container's stdin) or until the detach key sequence is typed.
func pumpStdin(in io.Reader, conn *monitor.Conn, keys []byte, detached chan<- struct{}) {
	buf := make([]byte, 32<<10)
	matched := 0
	for {
		n, err := in.Read(buf)
		if n > 0 {
			out := make([]byte, 0, n+len(keys))
			for _, b := range buf[:n] {
				if len(keys) > 0 && b == keys[matched] {
					matched++
					if matched == len(keys) {
						if len(out) > 0 {
							conn.Write(out)
						}
						close(detached)
						return
					}
					continue
				}
				if matched > 0 { // a partial sequence was data after all
					out = append(out, keys[:matched]...)
					matched = 0
				}
				out = append(out, b)
			}
			if len(out) > 0 {
				if _, werr := conn.Write(out); werr != nil {
					return
				}
			}
		}
		if err != nil {
			conn.CloseStdin()
			return
		}
	}
}

// parseDetachKeys parses docker's --detach-keys: comma-separated single
// characters or ctrl-<x> (ctrl-a … ctrl-z, ctrl-@, ctrl-[, ctrl-\,
// ctrl-], ctrl-^, ctrl-_).
func parseDetachKeys(s string) ([]byte, error) {
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case len(k) == 6 && strings.HasPrefix(strings.ToLower(k), "ctrl-"):
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c >= 'A' && c <= 'Z':
				out = append(out, c-'A'+1)
			case c >= '@' && c <= '_':
				out = append(out, c-'@')
			default:
				return nil, fmt.Errorf("--detach-keys: invalid key %q", k)
			}
		default:
			return nil, fmt.Errorf("--detach-keys: invalid key %q", k)
		}
	}
	return out, nil
}

func startCmd(o *options) *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			if attach || interactive {
				if len(args) > 1 {
					return errors.New("you cannot start and attach multiple containers at once")
				}
				c, err := s.Container(ctx, args[0])
				if err != nil {
					return err
				}
				f := &runFlags{interactive: interactive, detachKeys: detachKeys, sigProxy: true}
				code, err := attachRun(cmd, s, c, f, true)
				if err != nil {
					return exitWith(cmd, startCode(err), err)
				}
				if code != 0 {
					return &rcli.ExitError{Code: code}
				}
				return nil
			}
			return forEach(cmd, args, func(ref string) (string, error) {
				_, _, err := s.StartContainer(ctx, ref, engine.StartOptions{})
				return ref, err
			})
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach stdout/stderr and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach the container's stdin")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "key sequence for detaching (default ctrl-p,ctrl-q)")
	return cmd
}

// stopCmd is `stop` or `restart`.
func stopCmd(o *options, use string) *cobra.Command {
	var timeout int
	var signal string
	short := "Stop one or more running containers"
	if use == "restart" {
		short = "Restart one or more containers"
	}
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t *int
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				t = &timeout
			}
			if signal != "" {
				if _, err := engine.ParseSignal(signal); err != nil {
					return err
				}
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return forEach(cmd, args, func(ref string) (string, error) {
				_, err := s.StopContainer(cmd.Context(), ref, t)
				if err == nil && use == "restart" {
					var c *containers.Container
					if c, _, err = s.StartContainer(cmd.Context(), ref, engine.StartOptions{}); err == nil {
						s.ContainerEvent(cmd.Context(), c, "restart")
					}
				}
				return ref, err
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "seconds to wait before killing the container")
	cmd.Flags().IntVar(&timeout, "time", 10, "seconds to wait before killing the container (deprecated: --timeout)")
	cmd.Flags().MarkHidden("time")
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "signal to send (default: the container's stop signal)")
	return cmd
}

func killCmd(o *options) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := engine.ParseSignal(sig)
			if err != nil {
				return err
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return forEach(cmd, args, func(ref string) (string, error) {
				return ref, s.KillContainer(cmd.Context(), ref, n)
			})
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send to the container")
	return cmd
}

func rmCmd(o *options, use string) *cobra.Command {
	var opts engine.RemoveOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   "Remove one or more containers",
		Aliases: []string{"remove"},
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return forEach(cmd, args, func(ref string) (string, error) {
				return ref, s.RemoveContainer(cmd.Context(), ref, opts)
			})
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "force the removal of a running container (SIGKILL)")
	cmd.Flags().BoolVarP(&opts.Volumes, "volumes", "v", false, "remove anonymous volumes associated with the container")
	return cmd
}

func waitCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return forEach(cmd, args, func(ref string) (string, error) {
				code, err := s.WaitContainer(cmd.Context(), ref)
				return strconv.Itoa(code), err
			})
		},
	}
}

func attachCmd(o *options) *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			c, err := s.Container(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.State.Status != containers.Running {
				return fmt.Errorf("you cannot attach to a stopped container, start it first")
			}
			s.ContainerEvent(cmd.Context(), c, "attach")
			code, err := attachRun(cmd, s, c, &runFlags{interactive: !noStdin, detachKeys: detachKeys, sigProxy: sigProxy}, false)
			if err != nil {
				return err
			}
			if code != 0 {
				return &rcli.ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "proxy all received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "key sequence for detaching (default ctrl-p,ctrl-q)")
	return cmd
}

func pauseCmd(o *options, pause bool) *cobra.Command {
	use, short := "unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers"
	if pause {
		use, short = "pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return forEach(cmd, args, func(ref string) (string, error) {
				if pause {
					return ref, s.PauseContainer(cmd.Context(), ref)
				}
				return ref, s.UnpauseContainer(cmd.Context(), ref)
			})
		},
	}
}

func renameCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return s.RenameContainer(cmd.Context(), args[0], args[1])
		},
	}
}

// containerPruneWarning is docker's confirmation of "container prune".
const containerPruneWarning = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "

func containerPruneCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				ok, err := confirm(cmd.InOrStdin(), cmd.OutOrStdout(), containerPruneWarning)
				if err != nil || !ok {
					return err
				}
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			list, err := s.Containers(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Deleted Containers:")
			var errs []error
			for _, c := range list {
				if c.State.Status == containers.Running || c.State.Status == containers.Paused {
					continue
				}
				if err := s.RemoveContainer(cmd.Context(), c.ID, engine.RemoveOptions{}); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), c.ID)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

// cleanupCmd is the command a container's monitor runs when the container
// exits.
func cleanupCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "cleanup CONTAINER",
		Short:  "Record a container's exit and release its resources (run by its monitor)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			err = s.Cleanup(cmd.Context(), args[0])
			if errors.Is(err, metadata.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

func portCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			c, err := s.Container(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			lines := publishedPorts(c)
			if len(args) == 2 {
				if lines, err = portLookup(c, args[1]); err != nil {
					return err
				}
			}
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
}

// forEach runs fn for each argument, as docker's multi-container commands
// do: it prints what fn returns for each success, goes on after a failure
// and returns every failure at the end.
func forEach(cmd *cobra.Command, args []string, fn func(ref string) (string, error)) error {
	var errs []error
	for _, ref := range args {
		out, err := fn(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), out)
	}
	return errors.Join(errs...)
}
