package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
	rcli "github.com/berth-project/berth/runtime/cli"
	"github.com/berth-project/berth/volume"
)

// volumeCmd is docker's `volume` command group: create, ls, inspect, rm
// and prune on the store's local volumes.
func volumeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: cobra.NoArgs}
	cmd.AddCommand(volumeCreateCmd(o), volumeLsCmd(o), volumeInspectCmd(o), volumeRmCmd(o), volumePruneCmd(o))
	return cmd
}

// openVolumes opens the engine store and its volume store.
func openVolumes(o *options) (*engine.Store, *volume.Store, error) {
	s, err := o.open()
	if err != nil {
		return nil, nil, err
	}
	vs, err := s.Volumes()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, vs, nil
}

// parseKVList parses repeated KEY=VALUE flags (a bare KEY has the value
// ""), naming the flag in errors.
func parseKVList(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --%s %q: no key", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func volumeCreateCmd(o *options) *cobra.Command {
	var labels, opts []string
	var driver string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != volume.Driver {
				return fmt.Errorf("create volume: driver %q is not supported: berth has only %q", driver, volume.Driver)
			}
			l, err := parseKVList("label", labels)
			if err != nil {
				return err
			}
			op, err := parseKVList("opt", opts)
			if err != nil {
				return err
			}
			// berth's local driver keeps volumes as directories: the
			// mount options of docker's local driver (type, device, o)
			// would be silently ignored, so they are refused.
			for k := range op {
				return fmt.Errorf("create volume: option %q is not supported by berth's local driver", k)
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			s, vs, err := openVolumes(o)
			if err != nil {
				return err
			}
			defer s.Close()
			// A volume made without a name is a named volume with a
			// random name (docker's), not an anonymous one: prune
			// without -a keeps it.
			if name == "" {
				b := make([]byte, 32)
				_, _ = rand.Read(b)
				name = hex.EncodeToString(b)
			}
			v, created, err := vs.Create(name, volume.CreateOptions{Labels: l, Options: op})
			if err != nil {
				return err
			}
			s.VolumeEvents(cmd.Context(), "create", map[bool][]string{true: {v.Name}}[created])
			fmt.Fprintln(cmd.OutOrStdout(), v.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", volume.Driver, "volume driver name")
	f.StringArrayVarP(&labels, "label", "l", nil, "set metadata for a volume")
	f.StringArrayVarP(&opts, "opt", "o", nil, "set driver specific options")
	return cmd
}

// volumeJSON is docker's shape of an inspected volume.
type volumeJSON struct {
	CreatedAt  string
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
}

func toVolumeJSON(v volume.Volume) volumeJSON {
	labels := v.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	opts := v.Options
	if opts == nil {
		opts = map[string]string{}
	}
	return volumeJSON{
		CreatedAt:  v.CreatedAt.Local().Format(time.RFC3339),
		Driver:     v.Driver,
		Labels:     labels,
		Mountpoint: v.Mountpoint,
		Name:       v.Name,
		Options:    opts,
		Scope:      "local",
	}
}

func volumeInspectCmd(o *options) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
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
			s, vs, err := openVolumes(o)
			if err != nil {
				return err
			}
			defer s.Close()
			out := []volumeJSON{}
			var errs []error
			for _, name := range args {
				v, err := vs.Get(name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out, toVolumeJSON(v))
			}
			if err := writeInspect(cmd.OutOrStdout(), tmpl, out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format output using a Go template, or json")
	return cmd
}

// volumeRow is one volume as ls's --format templates see it.
type volumeRow struct {
	v      volume.Volume
	size   func() string
	links  func() string
	Name   string
	Driver string
	Scope  string
	// Mountpoint is the volume's directory on the host.
	Mountpoint string
	// CreatedAt is the creation time in docker's format.
	CreatedAt string
}

// Labels is the labels as docker prints them: k=v,k=v.
func (r volumeRow) Labels() string {
	var kv []string
	for k, v := range r.v.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// Label returns the value of the label key.
func (r volumeRow) Label(key string) string { return r.v.Labels[key] }

// Size is the volume's disk use.
func (r volumeRow) Size() string { return r.size() }

// Links is the number of containers using the volume.
func (r volumeRow) Links() string { return r.links() }

// volumeFilter is ls's parsed --filter options: the values of one key
// are alternatives, different keys must all match.
type volumeFilter struct {
	dangling *bool
	names    []string
	labels   []string
	drivers  []string
}

func parseVolumeFilters(fs []string) (volumeFilter, error) {
	var f volumeFilter
	for _, s := range fs {
		k, v, found := strings.Cut(s, "=")
		if !found {
			return f, fmt.Errorf("bad format of filter (expected name=value): %s", s)
		}
		switch k {
		case "dangling":
			var b bool
			switch strings.ToLower(v) {
			case "true", "1":
				b = true
			case "false", "0":
			default:
				return f, fmt.Errorf("invalid filter 'dangling=%s'", v)
			}
			if f.dangling != nil && *f.dangling != b {
				return f, errors.New("conflicting filters: dangling=true and dangling=false")
			}
			f.dangling = &b
		case "name":
			f.names = append(f.names, v)
		case "label":
			f.labels = append(f.labels, v)
		case "driver":
			f.drivers = append(f.drivers, v)
		default:
			return f, fmt.Errorf("invalid filter '%s'", k)
		}
	}
	return f, nil
}

// match reports whether v passes the filter; used says whether a
// container mounts it.
func (f volumeFilter) match(v volume.Volume, used func() bool) bool {
	if f.dangling != nil && used() == *f.dangling {
		return false
	}
	if len(f.names) > 0 && !anyOf(f.names, func(n string) bool { return strings.Contains(v.Name, n) }) {
		return false
	}
	if len(f.drivers) > 0 && !anyOf(f.drivers, func(d string) bool { return d == v.Driver }) {
		return false
	}
	for _, l := range f.labels {
		k, want, hasValue := strings.Cut(l, "=")
		got, ok := v.Labels[k]
		if !ok || hasValue && got != want {
			return false
		}
	}
	return true
}

func anyOf(list []string, pred func(string) bool) bool {
	for _, s := range list {
		if pred(s) {
			return true
		}
	}
	return false
}

func volumeLsCmd(o *options) *cobra.Command {
	var quiet bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := parseVolumeFilters(filters)
			if err != nil {
				return err
			}
			var tmpl *templateT
			table := false
			switch {
			case quiet:
			case format == "" || format == "table":
				tmpl, _ = parseFormat("table {{.Driver}}\t{{.Name}}")
				table = true
			case format == "json":
				tmpl, _ = parseFormat("{{json .}}")
			default:
				if tmpl, err = parseFormat(format); err != nil {
					return err
				}
				table = strings.HasPrefix(format, "table ")
			}
			s, vs, err := openVolumes(o)
			if err != nil {
				return err
			}
			defer s.Close()
			list, err := vs.List()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var rows []volumeRow
			for _, v := range list {
				users := func() []string {
					ids, _ := s.VolumeUsers(ctx, v.Name)
					return ids
				}
				if !filter.match(v, func() bool { return s.VolumeInUse(v.Name) }) {
					continue
				}
				rows = append(rows, newVolumeRow(vs, v, users))
			}
			w := cmd.OutOrStdout()
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(w, r.Name)
				}
				return nil
			}
			if format == "json" {
				for _, r := range rows {
					b, err := json.Marshal(r.summary())
					if err != nil {
						return err
					}
					fmt.Fprintln(w, string(b))
				}
				return nil
			}
			headers := map[string]string{"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
				"Mountpoint": "MOUNTPOINT", "CreatedAt": "CREATED", "Labels": "LABELS", "Size": "SIZE", "Links": "LINKS"}
			return writeTemplate(w, tmpl, table, headers, rows, func(r volumeRow) any { return r })
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "only display volume names")
	f.StringVar(&format, "format", "", "format output using a Go template, or json")
	f.StringArrayVarP(&filters, "filter", "f", nil, "filter output based on conditions (dangling, name, label, driver)")
	return cmd
}

