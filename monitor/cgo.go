package monitor

// The C constructor in monitor.c: the monitor and the --init, run before
// the Go runtime starts.

// #cgo CFLAGS: -Wall -O2
import "C"
