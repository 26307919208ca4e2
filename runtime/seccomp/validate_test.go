package seccomp

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

func uintp(v uint) *uint { return &v }

// goodProfile uses every action, operator, flag the library supports and
// a few architectures.
func goodProfile() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:    specs.ActErrno,
		DefaultErrnoRet:  uintp(38),
		Architectures:    []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64},
		Flags:            []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		ListenerPath:     "/run/agent.sock",
		ListenerMetadata: "meta",
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "socketcall", "arm_fadvise64_64"}, Action: specs.ActAllow},
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(1)},
			{Names: []string{"getuid"}, Action: specs.ActErrno, ErrnoRet: uintp(38)}, // == default: skipped
			{Names: []string{"kill"}, Action: specs.ActKill},
			{Names: []string{"tkill"}, Action: specs.ActKillThread},
			{Names: []string{"tgkill"}, Action: specs.ActKillProcess},
			{Names: []string{"uname"}, Action: specs.ActTrap},
			{Names: []string{"ptrace"}, Action: specs.ActTrace, ErrnoRet: uintp(40000)},
			{Names: []string{"getpid"}, Action: specs.ActLog},
			{Names: []string{"mknodat"}, Action: specs.ActNotify},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0, Op: specs.OpEqualTo},
				{Index: 0, Value: 8, Op: specs.OpEqualTo},
				{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo},
			}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 1, Op: specs.OpNotEqual},
				{Index: 1, Value: 10, Op: specs.OpLessThan},
				{Index: 2, Value: 10, Op: specs.OpLessEqual},
				{Index: 3, Value: 1, Op: specs.OpGreaterEqual},
				{Index: 4, Value: 1, Op: specs.OpGreaterThan},
				{Index: 5, Value: 0xf, ValueTwo: 1, Op: specs.OpMaskedEqual},
			}},
		},
	}
}

func TestValidateGood(t *testing.T) {
	if err := Validate(nil); err != nil {
		t.Fatalf("Validate(nil): %v", err)
	}
	if err := Validate(goodProfile()); err != nil {
		t.Fatalf("Validate(good profile): %v", err)
	}
	if !UsesNotify(goodProfile()) || UsesNotify(nil) || UsesNotify(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow}) {
		t.Fatal("UsesNotify gives wrong answers")
	}
}

