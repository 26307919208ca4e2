package cli

import (
	"fmt"
	"log/slog"
	"path/filepath"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/registry/server"
)

func registryGCCmd() *cobra.Command {
	var root string
	var opts server.GCOptions
	cmd := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Delete the registry's blobs that no manifest references",
		Long: `Delete the blobs of a registry root that no manifest of any repository
references, and upload sessions abandoned for --upload-max-age.

It is safe while the registry serves: blobs committed or linked within the
grace period are kept, so a push in progress keeps its blobs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.DryRun {
				opts.Logger = slog.New(slog.NewTextHandler(cmd.OutOrStdout(), nil))
			}
			res, err := server.GC(cmd.Context(), root, opts)
			if err != nil {
				return err
			}
			verb := "Deleted"
			if opts.DryRun {
				verb = "Would delete"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d blobs (%s) and %d abandoned uploads; kept %d blobs\n",
				verb, len(res.Blobs), units.HumanSize(float64(res.Bytes)), res.Uploads, res.Kept)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", filepath.Join(engine.DefaultRoot, "registry"), "registry storage directory")
	f.BoolVar(&opts.DryRun, "dry-run", false, "list what would be deleted, delete nothing")
	f.DurationVar(&opts.GracePeriod, "grace", server.DefaultGCGracePeriod, "keep blobs committed or linked within this time")
	f.DurationVar(&opts.UploadMaxAge, "upload-max-age", server.DefaultUploadMaxAge, "remove upload sessions unused for this long")
	return cmd
}
