// Command berth is the berth container engine. Run as berth-runc (any
// name ending in "runc"), it is a runc-compatible OCI runtime; as berth,
// the runtime is its subcommand `berth runtime`.
package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	imagecli "github.com/berth-project/berth/cli"
	_ "github.com/berth-project/berth/monitor" // the container monitor and --init, in C
	"github.com/berth-project/berth/runtime/cli"
	"github.com/berth-project/berth/runtime/container"
	_ "github.com/berth-project/berth/runtime/nsexec" // the container init's C stage
)

func main() {
	if container.IsInit() {
		container.Init() // never returns
	}
	if strings.HasSuffix(filepath.Base(os.Args[0]), "runc") {
		os.Exit(cli.NewCommand(filepath.Base(os.Args[0])).Execute(os.Args[1:]))
	}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "berth: find, run, build and share containers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if imagecli.AddCommandFor(root, os.Args[1:]) {
		os.Exit(cli.ExecuteRoot(root, os.Args[1:], nil))
	}
	rt := cli.NewCommand("runtime")
	root.AddCommand(rt.Cobra)
	imagecli.AddCommands(root)
	os.Exit(cli.ExecuteRoot(root, os.Args[1:], rt))
}
