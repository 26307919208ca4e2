package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	eventtypes "github.com/moby/moby/api/types/events"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/events"
	"github.com/berth-project/berth/logs"
	"github.com/berth-project/berth/metadata"
	rcli "github.com/berth-project/berth/runtime/cli"
)

// addObsCommands adds the commands that observe containers, top, stats
// and events, to ctr (`berth container`) and root.
func addObsCommands(ctr, root *cobra.Command, o *options) {
	ctr.AddCommand(topCmd(o), statsCmd(o), eventsCmd(o))
	root.AddCommand(topCmd(o), statsCmd(o), eventsCmd(o))
}

// daemonError prints err as docker's CLI prints the errors of its daemon
// and exits 1, as docker does.
func daemonError(cmd *cobra.Command, ref string, err error) error {
	msg := err.Error()
	var nsc *metadata.NoSuchContainerError
	if errors.As(err, &nsc) {
		msg = "No such container: " + nsc.Ref
	} else {
		msg = strings.TrimSuffix(msg, ": "+engine.ErrConflict.Error())
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Error response from daemon: %s\n", msg)
	return &rcli.ExitError{Code: 1}
}

func topCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			defer s.Close()
			_, pids, err := s.ContainerPids(cmd.Context(), args[0])
			if err != nil {
				return daemonError(cmd, args[0], err)
			}
			psArgs := strings.Fields(strings.Join(args[1:], " "))
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			titles, procs, err := top(cmd.Context(), psArgs, pids)
			if err != nil {
				return daemonError(cmd, args[0], err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 20, 1, 3, ' ', 0)
			fmt.Fprintln(w, strings.Join(titles, "\t"))
			for _, p := range procs {
				fmt.Fprintln(w, strings.Join(p, "\t"))
			}
			return w.Flush()
		},
	}
	// What follows CONTAINER are ps's options, not berth's.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// top runs the host's ps with args and keeps the rows of pids, as
// docker's top does; without ps it reads /proc itself, in the columns of
// ps -ef.
func top(ctx context.Context, args []string, pids []int) ([]string, [][]string, error) {
	out, err := exec.CommandContext(ctx, "ps", args...).Output()
	if errors.Is(err, exec.ErrNotFound) {
		return procTop(pids)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, nil, fmt.Errorf("ps: %s: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, nil, fmt.Errorf("ps: %w", err)
	}
	return filterPS(string(out), pids)
}

// filterPS parses ps output: the header's PID column says which rows
// belong to the container; the last column keeps its spaces.
func filterPS(out string, pids []int) ([]string, [][]string, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return nil, nil, fmt.Errorf("couldn't find PID field in ps output")
	}
	var procs [][]string
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= col {
			continue
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil {
			return nil, nil, fmt.Errorf("unexpected pid '%s': %w", f[col], err)
		}
		if !slices.Contains(pids, pid) {
			continue
		}
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		procs = append(procs, f)
	}
	return titles, procs, nil
}

// procTop reads the processes pids from /proc in ps -ef's columns.
func procTop(pids []int) ([]string, [][]string, error) {
	titles := []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}
	boot := bootTime()
	const hz = 100
	var procs [][]string
	for _, pid := range slices.Sorted(slices.Values(pids)) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited
		}
		// comm may hold spaces and parentheses: the fields follow the
		// last ")".
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) < 20 {
			continue
		}
		num := func(k int) uint64 { n, _ := strconv.ParseUint(f[k], 10, 64); return n }
		// f[0] is field 3 (state): field n is f[n-3].
		ppid, ttyNr, utime, stime, start := f[1], num(4), num(11), num(12), num(19)
		cpu := (utime + stime) / hz
		started := boot.Add(time.Duration(start) * time.Second / hz)
		c := 0
		if el := time.Since(started).Seconds(); el > 0 {
			c = int(float64(cpu) / el * 100)
		}
		stimeCol := started.Format("Jan02")
		if y, m, d := started.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
			stimeCol = started.Format("15:04")
		}
		tty := "?"
		if maj, min := (ttyNr>>8)&0xfff, (ttyNr&0xff)|((ttyNr>>12)&0xfff00); maj == 136 {
			tty = fmt.Sprintf("pts/%d", min)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		if cmd == "" {
			cmd = "[" + comm + "]"
		}
		uid := "?"
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "Uid:"); ok {
					if fs := strings.Fields(v); len(fs) > 0 {
						uid = fs[0]
						if u, err := user.LookupId(uid); err == nil {
							uid = u.Username
						}
					}
				}
			}
		}
		procs = append(procs, []string{uid, strconv.Itoa(pid), ppid, strconv.Itoa(c), stimeCol, tty,
			fmt.Sprintf("%02d:%02d:%02d", cpu/3600, cpu/60%60, cpu%60), cmd})
	}
	return titles, procs, nil
}

