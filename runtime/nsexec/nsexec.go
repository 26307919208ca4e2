// Package nsexec enters and creates a container's namespaces before the Go
// runtime starts. Importing it (for its side effect) links in a C
// constructor that does nothing unless the process was started by
// berth's runtime as a container init or exec (see nsexec.c for the
// protocol). Only cmd/berth should import it.
package nsexec

// #cgo CFLAGS: -Wall -O2
import "C"

// EnvInitPipe names the environment variable that carries the number of the
// sync socket to a process that should act as stage 0 of an init or exec.
const EnvInitPipe = "_BERTH_INITPIPE"
