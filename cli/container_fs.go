package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/transfer"
)

// addFSCommands registers the commands on containers' file systems (cp,
// diff, export, commit) under ctr (`berth container`) and at the top
// level, as docker has them.
func addFSCommands(ctr, root *cobra.Command, o *options) {
	ctr.AddCommand(cpCmd(o), diffCmd(o), exportCmd(o), commitCmd(o))
	root.AddCommand(cpCmd(o), diffCmd(o), exportCmd(o), commitCmd(o))
}

// splitCpArg splits "CONTAINER:PATH"; a local path has no container. As
// in docker, a path with a colon can be given as ./a:b, and an absolute
// path is always local.
func splitCpArg(arg string) (ctr, p string) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ctr, p
}

func cpCmd(o *options) *cobra.Command {
	var opts engine.CopyOptions
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: `Copy files/folders between a container and the local filesystem

Use '-' as the source to read a tar archive from stdin and extract it to a
directory destination in a container. Use '-' as the destination to stream
a tar archive of a container source to stdout.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, src := splitCpArg(args[0])
			dstCtr, dst := splitCpArg(args[1])
			switch {
			case srcCtr != "" && dstCtr != "":
				return exitWith(cmd, 1, errors.New("copying between containers is not supported"))
			case srcCtr == "" && dstCtr == "":
				return exitWith(cmd, 1, errors.New("must specify at least one container source"))
			case src == "" || dst == "":
				return exitWith(cmd, 1, errors.New("filepath can not be empty"))
			}
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			defer s.Close()
			ctx := cmd.Context()
			if srcCtr != "" {
				err = s.CopyOut(ctx, srcCtr, src, dst, cmd.OutOrStdout(), opts)
			} else {
				err = s.CopyIn(ctx, dstCtr, src, cmd.InOrStdin(), dst, opts)
			}
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return exitWith(cmd, 1, err) })
	f := cmd.Flags()
	f.BoolVarP(&opts.Archive, "archive", "a", false, "archive mode (copy all uid/gid information)")
	f.BoolVarP(&opts.FollowLink, "follow-link", "L", false, "always follow symbol link in SRC_PATH")
	// berth prints no progress: -q is accepted for docker's scripts.
	f.BoolVarP(&quiet, "quiet", "q", false, "suppress progress output during copy")
	return cmd
}

func diffCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			defer s.Close()
			changes, err := s.Diff(cmd.Context(), args[0])
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			w := cmd.OutOrStdout()
			for _, c := range changes {
				fmt.Fprintln(w, c)
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return exitWith(cmd, 1, err) })
	return cmd
}

func exportCmd(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if output == "" {
				if f, ok := w.(*os.File); ok && isTerminal(f) {
					return exitWith(cmd, 1, errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect"))
				}
			}
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			defer s.Close()
			ctx := cmd.Context()
			if output == "" {
				err = s.Export(ctx, args[0], w)
			} else {
				err = transfer.WriteFileAtomic(output, 0o644, func(w io.Writer) error { return s.Export(ctx, args[0], w) })
			}
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return exitWith(cmd, 1, err) })
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to a file, instead of STDOUT")
	return cmd
}

func commitCmd(o *options) *cobra.Command {
	var opts engine.CommitOptions
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			s, err := o.open()
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			defer s.Close()
			id, err := s.Commit(cmd.Context(), args[0], opts)
			if err != nil {
				return exitWith(cmd, 1, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return exitWith(cmd, 1, err) })
	f := cmd.Flags()
	f.StringVarP(&opts.Author, "author", "a", "", `author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	f.StringVarP(&opts.Comment, "message", "m", "", "commit message")
	f.StringArrayVarP(&opts.Changes, "change", "c", nil, "apply Dockerfile instruction to the created image")
	f.BoolVarP(&opts.Pause, "pause", "p", true, "pause container during commit")
	return cmd
}
