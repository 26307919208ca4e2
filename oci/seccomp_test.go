package oci

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/berth-project/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Seccomp return values (linux/seccomp.h).
const (
	retAllow   = 0x7fff0000
	retErrno   = 0x00050000
	retActMask = 0xffff0000
)

// auditArch is the seccomp_data.arch of the host's native architecture.
func auditArch(t *testing.T) uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	}
	t.Skipf("no seccomp simulation for %s", runtime.GOARCH)
	return 0
}

// runBPF runs the classic BPF seccomp program prog on the seccomp_data of
// a call to nr with args, as the kernel would, and returns its verdict.
// It knows the instructions libseccomp emits.
func runBPF(t *testing.T, prog []byte, arch uint32, nr uintptr, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.NativeEndian.PutUint32(data[0:], uint32(nr))
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(data[16+8*i:], a)
	}
	var a, x uint32
	var mem [16]uint32
	n := len(prog) / 8
	for pc := 0; pc < n; pc++ {
		b := prog[pc*8:]
		code := binary.NativeEndian.Uint16(b)
		jt, jf := int(b[2]), int(b[3])
		k := binary.NativeEndian.Uint32(b[4:])
		src := func() uint32 {
			if code&0x08 != 0 {
				return x
			}
			return k
		}
		switch code & 0x07 {
		case 0x00: // LD
			switch code & 0xe0 {
			case 0x00:
				a = k
			case 0x20:
				if code&0x18 != 0 || k+4 > 64 {
					t.Fatalf("pc %d: unsupported load %#x k=%d", pc, code, k)
				}
				a = binary.NativeEndian.Uint32(data[k:])
			case 0x60:
				a = mem[k]
			default:
				t.Fatalf("pc %d: unsupported ld %#x", pc, code)
			}
		case 0x01: // LDX
			switch code & 0xe0 {
			case 0x00:
				x = k
			case 0x60:
				x = mem[k]
			default:
				t.Fatalf("pc %d: unsupported ldx %#x", pc, code)
			}
		case 0x02:
			mem[k] = a
		case 0x03:
			mem[k] = x
		case 0x04: // ALU
			v := src()
			switch code & 0xf0 {
			case 0x00:
				a += v
			case 0x10:
				a -= v
			case 0x20:
				a *= v
			case 0x40:
				a |= v
			case 0x50:
				a &= v
			case 0x60:
				a <<= v
			case 0x70:
				a >>= v
			case 0x80:
				a = -a
			default:
				t.Fatalf("pc %d: unsupported alu %#x", pc, code)
			}
		case 0x05: // JMP
			v := src()
			var cond bool
			switch code & 0xf0 {
			case 0x00:
				pc += int(k)
				continue
			case 0x10:
				cond = a == v
			case 0x20:
				cond = a > v
			case 0x30:
				cond = a >= v
			case 0x40:
				cond = a&v != 0
			default:
				t.Fatalf("pc %d: unsupported jmp %#x", pc, code)
			}
			if cond {
				pc += jt
			} else {
				pc += jf
			}
		case 0x06: // RET
			if code&0x18 == 0x10 {
				return a
			}
			return k
		case 0x07:
			if code&0xf8 == 0x80 {
				a = x
			} else {
				x = a
			}
		}
	}
	t.Fatal("BPF program ran off its end")
	return 0
}

// verdict describes a seccomp return value for messages.
func verdict(r uint32) string {
	switch r & retActMask {
	case retAllow:
		return "allow"
	case retErrno:
		return fmt.Sprintf("errno %d", r&0xffff)
	}
	return fmt.Sprintf("%#x", r)
}

type call struct {
	name string
	nr   uintptr
	args []uint64
	want string // "allow" or "errno N"
}

