package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// addPolicyCommands adds to ctr (`berth container`) the commands that
// stand in for the work docker's daemon does for restart policies and
// health checks: berth has none, so short-lived berth processes do it.
func addPolicyCommands(ctr *cobra.Command, o *options) {
	ctr.AddCommand(healthcheckCmd(o), restoreCmd(o))
}

// healthcheckCmd runs a container's health check once and records the
// result; the container's monitor runs it on the check's interval.
func healthcheckCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "healthcheck CONTAINER",
		Short:  "Run a container's health check once and record the result (run by its monitor)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			h, err := s.Healthcheck(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h.Status)
			return nil
		},
	}
}

// restoreCmd is `berth container restore`: what docker's daemon does for
// restart policies when it starts. A unit run once at boot runs it, for
// example a systemd service with
//
//	[Service]
//	Type=oneshot
//	ExecStart=/usr/bin/berth container restore
//	[Install]
//	WantedBy=default.target
//
// as podman-restart.service runs `podman start --all --filter
// restart-policy=always`.
func restoreCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "restore",
		Short: "Start the containers whose restart policy (always, unless-stopped) wants them running; run at boot",
		Long: "Start the containers docker's daemon would start when it starts: those with restart policy always,\n" +
			"those with unless-stopped that were not stopped by the user, and those waiting to be restarted.\n" +
			"berth has no daemon: run this once at boot (a systemd oneshot unit, for example).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			started, err := s.Restore(cmd.Context())
			for _, c := range started {
				fmt.Fprintln(cmd.OutOrStdout(), c.Name)
			}
			return err
		},
	}
}