// bootTime is when the host booted, from /proc/stat's btime.
func bootTime() time.Time {
	data, err := os.ReadFile("/proc/stat")
	if err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "btime "); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					return time.Unix(n, 0)
				}
			}
		}
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Now().Add(-time.Duration(ts.Nano()))
}

// statsRow is one row of docker's stats, the fields its --format sees.
type statsRow struct {
	Container string
	ID        string
	Name      string
	CPUPerc   string
	MemUsage  string
	MemPerc   string
	NetIO     string
	BlockIO   string
	PIDs      string
}

const statsTable = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

var statsHeaders = statsRow{Container: "CONTAINER", ID: "CONTAINER ID", Name: "NAME", CPUPerc: "CPU %",
	MemUsage: "MEM USAGE / LIMIT", MemPerc: "MEM %", NetIO: "NET I/O", BlockIO: "BLOCK I/O", PIDs: "PIDS"}

func statsCmd(o *options) *cobra.Command {
	var noStream, all, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "" || format == "table" {
				format = statsTable
			}
			jsonOut := format == "json"
			var t *template.Template
			if !jsonOut {
				var err error
				if t, err = parseFormat(format); err != nil {
					return exitWith(cmd, 125, err)
				}
			}
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			defer s.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()

			// list returns the containers to show and the refs they were
			// asked by.
			list := func() ([]*containers.Container, []string, error) {
				if len(args) > 0 {
					var cs []*containers.Container
					for _, ref := range args {
						c, err := s.Container(ctx, ref)
						if err != nil {
							return nil, nil, daemonError(cmd, ref, err)
						}
						cs = append(cs, c)
					}
					return cs, args, nil
				}
				cs, err := s.Containers(ctx)
				if err != nil {
					return nil, nil, exitWith(cmd, 125, err)
				}
				var out []*containers.Container
				var refs []string
				for _, c := range cs {
					if all || c.State.Status == containers.Running || c.State.Status == containers.Paused {
						out = append(out, c)
						refs = append(refs, c.ID[:12])
					}
				}
				return out, refs, nil
			}
			sample := func(cs []*containers.Container) map[string]engine.StatsSample {
				m := make(map[string]engine.StatsSample, len(cs))
				for _, c := range cs {
					x, err := s.ContainerStats(ctx, c)
					if err != nil {
						// Exited between the listing and the read.
						x = engine.StatsSample{ID: c.ID, Name: c.Name, Read: time.Now()}
					}
					m[c.ID] = x
				}
				return m
			}
			render := func(w io.Writer, cs []*containers.Container, refs []string, prev, cur map[string]engine.StatsSample) error {
				rows := make([]statsRow, len(cs))
				for i, c := range cs {
					rows[i] = statsRowOf(refs[i], prev[c.ID], cur[c.ID], noTrunc)
				}
				if jsonOut {
					for _, r := range rows {
						b, _ := json.Marshal(r)
						fmt.Fprintln(w, string(b))
					}
					return nil
				}
				return writeTemplate(w, t, strings.HasPrefix(format, "table"), statsHeaders, rows, func(r statsRow) any { return r })
			}

			cs, refs, err := list()
			if err != nil {
				return err
			}
			prev := sample(cs)
			if noStream {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
				return render(cmd.OutOrStdout(), cs, refs, prev, sample(cs))
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
				if len(args) == 0 {
					if cs, refs, err = list(); err != nil {
						return err
					}
				}
				cur := sample(cs)
				var buf strings.Builder
				buf.WriteString("\033[2J\033[H") // clear the screen, as docker does
				if err := render(&buf, cs, refs, prev, cur); err != nil {
					return err
				}
				if _, err := io.WriteString(cmd.OutOrStdout(), buf.String()); err != nil {
					return nil
				}
				prev = cur
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noStream, "no-stream", false, "disable streaming stats and only pull the first result")
	f.BoolVarP(&all, "all", "a", false, "show all containers (default shows just running)")
	f.BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	f.StringVar(&format, "format", "", "format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')")
	return cmd
}

