//go:build !386 && !arm && !mips && !mipsle

package devicefilter

import "unsafe"

// bpfPointer is an __aligned_u64 user space address of bpf_attr.
type bpfPointer struct {
	p unsafe.Pointer
}
