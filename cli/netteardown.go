package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

// teardownNetworkCmd finishes a --rm container's network teardown after
// the container is gone (the engine starts it detached).
func teardownNetworkCmd(o *options) *cobra.Command {
	var serve bool
	cmd := &cobra.Command{
		Use:    "teardown-network [--serve] CONTAINER-ID",
		Short:  "Tear down a removed container's network (run by berth)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return engine.FinishNetworkTeardown(cmd.Context(), o.root, o.runRoot, args[0], serve)
		},
	}
	cmd.Flags().BoolVar(&serve, "serve", false, "then take the teardowns other runs hand off, until none come for a second")
	return cmd
}
