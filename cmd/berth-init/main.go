// Command berth-init is the first process of every berth container and
// exec: stage 0 and its children in C (runtime/nsexec), then the Go side
// of runtime/container's init, which prepares the root filesystem and
// executes the user's program.
//
// berth has the same code built in and uses it when no berth-init sits
// beside it; this binary exists to be fast. It links only the runtime's
// init side, none of the engine's dependencies (SQLite, HTTP, CNI,
// compression, the command line), so it starts in about a third of the
// time berth does, and a container start pays that start-up once on its
// critical path. scripts/build.sh builds the two together: the runtime
// refuses an init that speaks another version of the init protocol.
package main

import (
	"fmt"
	"os"

	"github.com/berth-project/berth/runtime/container"
	_ "github.com/berth-project/berth/runtime/nsexec" // stage 0, in C, before Go starts
)

func main() {
	if container.IsInit() {
		container.Init() // never returns
	}
	fmt.Fprintf(os.Stderr, "%s: the container init of berth's runtime, started by berth; not a command\n", container.InitName)
	os.Exit(2)
}
