package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
)

func pullCmd(o *options) *cobra.Command {
	var ro remoteOptions
	var platform string
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Pull an image from a registry",
		Long: `Pull an image from a registry into the store: the manifest (for this
machine's platform, or --platform's, when the name is an index), the config
and the layers, fetched in parallel and unpacked as they arrive. A name
without a registry is looked up in the registries configuration's
unqualified-search-registries, in order, or on docker.io.
Progress goes to stderr; the full name of the image to stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.PullOptions{}
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return fmt.Errorf("--platform: %w", err)
				}
				opts.Platform = p
			}
			cfg, err := ro.hostsConfig()
			if err != nil {
				return err
			}
			names := []string{args[0]}
			if !reference.HasDomain(args[0]) && len(cfg.UnqualifiedSearch) > 0 {
				names = cfg.Qualify(args[0])
			}
			refs := make([]reference.Reference, len(names))
			for i, n := range names {
				if refs[i], err = reference.Parse(n); err != nil {
					return err
				}
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			out := ro.renderer(cmd.ErrOrStderr())
			defer out.Close()
			opts.Progress = out
			client := ro.client(cfg, out)
			var errs []error
			for _, ref := range refs {
				repo, err := client.Repository(ref, false)
				if err != nil {
					return err
				}
				_, err = s.Pull(cmd.Context(), repo, ref, opts)
				if err == nil {
					out.Close()
					fmt.Fprintln(cmd.OutOrStdout(), ref.String())
					return nil
				}
				errs = append(errs, err)
				// Only a name the registry does not know goes on to the
				// next search registry.
				if !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrUnauthorized) {
					break
				}
			}
			return errors.Join(errs...)
		},
	}
	ro.addFlags(cmd, true)
	cmd.Flags().StringVar(&platform, "platform", "", "platform to pull from a multi-platform image (os/arch[/variant])")
	return cmd
}
