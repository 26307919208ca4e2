package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

// teardownNetworkCmd finishes a --rm container's network teardown after
// the container is gone (the engine starts it detached).
func teardownNetworkCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "teardown-network CONTAINER-ID",
		Short:  "Tear down a removed container's network (run by berth)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return engine.FinishNetworkTeardown(cmd.Context(), o.root, o.runRoot, args[0])
		},
	}
}
