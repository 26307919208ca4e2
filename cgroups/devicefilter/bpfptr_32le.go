//go:build 386 || arm || mipsle

package devicefilter

import "unsafe"

// bpfPointer is an __aligned_u64 user space address of bpf_attr: the
// address is the low (first) half.
type bpfPointer struct {
	p unsafe.Pointer
	_ uint32
}