func newVolumeRow(vs *volume.Store, v volume.Volume, users func() []string) volumeRow {
	return volumeRow{
		v:          v,
		Name:       v.Name,
		Driver:     v.Driver,
		Scope:      "local",
		Mountpoint: v.Mountpoint,
		CreatedAt:  v.CreatedAt.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		size: func() string {
			n, err := vs.Size(v.Name)
			if err != nil {
				return "N/A"
			}
			return humanSize(n)
		},
		links: func() string { return fmt.Sprint(len(users())) },
	}
}

// summary is the row as `ls --format json` prints it, docker's keys.
func (r volumeRow) summary() map[string]string {
	return map[string]string{"Name": r.Name, "Driver": r.Driver, "Scope": r.Scope, "Mountpoint": r.Mountpoint,
		"Labels": r.Labels(), "CreatedAt": r.CreatedAt, "Size": "N/A", "Links": "N/A", "Availability": "N/A", "Group": "N/A", "Status": "N/A"}
}

// volumeInUseError is docker's refusal to remove a volume containers use.
func volumeInUseError(name string, ids []string) error {
	return fmt.Errorf("remove %s: %w - [%s]", name, volume.ErrInUse, strings.Join(ids, ", "))
}

func volumeRmCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, vs, err := openVolumes(o)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			failed := false
			for _, name := range args {
				if err := removeVolume(ctx, s, vs, name); err != nil {
					// -f forgives only a missing volume, as docker's.
					if force && errors.Is(err, volume.ErrNotFound) {
						continue
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "berth: %v\n", err)
					failed = true
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			if failed {
				return &rcli.ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not fail on volumes that do not exist")
	return cmd
}

// removeVolume removes the volume name unless a container uses it.
func removeVolume(ctx context.Context, s *engine.Store, vs *volume.Store, name string) error {
	var users []string
	err := vs.Remove(name, func(n string) bool {
		ids, err := s.VolumeUsers(ctx, n)
		if err != nil {
			users = []string{"unknown: " + err.Error()}
			return true
		}
		users = ids
		return len(ids) > 0
	})
	if errors.Is(err, volume.ErrInUse) {
		return volumeInUseError(name, users)
	}
	s.VolumeEvents(ctx, "destroy", map[bool][]string{true: {name}}[err == nil])
	return err
}

// Docker's confirmations of "volume prune".
const (
	volumePruneWarning    = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
	volumePruneAllWarning = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
)

func volumePruneCmd(o *options) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused anonymous volumes (with -a, all unused volumes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if !force {
				warning := volumePruneWarning
				if all {
					warning = volumePruneAllWarning
				}
				ok, err := confirm(cmd.InOrStdin(), out, warning)
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(out, "Total reclaimed space: 0B")
					return nil
				}
			}
			s, vs, err := openVolumes(o)
			if err != nil {
				return err
			}
			defer s.Close()
			removed, bytes, err := vs.Prune(s.VolumeInUse, all)
			s.VolumeEvents(cmd.Context(), "destroy", removed)
			printPruned(out, removed)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "Total reclaimed space:", dockerSize(bytes))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

func printPruned(w io.Writer, names []string) {
	if len(names) == 0 {
		return
	}
	fmt.Fprintln(w, "Deleted Volumes:")
	for _, n := range names {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintln(w)
}
