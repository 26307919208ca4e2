//go:build mips

package devicefilter

import "unsafe"

// bpfPointer is an __aligned_u64 user space address of bpf_attr: the
// address is the low (second) half.
type bpfPointer struct {
	_ uint32
	p unsafe.Pointer
}
