package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

func importCmd(o *options) *cobra.Command {
	var changes []string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] FILE|- [REPOSITORY[:TAG]]",
		Short: "Import a root filesystem tarball as an image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			desc, err := s.Import(cmd.Context(), r, ref, changes)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)")
	return cmd
}

// imageJSON is one line of "images --format json", with docker's keys.
type imageJSON struct {
	Repository   string
	Tag          string
	ID           string
	Digest       string
	CreatedAt    string
	CreatedSince string
	Size         string
}

func imagesCmd(o *options, use string) *cobra.Command {
	var quiet, digests bool
	var format string
	cmd := &cobra.Command{
		Use:   use,
		Short: "List images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *template.Template
			if format != "" && format != "json" && format != "table" {
				var err error
				if tmpl, err = parseFormat(format); err != nil {
					return err
				}
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			imgs, err := s.Images(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				seen := map[string]bool{}
				for _, img := range imgs {
					if id := shortID(img); !seen[id] {
						seen[id] = true
						fmt.Fprintln(out, id)
					}
				}
			case format == "json":
				enc := json.NewEncoder(out)
				for _, img := range imgs {
					if err := enc.Encode(imageRow(img)); err != nil {
						return err
					}
				}
			case tmpl != nil:
				return writeTemplate(out, tmpl, strings.HasPrefix(format, "table "), imageHeaders, imgs, func(img engine.Image) any { return imageRow(img) })
			default:
				tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
				if digests {
					fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
				} else {
					fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
				}
				for _, img := range imgs {
					if digests {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", img.Repository, img.Tag, img.Target.Digest, shortID(img), since(img.Created), humanSize(img.Size))
					} else {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", img.Repository, img.Tag, shortID(img), since(img.Created), humanSize(img.Size))
					}
				}
				return tw.Flush()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	f.BoolVar(&digests, "digests", false, "show digests")
	f.StringVar(&format, "format", "", "output format: table (default), json (one object per line), or a Go template (\"table \" first for aligned columns with headers)")
	return cmd
}

// imageRow is img as "images --format" shows it.
func imageRow(img engine.Image) imageJSON {
	return imageJSON{
		Repository: img.Repository, Tag: img.Tag, ID: shortID(img),
		Digest: img.Target.Digest.String(), CreatedAt: img.Created.Format("2006-01-02 15:04:05 -0700 MST"),
		CreatedSince: since(img.Created), Size: humanSize(img.Size),
	}
}

// imageHeaders are the column titles of "images --format 'table …'", as
// docker names them.
var imageHeaders = imageJSON{
	Repository: "REPOSITORY", Tag: "TAG", ID: "IMAGE ID", Digest: "DIGEST",
	CreatedAt: "CREATED AT", CreatedSince: "CREATED", Size: "SIZE",
}

func shortID(img engine.Image) string {
	return img.ID.Encoded()[:12]
}

// inspectJSON is an image as "image inspect" prints it, in docker's shape
// for the fields users script against.
type inspectJSON struct {
	ID           string `json:"Id"`
	RepoTags     []string
	RepoDigests  []string
	Created      string
	Architecture string
	Variant      string `json:",omitempty"`
	Os           string
	Size         int64
	Config       any
	RootFS       rootFSJSON
}

type rootFSJSON struct {
	Type   string
	Layers []string
}

func inspectCmd(o *options) *cobra.Command {
	var remote remoteInspect
	cmd := &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show an image's details as JSON",
		Long: `Show the details of images of the store as JSON, or with --remote those of
images in a registry, read from their manifest and config without pulling
(--raw: the manifest or index as the registry sent it; --config: the raw
config).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if remote.on || remote.raw || remote.config {
				return remote.run(cmd, args)
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			out := []inspectJSON{}
			var errs []error
			for _, name := range args {
				j, err := inspectImage(cmd.Context(), s, name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out, j)
			}
			data, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", data)
			return errors.Join(errs...)
		},
	}
	remote.addFlags(cmd)
	return cmd
}

func tagCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE TARGET_IMAGE",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Tag(cmd.Context(), args[0], args[1])
		},
	}
}

func rmiCmd(o *options, use string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   use + " IMAGE...",
		Short: "Remove image names; images left without a name are deleted",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			var errs []error
			for _, name := range args {
				res, err := s.Remove(cmd.Context(), name, force)
				for _, n := range res.Untagged {
					repo, tag := engine.SplitName(n)
					fmt.Fprintf(out, "Untagged: %s:%s\n", repo, tag)
				}
				for _, d := range res.Deleted {
					fmt.Fprintf(out, "Deleted: %s\n", d)
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove every name of an image given by ID")
	return cmd
}

// inspectImage returns the image name of s in inspect's shape.
func inspectImage(ctx context.Context, s *engine.Store, name string) (inspectJSON, error) {
	img, err := s.Get(ctx, name)
	if err != nil {
		return inspectJSON{}, err
	}
	names, err := s.Names(ctx, img.ID)
	if err != nil {
		return inspectJSON{}, err
	}
	j := inspectJSON{
		ID: img.ID.String(), RepoTags: []string{}, RepoDigests: []string{},
		Architecture: img.Config.Architecture, Variant: img.Config.Variant, Os: img.Config.OS,
		Size: img.Size, Config: img.Config.Config,
		RootFS: rootFSJSON{Type: img.Config.RootFS.Type, Layers: []string{}},
	}
	if !img.Created.IsZero() {
		j.Created = img.Created.Format(time.RFC3339Nano)
	}
	for _, n := range names {
		repo, tag := engine.SplitName(n)
		j.RepoTags = append(j.RepoTags, repo+":"+tag)
		j.RepoDigests = append(j.RepoDigests, repo+"@"+img.Target.Digest.String())
	}
	for _, d := range img.Config.RootFS.DiffIDs {
		j.RootFS.Layers = append(j.RootFS.Layers, d.String())
	}
	return j, nil
}
