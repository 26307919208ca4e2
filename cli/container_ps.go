package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/logs"
	"github.com/berth-project/berth/metadata"
	rcli "github.com/berth-project/berth/runtime/cli"
)

// psRow is what ps's --format templates see, with docker's field names.
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Mounts, Networks string
	c                                                                                                      *containers.Container
}

// Label returns the value of the container's label key.
func (r psRow) Label(key string) string { return r.c.Config.Labels[key] }

var psHeaders = psRow{ID: "CONTAINER ID", Image: "IMAGE", Command: "COMMAND", CreatedAt: "CREATED AT", RunningFor: "CREATED",
	Ports: "PORTS", State: "STATE", Status: "STATUS", Size: "SIZE", Names: "NAMES", Labels: "LABELS", Mounts: "MOUNTS", Networks: "NETWORKS"}

const psDefaultFormat = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

// statusText is docker's STATUS column: "Up 2 minutes", "Exited (0) 3
// seconds ago", "Created".
func statusText(c *containers.Container) string {
	st := c.State
	switch st.Status {
	case containers.Running, containers.Paused:
		s := "Up " + humanDuration(time.Since(st.StartedAt))
		if st.Status == containers.Paused {
			s += " (Paused)"
		} else if st.Health != nil {
			h := st.Health.Status
			if h == "starting" {
				h = "health: starting"
			}
			s += " (" + h + ")"
		}
		return s
	case containers.Exited:
		return fmt.Sprintf("Exited (%d) %s", st.ExitCode, since(st.FinishedAt))
	case containers.Created:
		return "Created"
	case containers.Removing:
		return "Removal In Progress"
	case containers.Dead:
		return "Dead"
	case containers.Restarting:
		return fmt.Sprintf("Restarting (%d) %s", st.ExitCode, since(st.FinishedAt))
	}
	return string(st.Status)
}

