package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

// options are the global options of berth's image commands.
type options struct {
	root    string
	runRoot string
}

// newOptions defines the persistent flags every command shares on root.
func newOptions(root *cobra.Command) *options {
	o := &options{}
	root.PersistentFlags().StringVar(&o.root, "root", engine.DefaultRoot, "root directory of the image store")
	root.PersistentFlags().StringVar(&o.runRoot, "runroot", engine.DefaultRunRoot, "directory for running containers' state (a tmpfs: cleared at boot)")
	return o
}

// hotCommands are the top-level commands AddCommandFor builds alone: the
// ones run over and over, by scripts and at every container start.
var hotCommands = map[string]func(*options) *cobra.Command{
	"run":    func(o *options) *cobra.Command { return runCmd(o, false) },
	"create": func(o *options) *cobra.Command { return runCmd(o, true) },
	"start":  startCmd,
	"exec":   execCmd,
	"rm":     func(o *options) *cobra.Command { return rmCmd(o, "rm") },
	"ps":     func(o *options) *cobra.Command { return psCmd(o, "ps") },
	"stop":   func(o *options) *cobra.Command { return stopCmd(o, "stop") },
	"kill":   killCmd,
	"wait":   waitCmd,
}

// hotContainerCommands are the `container` subcommands AddCommandFor
// builds alone: those berth itself starts for every container.
var hotContainerCommands = map[string]func(*options) *cobra.Command{
	"cleanup":          cleanupCmd,
	"teardown-network": teardownNetworkCmd,
}

// AddCommandFor adds to root only the command that args (the command
// line after the program name) runs, when it is one of hotCommands, and
// reports whether it did; otherwise the caller builds the whole tree
// with AddCommands. Building all of berth's commands and their flags
// costs every process about 2 ms, a `berth run` more than its image
// lookup. Only root's own flags (--root, --runroot) may come before the
// command's name.
func AddCommandFor(root *cobra.Command, args []string) bool {
	for len(args) > 0 {
		switch a := args[0]; {
		case a == "--root" || a == "--runroot":
			if len(args) < 2 {
				return false
			}
			args = args[2:]
		case strings.HasPrefix(a, "--root=") || strings.HasPrefix(a, "--runroot="):
			args = args[1:]
		case a == "container" && len(args) > 1 && hotContainerCommands[args[1]] != nil:
			// What berth runs in the background after containers:
			// the monitor's cleanup, the detached network teardown.
			ctr := &cobra.Command{Use: "container", Short: "Manage containers", Args: cobra.NoArgs}
			ctr.AddCommand(hotContainerCommands[args[1]](newOptions(root)))
			root.AddCommand(ctr)
			return true
		default:
			mk, ok := hotCommands[a]
			if !ok {
				return false
			}
			root.AddCommand(mk(newOptions(root)))
			return true
		}
	}
	return false
}

func (o *options) open() (*engine.Store, error) {
	return engine.OpenWith(o.root, o.storeOptions())
}

// storeOptions are the options open opens the store with.
func (o *options) storeOptions() engine.Options {
	return engine.Options{RunRoot: o.runRoot}
}

// AddCommands adds berth's image commands to root, and the persistent
// flag --root (the image store's directory, default engine.DefaultRoot)
// to root. A subcommand with a persistent --root of its own (the runtime)
// keeps it: cobra lets the nearest definition win.
func AddCommands(root *cobra.Command) {
	o := newOptions(root)
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
