package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

// addSystemCommands adds "system" (check, df) to root and "prune" to the
// image command.
func addSystemCommands(root, image *cobra.Command, o *options) {
	system := &cobra.Command{
		Use:   "system",
		Short: "Manage the image store",
		Args:  cobra.NoArgs,
	}
	system.AddCommand(checkCmd(o), dfCmd(o), eventsCmd(o))
	root.AddCommand(system)
	image.AddCommand(pruneCmd(o))
}

func checkCmd(o *options) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "check [--repair]",
		Short: "Check the image store's blobs, images, snapshots and leases",
		Long: `Check verifies every blob against its digest, reads every image, checks
that the snapshots images need exist, and finds what dead processes left
(leases, unfinished writes, unpacks). It prints one problem per line.
Damage (a corrupt blob, an image that cannot be read, a dangling
reference, a missing layer) makes it exit non-zero; garbage (what a
killed or crashed berth left, what nothing references) is listed but
breaks nothing. With --repair it deletes corrupt blobs and the images that
can no longer be read, collects garbage, and exits non-zero only if
damage remains.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := s.Check(cmd.Context(), repair)
			out := cmd.OutOrStdout()
			for _, p := range rep.Problems {
				fmt.Fprintln(out, p)
			}
			if err != nil {
				return err
			}
			if repair && rep.Reclaimed > 0 {
				fmt.Fprintln(out, "Total reclaimed space:", dockerSize(rep.Reclaimed))
			}
			if g := rep.Garbage(); len(g) > 0 && !repair {
				fmt.Fprintf(out, "%d objects are garbage: berth system check --repair removes them\n", len(g))
			}
			switch n := len(rep.Remaining()); {
			case n > 0 && repair:
				return fmt.Errorf("%d problems remain after the repair", n)
			case n > 0:
				return fmt.Errorf("%d problems found", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "delete corrupt blobs and unreadable images, and collect garbage")
	return cmd
}

// dfJSON is one line of "system df --format json", with docker's keys.
type dfJSON struct {
	Type        string
	TotalCount  string
	Active      string
	Size        string
	Reclaimable string
}

// dfImageJSON is an image of "system df -v --format json".
type dfImageJSON struct {
	Repository   string
	Tag          string
	ID           string
	Digest       string
	CreatedAt    string
	CreatedSince string
	Size         string
	SharedSize   string
	UniqueSize   string
	Containers   string
}

// dfVerboseJSON is "system df -v --format json": docker's sections (the
// ones berth has no objects for are empty) and the store's totals.
type dfVerboseJSON struct {
	Images        []dfImageJSON
	Containers    []struct{}
	Volumes       []struct{}
	BuildCache    []struct{}
	ContentSize   string
	SnapshotsSize string
}

func dfCmd(o *options) *cobra.Command {
	var verbose bool
	var format string
	cmd := &cobra.Command{
		Use:   "df [-v] [--format json]",
		Short: "Show the image store's disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "json" && format != "table" {
				return fmt.Errorf("--format: unsupported format %q (json or table)", format)
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			du, err := s.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case format == "json" && verbose:
				v := dfVerboseJSON{Images: []dfImageJSON{}, Containers: []struct{}{}, Volumes: []struct{}{}, BuildCache: []struct{}{},
					ContentSize: dockerSize(du.ContentSize), SnapshotsSize: dockerSize(du.SnapshotsSize)}
				v.Images = append(v.Images, dfImageRows(du)...)
				return json.NewEncoder(out).Encode(v)
			case format == "json":
				enc := json.NewEncoder(out)
				for _, r := range dfSummary(du) {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			case verbose:
				return printDFVerbose(out, du)
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")
			for _, r := range dfSummary(du) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Type, r.TotalCount, r.Active, r.Size, r.Reclaimable)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the space each image uses")
	cmd.Flags().StringVar(&format, "format", "", "output format: table (default) or json")
	return cmd
}

// dfSummary returns docker's rows: images, and the containers, volumes
// and build cache berth does not have (yet).
func dfSummary(du engine.DiskUsage) []dfJSON {
	reclaimable := dockerSize(du.ImagesReclaimable)
	if du.ImagesSize > 0 {
		reclaimable += fmt.Sprintf(" (%d%%)", du.ImagesReclaimable*100/du.ImagesSize)
	}
	rows := []dfJSON{{"Images", fmt.Sprint(len(du.Images)), fmt.Sprint(du.ImagesActive), dockerSize(du.ImagesSize), reclaimable}}
	for _, t := range []string{"Containers", "Local Volumes", "Build Cache"} {
		rows = append(rows, dfJSON{t, "0", "0", "0B", "0B"})
	}
	return rows
}

// dfImageRows returns one row per image name (one for a dangling image).
func dfImageRows(du engine.DiskUsage) []dfImageJSON {
	var rows []dfImageJSON
	for _, img := range du.Images {
		row := dfImageJSON{
			Repository: "<none>", Tag: "<none>", ID: img.ID.Encoded()[:12], Digest: img.Digest.String(),
			CreatedSince: since(img.Created), Size: dockerSize(img.Size), SharedSize: dockerSize(img.SharedSize),
			UniqueSize: dockerSize(img.UniqueSize()), Containers: fmt.Sprint(img.Containers),
		}
		if !img.Created.IsZero() {
			row.CreatedAt = img.Created.Format("2006-01-02 15:04:05 -0700 MST")
		}
		if len(img.Names) == 0 {
			rows = append(rows, row)
		}
		for _, n := range img.Names {
			row.Repository, row.Tag = engine.SplitName(n)
			rows = append(rows, row)
		}
	}
	return rows
}

func printDFVerbose(out io.Writer, du engine.DiskUsage) error {
	fmt.Fprint(out, "Images space usage:\n\n")
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS")
	for _, r := range dfImageRows(du) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size, r.SharedSize, r.UniqueSize, r.Containers)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprint(out, "\nContainers space usage:\n\n")
	fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES")
	tw.Flush()
	fmt.Fprint(out, "\nLocal Volumes space usage:\n\n")
	fmt.Fprintln(tw, "VOLUME NAME\tLINKS\tSIZE")
	tw.Flush()
	fmt.Fprint(out, "\nImage store usage:\n\n")
	fmt.Fprintln(tw, "CONTENT STORE\tSNAPSHOTS")
	fmt.Fprintf(tw, "%s\t%s\n", dockerSize(du.ContentSize), dockerSize(du.SnapshotsSize))
	return tw.Flush()
}

// Docker's confirmations of "image prune".
const (
	pruneDanglingWarning = "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
	pruneAllWarning      = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] "
)

func pruneCmd(o *options) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [-a] [-f]",
		Short: "Remove dangling images (with -a, every image no container uses)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if !force {
				warning := pruneDanglingWarning
				if all {
					warning = pruneAllWarning
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
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := s.Prune(cmd.Context(), all)
			if len(rep.Untagged)+len(rep.Deleted) > 0 {
				fmt.Fprintln(out, "Deleted Images:")
				for _, n := range rep.Untagged {
					repo, tag := engine.SplitName(n)
					fmt.Fprintf(out, "untagged: %s:%s\n", repo, tag)
				}
				for _, d := range rep.Deleted {
					fmt.Fprintf(out, "deleted: %s\n", d)
				}
				fmt.Fprintln(out)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "Total reclaimed space:", dockerSize(rep.SpaceReclaimed))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

// confirm writes the prompt and reads a line from in: true for "y" or
// "yes" (any case), as docker accepts.
func confirm(in io.Reader, out io.Writer, prompt string) (bool, error) {
	fmt.Fprint(out, prompt)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read answer: %w", err)
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}

// dockerSize formats a size the way docker's prune and df do: decimal
// units, four significant digits ("1.234MB").
func dockerSize(size int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(size)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