func TestValidateErrors(t *testing.T) {
	major, minor, _ := libseccomp.GetLibraryVersion()
	old := major < 2 || major == 2 && minor < 6

	tests := []struct {
		name   string
		modify func(s *specs.LinuxSeccomp)
		want   string // error prefix
	}{
		{"missing default action", func(s *specs.LinuxSeccomp) { s.DefaultAction = "" },
			"linux.seccomp.defaultAction: missing"},
		{"unknown default action", func(s *specs.LinuxSeccomp) { s.DefaultAction = "SCMP_ACT_FOO" },
			`linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"`},
		{"notify default action", func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActNotify },
			"linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"},
		{"defaultErrnoRet with allow", func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActAllow },
			"linux.seccomp.defaultErrnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW"},
		{"defaultErrnoRet too big", func(s *specs.LinuxSeccomp) { s.DefaultErrnoRet = uintp(4096) },
			"linux.seccomp.defaultErrnoRet: 4096 out of range 0 to 4095 for SCMP_ACT_ERRNO"},
		{"unknown architecture", func(s *specs.LinuxSeccomp) { s.Architectures[1] = "SCMP_ARCH_FOO" },
			`linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_FOO"`},
		{"unknown flag", func(s *specs.LinuxSeccomp) { s.Flags[2] = "SECCOMP_FILTER_FLAG_FOO" },
			`linux.seccomp.flags[2]: unknown flag "SECCOMP_FILTER_FLAG_FOO"`},
		{"unknown syscall", func(s *specs.LinuxSeccomp) { s.Syscalls[2].Names = []string{"fooo"} },
			`linux.seccomp.syscalls[2].names[0]: unknown syscall "fooo"`},
		{"unknown second syscall", func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names[1] = "wirte" },
			`linux.seccomp.syscalls[0].names[1]: unknown syscall "wirte"`},
		{"empty syscall name", func(s *specs.LinuxSeccomp) { s.Syscalls[1].Names = []string{""} },
			"linux.seccomp.syscalls[1].names[0]: empty syscall name"},
		{"no names", func(s *specs.LinuxSeccomp) { s.Syscalls[1].Names = nil },
			"linux.seccomp.syscalls[1].names: no syscall names"},
		{"missing action", func(s *specs.LinuxSeccomp) { s.Syscalls[3].Action = "" },
			"linux.seccomp.syscalls[3].action: missing"},
		{"unknown action", func(s *specs.LinuxSeccomp) { s.Syscalls[3].Action = "SCMP_ACT_BAR" },
			`linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_BAR"`},
		{"errnoRet with allow", func(s *specs.LinuxSeccomp) { s.Syscalls[0].ErrnoRet = uintp(1) },
			"linux.seccomp.syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW"},
		{"errnoRet with kill", func(s *specs.LinuxSeccomp) { s.Syscalls[3].ErrnoRet = uintp(1) },
			"linux.seccomp.syscalls[3].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_KILL"},
		{"errnoRet too big", func(s *specs.LinuxSeccomp) { s.Syscalls[1].ErrnoRet = uintp(5000) },
			"linux.seccomp.syscalls[1].errnoRet: 5000 out of range 0 to 4095 for SCMP_ACT_ERRNO"},
		{"trace value too big", func(s *specs.LinuxSeccomp) { s.Syscalls[7].ErrnoRet = uintp(70000) },
			"linux.seccomp.syscalls[7].errnoRet: 70000 out of range 0 to 65535 for SCMP_ACT_TRACE"},
		{"unknown operator", func(s *specs.LinuxSeccomp) { s.Syscalls[11].Args[1].Op = "SCMP_CMP_FOO" },
			`linux.seccomp.syscalls[11].args[1].op: unknown operator "SCMP_CMP_FOO"`},
		{"missing operator", func(s *specs.LinuxSeccomp) { s.Syscalls[11].Args[0].Op = "" },
			"linux.seccomp.syscalls[11].args[0].op: missing"},
		{"argument index", func(s *specs.LinuxSeccomp) { s.Syscalls[11].Args[5].Index = 6 },
			"linux.seccomp.syscalls[11].args[5].index: 6 out of range, a syscall has arguments 0 to 5"},
		{"notify without listener", func(s *specs.LinuxSeccomp) { s.ListenerPath = ""; s.ListenerMetadata = "" },
			"linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used"},
		{"metadata without listener", func(s *specs.LinuxSeccomp) { s.ListenerPath = ""; s.Syscalls[9].Action = specs.ActAllow },
			"linux.seccomp.listenerMetadata: must not be set without listenerPath"},
	}
	if old {
		tests = append(tests,
			struct {
				name   string
				modify func(s *specs.LinuxSeccomp)
				want   string
			}{"wait killable needs libseccomp 2.6", func(s *specs.LinuxSeccomp) { s.Flags[0] = specs.LinuxSeccompFlagWaitKillableRecv },
				"linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp 2.6.0 or newer"},
			struct {
				name   string
				modify func(s *specs.LinuxSeccomp)
				want   string
			}{"architecture unknown to libseccomp", func(s *specs.LinuxSeccomp) { s.Architectures[3] = specs.ArchLOONGARCH64 },
				"linux.seccomp.architectures[3]: add architecture"},
		)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := goodProfile()
			tc.modify(s)
			err := Validate(s)
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Validate error:\n got %q\nwant %q...", err, tc.want)
			}
			// Load must refuse the same profile before touching the
			// kernel.
			if fd, lerr := Load(s); lerr == nil || lerr.Error() != err.Error() || fd != -1 {
				t.Fatalf("Load = %d, %v; want -1, %v", fd, lerr, err)
			}
		})
	}
}
