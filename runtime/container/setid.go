//go:build linux && !386 && !arm

package container

import "golang.org/x/sys/unix"

// The set*id calls with 32-bit ids.
const (
	sysSetresuid = unix.SYS_SETRESUID
	sysSetresgid = unix.SYS_SETRESGID
)
