package devicefilter

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The layouts below are the parts of union bpf_attr
// (include/uapi/linux/bpf.h) that this package uses. The kernel accepts
// an attr shorter than its own and treats the missing fields as zero.

// Pointer fields (__aligned_u64 holding a user space address) are
// bpfPointer, defined per word size and byte order in bpfptr_*.go. They
// store an unsafe.Pointer so that the garbage collector keeps the memory
// alive.

// progLoadAttr is the BPF_PROG_LOAD struct, up to expected_attach_type.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              bpfPointer
	license            bpfPointer
	logLevel           uint32
	logSize            uint32
	logBuf             bpfPointer
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// progAttachAttr is the BPF_PROG_ATTACH/BPF_PROG_DETACH struct, up to
// replace_bpf_fd (Linux 5.6).
type progAttachAttr struct {
	targetFD     uint32
	attachBpfFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFD uint32
}

// progQueryAttr is the BPF_PROG_QUERY struct, up to prog_cnt.
type progQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     bpfPointer
	progCnt     uint32
	_           uint32
}

// getIDAttr is the BPF_*_GET_*_ID struct.
type getIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

// bpf calls bpf(2). BPF_PROG_LOAD fails with EAGAIN when a signal
// interrupts the verifier; it is retried.
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for tries := 0; ; tries++ {
		r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		runtime.KeepAlive(attr)
		if errno == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD && tries < 100 {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

// loadProgram loads insns as a BPF_PROG_TYPE_CGROUP_DEVICE program named
// name and returns its file descriptor (close-on-exec). When the kernel
// rejects the program, the error includes the verifier log.
func loadProgram(name string, insns []Instruction) (int, error) {
	code := encode(insns)
	if len(code) == 0 {
		return -1, errors.New("load program: no instructions")
	}
	license := []byte("Apache\x00")
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(code)),
		insns:    bpfPointer{p: unsafe.Pointer(&code[0])},
		license:  bpfPointer{p: unsafe.Pointer(&license[0])},
	}
	copy(attr.progName[:unix.BPF_OBJ_NAME_LEN-1], name)
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		return fd, nil
	}
	// Load again with the verifier log to explain the failure.
	log := make([]byte, 64<<10)
	attr.logLevel = 1
	attr.logSize = uint32(len(log))
	attr.logBuf = bpfPointer{p: unsafe.Pointer(&log[0])}
	fd, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	if err2 == nil {
		return fd, nil
	}
	if n := strings.IndexByte(string(log), 0); n >= 0 {
		log = log[:n]
	}
	if msg := strings.TrimSpace(string(log)); msg != "" {
		return -1, fmt.Errorf("load program: %w; verifier log:\n%s", err, msg)
	}
	return -1, fmt.Errorf("load program: %w", err)
}

// attachProgram attaches the program prog to the cgroup cgroup with
// flags; with BPF_F_REPLACE it atomically replaces the program replace.
func attachProgram(cgroup, prog int, flags uint32, replace int) error {
	attr := progAttachAttr{
		targetFD:    uint32(cgroup),
		attachBpfFD: uint32(prog),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: flags,
	}
	if flags&unix.BPF_F_REPLACE != 0 {
		attr.replaceBpfFD = uint32(replace)
	}
	_, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// detachProgram detaches the program prog from the cgroup cgroup.
func detachProgram(cgroup, prog int) error {
	attr := progAttachAttr{
		targetFD:    uint32(cgroup),
		attachBpfFD: uint32(prog),
		attachType:  unix.BPF_CGROUP_DEVICE,
	}
	_, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// queryPrograms returns the ids of the device programs attached directly
// to the cgroup cgroup.
func queryPrograms(cgroup int) ([]uint32, error) {
	ids := make([]uint32, 8)
	for {
		attr := progQueryAttr{
			targetFD:   uint32(cgroup),
			attachType: unix.BPF_CGROUP_DEVICE,
			progIDs:    bpfPointer{p: unsafe.Pointer(&ids[0])},
			progCnt:    uint32(len(ids)),
		}
		_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(ids)
		if errors.Is(err, unix.ENOSPC) && int(attr.progCnt) > len(ids) {
			// More programs than room: prog_cnt is their number.
			ids = make([]uint32, attr.progCnt)
			continue
		}
		if err != nil {
			return nil, err
		}
		return ids[:attr.progCnt], nil
	}
}

// programFD opens the program with the given id.
func programFD(id uint32) (int, error) {
	attr := getIDAttr{id: id}
	return bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}