func checkCalls(t *testing.T, s *specs.LinuxSeccomp, calls []call) {
	t.Helper()
	prog, err := seccomp.Compile(s)
	if err != nil {
		t.Fatalf("compile the profile with berth's runtime/seccomp: %v", err)
	}
	arch := auditArch(t)
	for _, c := range calls {
		if got := verdict(runBPF(t, prog.Filter, arch, c.nr, c.args...)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

const (
	eperm  = "errno 1"
	enosys = "errno 38"
	allow  = "allow"
)

func TestDefaultSeccompDecisions(t *testing.T) {
	def, err := Capabilities(DefaultCapabilities, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := DefaultSeccomp(def)
	if err != nil {
		t.Fatal(err)
	}
	if s.DefaultAction != specs.ActErrno || s.DefaultErrnoRet == nil || *s.DefaultErrnoRet != 1 {
		t.Errorf("default action %s %v, want SCMP_ACT_ERRNO with EPERM", s.DefaultAction, s.DefaultErrnoRet)
	}
	if runtime.GOARCH == "amd64" {
		eq(t, "architectures", s.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32})
	}
	nsFlags := uint64(unix.CLONE_NEWUSER) | uint64(unix.SIGCHLD)
	checkCalls(t, s, []call{
		{"read", unix.SYS_READ, nil, allow},
		{"openat", unix.SYS_OPENAT, nil, allow},
		{"execve", unix.SYS_EXECVE, nil, allow},
		{"clone without namespace flags", unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD) | unix.CLONE_VM}, allow},
		{"clone with CLONE_NEWUSER", unix.SYS_CLONE, []uint64{nsFlags}, eperm},
		{"clone with CLONE_NEWNET", unix.SYS_CLONE, []uint64{unix.CLONE_NEWNET}, eperm},
		{"clone3", unix.SYS_CLONE3, nil, enosys},
		{"unshare CLONE_NEWUSER", unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"mount", unix.SYS_MOUNT, nil, eperm},
		{"umount2", unix.SYS_UMOUNT2, nil, eperm},
		{"setns", unix.SYS_SETNS, nil, eperm},
		{"kexec_load", unix.SYS_KEXEC_LOAD, nil, eperm},
		{"reboot", unix.SYS_REBOOT, nil, eperm},
		{"init_module", unix.SYS_INIT_MODULE, nil, eperm},
		{"settimeofday", unix.SYS_SETTIMEOFDAY, nil, eperm},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, nil, eperm},
		{"bpf", unix.SYS_BPF, nil, eperm},
		{"chroot (CAP_SYS_CHROOT is a default)", unix.SYS_CHROOT, nil, allow},
		{"personality(PER_LINUX)", unix.SYS_PERSONALITY, []uint64{0}, allow},
		{"personality query", unix.SYS_PERSONALITY, []uint64{0xffffffff}, allow},
		{"personality(ADDR_NO_RANDOMIZE)", unix.SYS_PERSONALITY, []uint64{0x0040000}, eperm},
		{"socket(AF_INET)", unix.SYS_SOCKET, []uint64{unix.AF_INET}, allow},
		{"socket(AF_VSOCK)", unix.SYS_SOCKET, []uint64{unix.AF_VSOCK}, eperm},
		{"ptrace (4.8+)", unix.SYS_PTRACE, nil, allow},
	})
}

func TestSeccompFollowsCapabilities(t *testing.T) {
	caps, err := Capabilities(DefaultCapabilities, []string{"SYS_ADMIN", "SYS_TIME"}, []string{"SYS_CHROOT"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := DefaultSeccomp(caps)
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, s, []call{
		{"mount", unix.SYS_MOUNT, nil, allow},
		{"unshare CLONE_NEWUSER", unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, allow},
		{"clone with CLONE_NEWUSER", unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER}, allow},
		{"clone3", unix.SYS_CLONE3, nil, allow},
		{"settimeofday", unix.SYS_SETTIMEOFDAY, nil, allow},
		{"chroot without CAP_SYS_CHROOT", unix.SYS_CHROOT, nil, eperm},
		{"reboot", unix.SYS_REBOOT, nil, eperm},
	})

	// The same through Generate.
	in := testInput(t)
	in.Host.CapAdd = []string{"sys_boot"}
	sp := generate(t, in)
	checkCalls(t, sp.Linux.Seccomp, []call{
		{"reboot with CAP_SYS_BOOT", unix.SYS_REBOOT, nil, allow},
		{"mount", unix.SYS_MOUNT, nil, eperm},
	})
}

