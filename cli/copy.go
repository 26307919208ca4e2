package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/transfer"
)

func copyCmd(o *options) *cobra.Command {
	var ro remoteOptions
	var platform string
	cmd := &cobra.Command{
		Use:   "copy [OPTIONS] SOURCE DESTINATION",
		Short: "Copy an image between registries, layouts, archives and the store",
		Long: `Copy an image, as skopeo copy does, between these transports:
  docker://NAME[:TAG|@DIGEST]   a registry
  oci:DIR[:REF]                 an OCI image layout directory (REF: its ref name)
  oci-archive:FILE[:REF]        an OCI image layout in a tar file
  docker-archive:FILE[:NAME]    a docker save archive (NAME: its tag)
  berth:NAME                    berth's image store (--root)
Every blob is verified as it is copied; the manifest is copied unchanged, so
its digest stays the same (except to and from docker archives, which hold
no manifest and only uncompressed layers). A file or directory destination
appears only once the copy is complete. From an index, the manifest of
--platform (default this machine's) is copied. Progress goes to stderr, the
digest of the manifest written to stdout.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := transfer.ParseRef(args[0])
			if err != nil {
				return err
			}
			dst, err := transfer.ParseRef(args[1])
			if err != nil {
				return err
			}
			opts := transfer.Options{}
			if platform != "" {
				if opts.Platform, err = image.ParsePlatform(platform); err != nil {
					return fmt.Errorf("--platform: %w", err)
				}
			}
			out := ro.renderer(cmd.ErrOrStderr())
			defer out.Close()
			opts.Progress = out
			if src.Transport == transfer.Docker || dst.Transport == transfer.Docker {
				cfg, err := ro.hostsConfig()
				if err != nil {
					return err
				}
				client := ro.client(cfg, out)
				opts.Repository = func(ref reference.Reference, push bool) (*registry.Repository, error) {
					return client.Repository(ref, push)
				}
			}
			if src.Transport == transfer.Berth || dst.Transport == transfer.Berth {
				s, err := o.open()
				if err != nil {
					return err
				}
				defer s.Close()
				opts.Store = s
			}
			desc, err := transfer.Copy(cmd.Context(), src, dst, opts)
			if err != nil {
				return err
			}
			out.Close()
			fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
			return nil
		},
	}
	ro.addFlags(cmd, true)
	cmd.Flags().StringVar(&platform, "platform", "", "platform to copy from a multi-platform image (os/arch[/variant])")
	return cmd
}
