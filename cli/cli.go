package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

// options are the global options of berth's image commands.
type options struct {
	root    string
	runRoot string
}

func (o *options) open() (*engine.Store, error) {
	return engine.OpenWith(o.root, engine.Options{RunRoot: o.runRoot})
}

// AddCommands adds berth's image commands to root, and the persistent
// flag --root (the image store's directory, default engine.DefaultRoot)
// to root. A subcommand with a persistent --root of its own (the runtime)
// keeps it: cobra lets the nearest definition win.
func AddCommands(root *cobra.Command) {
	o := &options{}
	root.PersistentFlags().StringVar(&o.root, "root", engine.DefaultRoot, "root directory of the image store")
	root.PersistentFlags().StringVar(&o.runRoot, "runroot", engine.DefaultRunRoot, "directory for running containers' state (a tmpfs: cleared at boot)")
	image := &cobra.Command{
		Use:   "image",
		Short: "Manage images",
		Args:  cobra.NoArgs,
	}
	image.AddCommand(inspectCmd(o), imagesCmd(o, "ls"), importCmd(o), tagCmd(o), rmiCmd(o, "rm"), loadCmd(o), saveCmd(o), pullCmd(o), pushCmd(o), copyCmd(o))
	addSystemCommands(root, image, o)
	root.AddCommand(image, importCmd(o), imagesCmd(o, "images"), tagCmd(o), rmiCmd(o, "rmi"), loadCmd(o), saveCmd(o), pullCmd(o), pushCmd(o),
		loginCmd(), logoutCmd())
	addContainerCommands(root, o)
	addRegistryCommands(root, o)
}