func TestSeccompSecurityOpts(t *testing.T) {
	in := testInput(t)
	in.Host.SecurityOpt = []string{"seccomp=unconfined"}
	if s := generate(t, in); s.Linux.Seccomp != nil {
		t.Errorf("seccomp=unconfined gave %+v", s.Linux.Seccomp)
	}

	// OCI form, inline JSON.
	in.Host.SecurityOpt = []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`}
	s := generate(t, in)
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Fatalf("inline profile gave %+v", s.Linux.Seccomp)
	}
	if runtime.GOARCH == "amd64" {
		checkCalls(t, s.Linux.Seccomp, []call{
			{"getcwd", unix.SYS_GETCWD, nil, "errno 13"},
			{"mount", unix.SYS_MOUNT, nil, allow},
		})
	}

	// docker's form from a file: archMap, includes/excludes, old "name".
	prof := filepath.Join(t.TempDir(), "docker.json")
	writeFile(t, prof, `{
		"defaultAction": "SCMP_ACT_ERRNO",
		"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
		            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
		"syscalls": [
			{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
			{"name": "getpid", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_KILL"]}},
			{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}}
		]}`)
	in.Host.SecurityOpt = []string{"seccomp=" + prof}
	s = generate(t, in)
	if len(s.Linux.Seccomp.Architectures) == 0 {
		t.Errorf("archMap gave no architectures")
	}
	checkCalls(t, s.Linux.Seccomp, []call{
		{"read", unix.SYS_READ, nil, allow},
		{"getpid (CAP_KILL held)", unix.SYS_GETPID, nil, allow},
		{"getppid (excluded with CAP_KILL)", unix.SYS_GETPPID, nil, eperm},
	})

	for _, bad := range []struct{ opt, msg string }{
		{"seccomp=/no/such/profile.json", "/no/such/profile.json"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","bogus":1}]}`, "bogus"},
		{`seccomp={"syscalls":[]}`, "no defaultAction"},
		{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}`, "no syscall names"},
		{"seccomp=", "seccomp needs"},
	} {
		in.Host.SecurityOpt = []string{bad.opt}
		_, err := Generate(in)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("security-opt %s: %v, want error containing %q", bad.opt, err, bad.msg)
		}
	}
}

// TestDefaultSeccompShared: DefaultSeccomp decodes the profile once per
// process; a caller that changes what it got (as --security-opt handling
// may) changes neither the next caller's profile nor the decoded one.
func TestDefaultSeccompShared(t *testing.T) {
	caps, err := Capabilities(DefaultCapabilities, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := seccompFromJSON(defaultSeccomp, caps)
	if err != nil {
		t.Fatal(err)
	}
	first, err := DefaultSeccomp(caps)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, fresh) {
		t.Fatal("DefaultSeccomp differs from a fresh decoding of the profile")
	}
	*first.DefaultErrnoRet = 99
	first.Architectures[0] = "SCMP_ARCH_NONE"
	for i := range first.Syscalls {
		first.Syscalls[i].Names[0] = "changed"
		if first.Syscalls[i].ErrnoRet != nil {
			*first.Syscalls[i].ErrnoRet = 99
		}
		for j := range first.Syscalls[i].Args {
			first.Syscalls[i].Args[j].Value = 99
		}
	}
	second, err := DefaultSeccomp(caps)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, fresh) {
		t.Error("a change to one DefaultSeccomp result shows in the next")
	}
}
