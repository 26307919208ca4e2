package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/transfer"
)

func loadCmd(o *options) *cobra.Command {
	var input, platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS] [NAME[:TAG]]",
		Short: "Load images from a docker-save or OCI archive, or an OCI layout directory",
		Long: `Load images from a tar archive (read from STDIN by default) as "docker save"
or "berth save" write it: a docker archive (manifest.json) or an OCI image
layout in a tar (index.json), uncompressed or gzip or zstd compressed. With
-i DIR, load the OCI image layout directory DIR. NAME names the image when
the archive holds exactly one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.LoadOptions{}
			if len(args) == 1 {
				opts.Name = args[0]
			}
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return fmt.Errorf("--platform: %w", err)
				}
				opts.Platform = p
			}
			var r io.Reader = cmd.InOrStdin()
			dir := ""
			if input != "" && input != "-" {
				st, err := os.Stat(input)
				if err != nil {
					return err
				}
				if st.IsDir() {
					dir = input
				} else {
					f, err := os.Open(input)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
			} else if f, ok := r.(*os.File); ok && isTerminal(f) {
				return fmt.Errorf("requested load from stdin, but stdin is empty (a terminal); use -i FILE or redirect a tar archive")
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			var loaded []engine.Loaded
			if dir != "" {
				loaded, err = s.LoadLayout(cmd.Context(), dir, opts)
			} else {
				loaded, err = s.Load(cmd.Context(), r, opts)
			}
			if err != nil {
				return err
			}
			if quiet {
				return nil
			}
			w := cmd.OutOrStdout()
			for _, img := range loaded {
				if len(img.Names) == 0 {
					fmt.Fprintf(w, "Loaded image ID: %s\n", img.ID)
				}
				for _, n := range img.Names {
					repo, tag := engine.SplitName(n)
					fmt.Fprintf(w, "Loaded image: %s:%s\n", repo, tag)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "", "read from this tar archive file or OCI layout directory, instead of STDIN")
	f.BoolVarP(&quiet, "quiet", "q", false, "suppress the load output")
	f.StringVar(&platform, "platform", "", "platform to choose from a multi-platform image (os/arch[/variant]); default this machine's")
	return cmd
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func saveCmd(o *options) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE...",
		Short: "Save images to a tar archive (STDOUT by default) or an OCI layout directory",
		Long: `Save images to a tar archive, written to STDOUT by default:
  docker-archive  as "docker save" writes it (default); docker, podman, skopeo
                  and berth load it
  oci-archive     an OCI image layout in a tar, blobs as stored
  oci-dir         an OCI image layout directory (needs -o DIR)
An image given by name is tagged with it in the archive.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case engine.FormatDockerArchive, engine.FormatOCIArchive:
			case engine.FormatOCIDir:
				if output == "" {
					return errors.New("--format oci-dir needs -o DIR")
				}
			default:
				return fmt.Errorf("--format: unknown format %q (docker-archive, oci-archive or oci-dir)", format)
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			if format == engine.FormatOCIDir {
				return s.SaveLayout(ctx, output, args)
			}
			if output == "" {
				w := cmd.OutOrStdout()
				if f, ok := w.(*os.File); ok && isTerminal(f) {
					return errors.New("refusing to write an archive to a terminal; use -o FILE or redirect STDOUT")
				}
				return s.Save(ctx, w, args, format)
			}
			return transfer.WriteFileAtomic(output, 0o644, func(w io.Writer) error { return s.Save(ctx, w, args, format) })
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "write to this file (or, for oci-dir, directory) instead of STDOUT")
	f.StringVar(&format, "format", engine.FormatDockerArchive, "docker-archive, oci-archive or oci-dir")
	return cmd
}
