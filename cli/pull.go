package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

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
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			name, err := pullImage(cmd.Context(), s, &ro, args[0], opts, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), name)
			return nil
		},
	}
	ro.addFlags(cmd, true)
	cmd.Flags().StringVar(&platform, "platform", "", "platform to pull from a multi-platform image (os/arch[/variant])")
	return cmd
}

// pullImage pulls name into s, progress to progressOut, trying the
// unqualified-search registries in order for a name without a registry.
// It returns the full name pulled.
func pullImage(ctx context.Context, s *engine.Store, ro *remoteOptions, name string, opts engine.PullOptions, progressOut io.Writer) (string, error) {
	cfg, err := ro.hostsConfig()
	if err != nil {
		return "", err
	}
	names := []string{name}
	if !reference.HasDomain(name) && len(cfg.UnqualifiedSearch) > 0 {
		names = cfg.Qualify(name)
	}
	refs := make([]reference.Reference, len(names))
	for i, n := range names {
		if refs[i], err = reference.Parse(n); err != nil {
			return "", err
		}
	}
	out := ro.renderer(progressOut)
	defer out.Close()
	opts.Progress = out
	client := ro.client(cfg, out)
	var errs []error
	for _, ref := range refs {
		repo, err := client.Repository(ref, false)
		if err != nil {
			return "", err
		}
		_, err = s.Pull(ctx, repo, ref, opts)
		if err == nil {
			out.Close()
			return ref.String(), nil
		}
		errs = append(errs, err)
		// Only a name the registry does not know goes on to the next
		// search registry.
		if !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrUnauthorized) {
			break
		}
	}
	return "", errors.Join(errs...)
}