// statsRowOf formats a container's samples as docker's stats columns.
func statsRowOf(ref string, prev, cur engine.StatsSample, noTrunc bool) statsRow {
	id := cur.ID
	if !noTrunc && len(id) > 12 {
		id = id[:12]
	}
	if ref == "" {
		ref = id
	}
	cpu := 0.0
	if prev.Running && cur.Running {
		cpu = engine.CPUPercent(prev, cur)
	}
	dec := func(n uint64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
	return statsRow{
		Container: ref,
		ID:        id,
		Name:      strings.TrimPrefix(cur.Name, "/"),
		CPUPerc:   fmt.Sprintf("%.2f%%", cpu),
		MemUsage:  units.BytesSize(float64(cur.MemUsage)) + " / " + units.BytesSize(float64(cur.MemLimit)),
		MemPerc:   fmt.Sprintf("%.2f%%", cur.MemPercent()),
		NetIO:     dec(cur.NetRx) + " / " + dec(cur.NetTx),
		BlockIO:   dec(cur.BlockRead) + " / " + dec(cur.BlockWrite),
		PIDs:      strconv.FormatUint(cur.Pids, 10),
	}
}

func eventsCmd(o *options) *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			var opts events.ReadOptions
			var err error
			if since != "" {
				if opts.Since, err = logs.ParseTime(since, now); err != nil {
					return exitWith(cmd, 125, fmt.Errorf("--since: %w", err))
				}
			}
			if until != "" {
				if opts.Until, err = logs.ParseTime(until, now); err != nil {
					return exitWith(cmd, 125, fmt.Errorf("--until: %w", err))
				}
			}
			// Without --until, follow; with one in the future, follow
			// until then, as docker does.
			opts.Follow = opts.Until.IsZero() || opts.Until.After(now)
			if opts.Filter, err = events.ParseFilter(filters); err != nil {
				return exitWith(cmd, 125, err)
			}
			var t *template.Template
			if format != "" && format != "json" {
				if t, err = parseFormat(format); err != nil {
					return exitWith(cmd, 125, err)
				}
			}
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			defer s.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			w := bufio.NewWriter(cmd.OutOrStdout())
			err = s.Events().Read(ctx, opts, func(m eventtypes.Message) error {
				switch {
				case format == "json":
					b, err := json.Marshal(m)
					if err != nil {
						return err
					}
					w.Write(append(b, '\n'))
				case t != nil:
					if err := t.Execute(w, m); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					w.WriteByte('\n')
				default:
					w.WriteString(eventLine(m))
				}
				return w.Flush()
			})
			if err != nil {
				return exitWith(cmd, 125, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "show all events created since timestamp")
	f.StringVar(&until, "until", "", "stream events until this timestamp")
	f.StringArrayVarP(&filters, "filter", "f", nil, "filter output based on conditions provided")
	f.StringVar(&format, "format", "", "format output using a custom template ('json', 'TEMPLATE')")
	return cmd
}

// eventLine is docker's default line for an event: time, type, action,
// actor and its attributes sorted by key.
func eventLine(m eventtypes.Message) string {
	var b strings.Builder
	b.WriteString(time.Unix(0, m.TimeNano).UTC().Format("2006-01-02T15:04:05.000000000Z07:00"))
	fmt.Fprintf(&b, " %s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i == 0 {
				b.WriteString(" (")
			} else {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%s", k, m.Actor.Attributes[k])
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	return b.String()
}
