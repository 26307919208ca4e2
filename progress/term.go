package progress

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Renderer is a Sink that shows events and must be closed once the
// transfer is over, to flush what it holds.
type Renderer interface {
	Sink
	io.Closer
}

var (
	_ Renderer = (*BarsRenderer)(nil)
	_ Renderer = (*LinesRenderer)(nil)
	_ Renderer = (*JSONRenderer)(nil)
)

// Auto returns Bars(f) when f is a terminal and Lines(f) otherwise: the
// renderer for a command's progress on stderr.
func Auto(f *os.File) Renderer {
	if IsTerminal(f) {
		return Bars(f)
	}
	return Lines(f)
}