func psCmd(o *options, use string) *cobra.Command {
	var all, quiet, noTrunc, latest, size bool
	var last int
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS]",
		Short:   "List containers",
		Aliases: []string{"list"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			match, err := parsePsFilters(filters)
			if err != nil {
				return err
			}
			if format == "" || format == "table" {
				format = psDefaultFormat
			}
			var tmpl = (*templateT)(nil)
			if format != "json" {
				t, err := parseFormat(format)
				if err != nil {
					return err
				}
				tmpl = t
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
			var rows []psRow
			for i := len(list) - 1; i >= 0; i-- { // newest first
				c := list[i]
				if !all && !latest && last <= 0 && c.State.Status != containers.Running && c.State.Status != containers.Paused && c.State.Status != containers.Restarting && len(filters) == 0 {
					continue
				}
				if !match(c) {
					continue
				}
				rows = append(rows, newPsRow(s, c, noTrunc, size))
			}
			if latest {
				last = 1
			}
			if last > 0 && len(rows) > last {
				rows = rows[:last]
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, r := range rows {
					fmt.Fprintln(out, r.ID)
				}
				return nil
			case format == "json":
				enc := json.NewEncoder(out)
				for _, r := range rows {
					if err := enc.Encode(r.summary()); err != nil {
						return err
					}
				}
				return nil
			}
			return writeTemplate(out, tmpl, strings.HasPrefix(format, "table "), psHeaders, rows, func(r psRow) any { return r })
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "show all containers (default shows just running)")
	f.BoolVarP(&quiet, "quiet", "q", false, "only display container IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	f.BoolVarP(&latest, "latest", "l", false, "show the latest created container (includes all states)")
	f.IntVarP(&last, "last", "n", -1, "show n last created containers (includes all states)")
	f.BoolVarP(&size, "size", "s", false, "display total file sizes")
	f.StringVar(&format, "format", "", "format output: table, json, table TEMPLATE or a Go template")
	f.StringArrayVarP(&filters, "filter", "f", nil, "filter output based on conditions (id, name, label, status, exited, ancestor, before, since)")
	return cmd
}

func newPsRow(s *engine.Store, c *containers.Container, noTrunc, size bool) psRow {
	id := c.ID
	cmdline := strings.Join(append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...), " ")
	if !noTrunc {
		id = id[:12]
		cmdline = strconv.Quote(truncate(cmdline, 20))
	} else {
		cmdline = strconv.Quote(cmdline)
	}
	var labels []string
	for k, v := range c.Config.Labels {
		labels = append(labels, k+"="+v)
	}
	var mounts []string
	for _, m := range c.Mounts {
		if m.Name != "" {
			mounts = append(mounts, m.Name)
		} else {
			mounts = append(mounts, m.Source)
		}
	}
	r := psRow{ID: id, Image: c.Image, Command: cmdline, CreatedAt: c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: since(c.Created), State: string(c.State.Status), Status: statusText(c), Names: c.Name,
		Labels: strings.Join(labels, ","), Mounts: strings.Join(mounts, ","), Networks: psNetworks(c), c: c, Ports: psPorts(c)}
	if size {
		if rw, err := s.ContainerSize(c); err == nil {
			r.Size = humanSize(rw)
		}
	}
	return r
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// summary is the row in docker's `ps --format json` shape.
func (r psRow) summary() map[string]string {
	return map[string]string{"ID": r.ID, "Image": r.Image, "Command": r.Command, "CreatedAt": r.CreatedAt,
		"RunningFor": r.RunningFor, "Ports": r.Ports, "State": r.State, "Status": r.Status, "Size": r.Size,
		"Names": r.Names, "Labels": r.Labels, "Mounts": r.Mounts, "Networks": r.Networks}
}

// parsePsFilters parses ps's --filter KEY=VALUE options; filters of one
// key are ORed, different keys ANDed, as in docker.
func parsePsFilters(fs []string) (func(*containers.Container) bool, error) {
	by := map[string][]string{}
	for _, f := range fs {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", f)
		}
		switch k {
		case "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "health":
		default:
			return nil, fmt.Errorf("invalid filter '%s'", k)
		}
		if k == "status" {
			switch v {
			case "created", "restarting", "running", "removing", "paused", "exited", "dead":
			default:
				return nil, fmt.Errorf("invalid filter 'status=%s': must be one of created, restarting, running, removing, paused, exited or dead", v)
			}
		}
		if k == "exited" {
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("invalid filter 'exited=%s': not a number", v)
			}
		}
		by[k] = append(by[k], v)
	}
	one := func(k, v string, c *containers.Container) bool {
		switch k {
		case "id":
			return strings.HasPrefix(c.ID, v)
		case "name":
			return strings.Contains(c.Name, strings.TrimPrefix(v, "/"))
		case "label":
			lk, lv, hasV := strings.Cut(v, "=")
			got, ok := c.Config.Labels[lk]
			return ok && (!hasV || got == lv)
		case "status":
			return string(c.State.Status) == v
		case "exited":
			n, _ := strconv.Atoi(v)
			return c.State.Status == containers.Exited && c.State.ExitCode == n
		case "ancestor":
			if c.Image == v || strings.HasPrefix(c.ImageID.Encoded(), strings.TrimPrefix(v, "sha256:")) {
				return true
			}
			a, errA := engine.NormalizeName(c.Image)
			b, errB := engine.NormalizeName(v)
			return errA == nil && errB == nil && a == b
		case "volume":
			for _, m := range c.Mounts {
				if m.Name == v || m.Destination == v {
					return true
				}
			}
		case "health":
			h := "none"
			if c.State.Health != nil {
				h = c.State.Health.Status
			}
			return h == v
		}
		return false
	}
	return func(c *containers.Container) bool {
		for k, vs := range by {
			if k == "before" || k == "since" {
				continue // resolved by the caller's order; see below
			}
			ok := false
			for _, v := range vs {
				if one(k, v, c) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}, nil
}

func logsCmd(o *options) *cobra.Command {
	var follow, timestamps, details bool
	var since, until, tail string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			opts := logs.ReadOptions{Follow: follow, Tail: -1}
			var err error
			if since != "" {
				if opts.Since, err = logs.ParseTime(since, now); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			if until != "" {
				if opts.Until, err = logs.ParseTime(until, now); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			if tail != "" && tail != "all" {
				if opts.Tail, err = strconv.Atoi(tail); err != nil || opts.Tail < 0 {
					return fmt.Errorf("--tail: invalid number %q", tail)
				}
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			c, err := s.Container(ctx, args[0])
			if err != nil {
				return err
			}
			path := s.LogPath(c)
			if path == "" {
				return fmt.Errorf("configured logging driver does not support reading")
			}
			if follow {
				id := c.ID
				last := time.Time{}
				opts.Stop = func() bool {
					// Checked between polls: stop once the container is
					// no longer running (or was removed).
					if time.Since(last) < 200*time.Millisecond {
						return false
					}
					last = time.Now()
					cur, err := s.Container(context.WithoutCancel(ctx), id)
					return err != nil || (cur.State.Status != containers.Running && cur.State.Status != containers.Paused)
				}
			}
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			err = logs.Read(ctx, path, opts, func(e logs.Entry) error {
				w := stdout
				if e.Stream == "stderr" {
					w = stderr
				}
				return logs.Write(w, e, timestamps)
			})
			if errors.Is(err, os.ErrNotExist) {
				return nil // the container never wrote anything
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "follow log output")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps")
	f.BoolVar(&details, "details", false, "show extra details provided to logs")
	f.StringVar(&since, "since", "", "show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
	f.StringVar(&until, "until", "", "show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
	f.StringVarP(&tail, "tail", "n", "all", "number of lines to show from the end of the logs")
	return cmd
}

func execCmd(o *options) *cobra.Command {
	var opts engine.ExecOptions
	var interactive bool
	var envs, envFiles []string
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := parseEnv(envs, envFiles, os.LookupEnv)
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			opts.Env, opts.Cmd = env, args[1:]
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			defer s.Close()
			if opts.Detach {
				devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
				if err != nil {
					return err
				}
				defer devnull.Close()
				opts.Stdio = [3]*os.File{devnull, devnull, devnull}
			} else {
				opts.Stdio = [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
				if !interactive {
					devnull, err := os.Open(os.DevNull)
					if err != nil {
						return err
					}
					defer devnull.Close()
					opts.Stdio[0] = devnull
				}
			}
			code, err := s.Exec(cmd.Context(), args[0], opts)
			if err != nil {
				var se *engine.StartError
				if errors.As(err, &se) {
					return exitWith(cmd, se.Code, err)
				}
				return err
			}
			if code != 0 {
				return &rcli.ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&opts.Detach, "detach", "d", false, "run the command in the background")
	f.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	f.BoolVarP(&opts.Tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.StringArrayVarP(&envs, "env", "e", nil, "set environment variables")
	f.StringArrayVar(&envFiles, "env-file", nil, "read in a file of environment variables")
	f.StringVarP(&opts.User, "user", "u", "", "username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVarP(&opts.WorkingDir, "workdir", "w", "", "working directory inside the container")
	f.BoolVar(&opts.Privileged, "privileged", false, "give extended privileges to the command")
	f.StringVar(&detachKeys, "detach-keys", "", "key sequence for detaching (accepted for docker compatibility)")
	return cmd
}

// containerInspectCmd is `container inspect`, or with images the
// top-level `inspect`, which also finds images.
func containerInspectCmd(o *options, use string, images bool) *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Display detailed information on one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *templateT
			if format != "" && format != "json" {
				t, err := parseFormat(format)
				if err != nil {
					return err
				}
				tmpl = t
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			var out []any
			var errs []error
			for _, ref := range args {
				c, err := s.Container(cmd.Context(), ref)
				if err == nil {
					v := s.Inspect(c)
					if size {
						if rw, err := s.ContainerSize(c); err == nil {
							v.SizeRw = &rw
						}
					}
					out = append(out, v)
					continue
				}
				if images && errors.Is(err, metadata.ErrNotFound) {
					if v, ierr := inspectImage(cmd.Context(), s, ref); ierr == nil {
						out = append(out, v)
						continue
					}
					err = fmt.Errorf("no such object: %s", ref)
				}
				errs = append(errs, err)
			}
			if err := writeInspect(cmd.OutOrStdout(), tmpl, out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format output using a Go template, or json")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "display total file sizes")
	return cmd
}

// parseEnv reads exec's -e and --env-file as run does.
func parseEnv(env, files []string, getenv func(string) (string, bool)) ([]string, error) {
	f := &runFlags{env: env, envFile: files}
	return f.environment(getenv)
}
