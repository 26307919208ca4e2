package devicefilter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func ptr[T any](v T) *T { return &v }

const helperEnv = "BERTH_DEVICEFILTER_TEST_HELPER"

// TestMain lets the test binary act as a child that waits until it is in
// the cgroup (a byte on stdin), then runs the device operations listed,
// comma-separated, in the environment variable:
//
//	r:PATH, w:PATH, rw:PATH     open PATH for reading, writing or both
//	m:PATH:c|b:MAJOR:MINOR     mknod PATH (and remove it again)
//
// and prints one letter per operation: A (allowed), D (denied with EPERM)
// or E (another error, printed on stderr).
func TestMain(m *testing.M) {
	if ops := os.Getenv(helperEnv); ops != "" {
		var b [1]byte
		if _, err := os.Stdin.Read(b[:]); err != nil {
			os.Exit(100)
		}
		var out []byte
		for _, op := range strings.Split(ops, ",") {
			err := helperOp(op)
			switch {
			case err == nil:
				out = append(out, 'A')
			case errors.Is(err, unix.EPERM):
				out = append(out, 'D')
			default:
				fmt.Fprintf(os.Stderr, "%s: %v\n", op, err)
				out = append(out, 'E')
			}
		}
		os.Stdout.Write(out)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperOp runs one operation of the child (see TestMain).
func helperOp(op string) error {
	f := strings.Split(op, ":")
	flags := map[string]int{"r": unix.O_RDONLY, "w": unix.O_WRONLY, "rw": unix.O_RDWR}
	if fl, ok := flags[f[0]]; ok && len(f) == 2 {
		fd, err := unix.Open(f[1], fl|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
			return nil // the driver refused, after the device cgroup allowed
		}
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	if f[0] == "m" && len(f) == 5 {
		major, _ := strconv.Atoi(f[3])
		minor, _ := strconv.Atoi(f[4])
		mode := uint32(unix.S_IFCHR | 0o600)
		if f[2] == "b" {
			mode = unix.S_IFBLK | 0o600
		}
		if err := unix.Mknod(f[1], mode, int(unix.Mkdev(uint32(major), uint32(minor)))); err != nil {
			return err
		}
		return unix.Unlink(f[1])
	}
	return fmt.Errorf("bad helper operation %q", op)
}

func TestParseRule(t *testing.T) {
	cases := []struct {
		in   specs.LinuxDeviceCgroup
		want string
		err  bool
	}{
		{specs.LinuxDeviceCgroup{}, "a *:* rwm", false},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "wr"}, "c 1:3 rw", false},
		{specs.LinuxDeviceCgroup{Type: "b", Major: ptr(int64(8)), Minor: ptr(int64(-1)), Access: "m"}, "b 8:* m", false},
		{specs.LinuxDeviceCgroup{Type: "p"}, "", true},
		{specs.LinuxDeviceCgroup{Type: "c", Access: "rr"}, "", true},
		{specs.LinuxDeviceCgroup{Type: "c", Major: ptr(int64(-2))}, "", true},
	}
	for _, c := range cases {
		r, err := ParseRule(c.in)
		if c.err {
			if err == nil {
				t.Errorf("%+v: no error", c.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.in, err)
			continue
		}
		if got := r.V1String(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := ParseRules([]specs.LinuxDeviceCgroup{{}, {Type: "x"}}); err == nil || !strings.Contains(err.Error(), "linux.resources.devices[1]") {
		t.Errorf("ParseRules error = %v, want one naming linux.resources.devices[1]", err)
	}
}

// TestGenerate compares the program for fixed rule lists with the one
// derived by hand from the instruction encoding.
func TestGenerate(t *testing.T) {
	// Opcodes: 0x61 ldxw (LDX|MEM|W), 0x54 and32 imm (ALU|AND|K),
	// 0x74 rsh32 imm, 0xbc mov32 reg (ALU|MOV|X), 0xb4 mov32 imm,
	// 0x55 jne imm (JMP|JNE|K), 0x95 exit.
	prologue := []Instruction{
		{OpCode: 0x61, Dst: 2, Src: 1, Offset: 0},
		{OpCode: 0x54, Dst: 2, Constant: 0xffff},
		{OpCode: 0x61, Dst: 3, Src: 1, Offset: 0},
		{OpCode: 0x74, Dst: 3, Constant: 16},
		{OpCode: 0x61, Dst: 4, Src: 1, Offset: 4},
		{OpCode: 0x61, Dst: 5, Src: 1, Offset: 8},
	}
	cases := []struct {
		rules []specs.LinuxDeviceCgroup
		want  []Instruction
	}{{
		rules: nil,
		want:  []Instruction{{OpCode: 0xb4, Dst: 0, Constant: 0}, {OpCode: 0x95}},
	}, {
		rules: []specs.LinuxDeviceCgroup{
			{Allow: false},
			{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"},
			{Allow: false, Type: "b", Major: ptr(int64(8)), Access: "m"},
		},
		want: []Instruction{
			// b 8:* m deny (last rule, tested first).
			{OpCode: 0x55, Dst: 2, Constant: 1, Offset: 6}, // not block: next rule
			{OpCode: 0xbc, Dst: 1, Src: 3},
			{OpCode: 0x54, Dst: 1, Constant: 6},            // requested r or w
			{OpCode: 0x55, Dst: 1, Constant: 0, Offset: 3}, // ...: next rule
			{OpCode: 0x55, Dst: 4, Constant: 8, Offset: 2}, // major != 8: next rule
			{OpCode: 0xb4, Dst: 0, Constant: 0},
			{OpCode: 0x95},
			// c 1:3 rw allow.
			{OpCode: 0x55, Dst: 2, Constant: 2, Offset: 7},
			{OpCode: 0xbc, Dst: 1, Src: 3},
			{OpCode: 0x54, Dst: 1, Constant: 1}, // requested m
			{OpCode: 0x55, Dst: 1, Constant: 0, Offset: 4},
			{OpCode: 0x55, Dst: 4, Constant: 1, Offset: 3},
			{OpCode: 0x55, Dst: 5, Constant: 3, Offset: 2},
			{OpCode: 0xb4, Dst: 0, Constant: 1},
			{OpCode: 0x95},
			// a *:* rwm deny matches everything: no default block.
			{OpCode: 0xb4, Dst: 0, Constant: 0},
			{OpCode: 0x95},
		},
	}, {
		rules: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3))}},
		want: []Instruction{
			{OpCode: 0x55, Dst: 2, Constant: 2, Offset: 4},
			{OpCode: 0x55, Dst: 4, Constant: 1, Offset: 3},
			{OpCode: 0x55, Dst: 5, Constant: 3, Offset: 2},
			{OpCode: 0xb4, Dst: 0, Constant: 1},
			{OpCode: 0x95},
			// Default: deny.
			{OpCode: 0xb4, Dst: 0, Constant: 0},
			{OpCode: 0x95},
		},
	}}
	for i, c := range cases {
		rules, err := ParseRules(c.rules)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Generate(rules)
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(prologue), c.want...)
		if !slices.Equal(got, want) {
			t.Errorf("case %d:\ngot:\n%s\nwant:\n%s", i, listing(got), listing(want))
		}
	}
	if _, err := Generate([]Rule{{Type: 'c', Major: 1 << 31, Minor: Any, Access: "r"}}); err == nil {
		t.Error("Generate accepted major 2^31")
	}
}

func listing(insns []Instruction) string {
	var b strings.Builder
	for i, in := range insns {
		fmt.Fprintf(&b, "%3d: %v\n", i, in)
	}
	return b.String()
}

// TestEncode checks the kernel representation of instructions, byte by
// byte, on little-endian machines.
func TestEncode(t *testing.T) {
	one := uint16(1)
	if *(*byte)(unsafe.Pointer(&one)) != 1 {
		t.Skip("big-endian machine")
	}
	code := encode([]Instruction{ldxW(r2, r1, 4), jmpImm(unix.BPF_JNE, r5, -3, 2), alu32Reg(unix.BPF_MOV, r1, r3), exit()})
	got := unsafe.Slice((*byte)(unsafe.Pointer(&code[0])), len(code)*8)
	want := []byte{
		0x61, 0x12, 4, 0, 0, 0, 0, 0,
		0x55, 0x05, 2, 0, 0xfd, 0xff, 0xff, 0xff,
		0xbc, 0x31, 0, 0, 0, 0, 0, 0,
		0x95, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x\nwant % x", got, want)
	}
}

// TestAttrLayout checks the bpf_attr structs against the offsets of
// include/uapi/linux/bpf.h.
func TestAttrLayout(t *testing.T) {
	var l progLoadAttr
	var a progAttachAttr
	var q progQueryAttr
	var g getIDAttr
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(prog load)", unsafe.Sizeof(l), 72},
		{"insns", unsafe.Offsetof(l.insns), 8},
		{"license", unsafe.Offsetof(l.license), 16},
		{"log_level", unsafe.Offsetof(l.logLevel), 24},
		{"log_buf", unsafe.Offsetof(l.logBuf), 32},
		{"prog_flags", unsafe.Offsetof(l.progFlags), 44},
		{"prog_name", unsafe.Offsetof(l.progName), 48},
		{"expected_attach_type", unsafe.Offsetof(l.expectedAttachType), 68},
		{"sizeof(prog attach)", unsafe.Sizeof(a), 20},
		{"replace_bpf_fd", unsafe.Offsetof(a.replaceBpfFD), 16},
		{"sizeof(prog query)", unsafe.Sizeof(q), 32},
		{"query.attach_flags", unsafe.Offsetof(q.attachFlags), 12},
		{"prog_ids", unsafe.Offsetof(q.progIDs), 16},
		{"prog_cnt", unsafe.Offsetof(q.progCnt), 24},
		{"sizeof(get id)", unsafe.Sizeof(g), 12},
		{"sizeof(bpf_insn)", unsafe.Sizeof(kernelInsn{}), 8},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestProgramLoads checks that the kernel verifier accepts the generated
// programs for several rule lists (an allow-all rule makes the rest
// unreachable, which the verifier would reject if emitted), and that a
// rejected program's error carries the verifier log.
func TestProgramLoads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	lists := [][]specs.LinuxDeviceCgroup{
		nil,
		{{Allow: false}},
		{{Allow: true}},
		{{Allow: false}, {Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}},
		{{Allow: true, Type: "c", Access: "r"}, {Allow: true}, {Allow: false, Type: "b", Major: ptr(int64(8))}},
		{{Allow: true, Type: "a", Minor: ptr(int64(5)), Access: "m"}, {Allow: false, Type: "b", Access: "rw"}},
	}
	for i, l := range lists {
		rules, err := ParseRules(l)
		if err != nil {
			t.Fatal(err)
		}
		insns, err := Generate(rules)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := loadProgram("berth_test", insns)
		if err != nil {
			t.Errorf("list %d: %v\n%s", i, err, listing(insns))
			continue
		}
		unix.Close(fd)
	}

	// exit without setting R0.
	fd, err := loadProgram("berth_test", []Instruction{exit()})
	if err == nil {
		unix.Close(fd)
		t.Fatal("the verifier accepted a program returning an unset R0")
	}
	if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "R0 !read_ok") {
		t.Errorf("error %q: want EACCES with the verifier log (R0 !read_ok)", err)
	}
}

// cgroup2Dir creates a test cgroup in the cgroup2 hierarchy (the unified
// one of a hybrid host, or /sys/fs/cgroup) and removes it at the end.
func cgroup2Dir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	var root string
	for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(r, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			root = r
			break
		}
	}
	if root == "" {
		t.Skip("no cgroup2 hierarchy mounted")
	}
	dir := filepath.Join(root, fmt.Sprintf("berth-test-devicefilter-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Rmdir(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// runHelper starts the test binary as a child (see TestMain), moves it
// into the cgroup dir, lets it run ops and returns its letters.
func runHelper(t *testing.T, dir string, ops []string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(ops, ","))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, &out, os.Stderr
	if err := cmd.Start(); err != nil {
		r.Close()
		t.Fatal(err)
	}
	r.Close()
	done := false
	defer func() {
		if !done {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{'\n'}); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	done = true
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	return out.String()
}

// attachedOne checks that exactly one program is attached to dir and
// returns its id.
func attachedOne(t *testing.T, dir string) uint32 {
	t.Helper()
	ids, err := Attached(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("%d programs attached to %s, want 1", len(ids), dir)
	}
	return ids[0]
}

// TestApplyReplaces attaches filters to a real cgroup2 directory, checks
// that applying replaces the programs attached before (one, atomically,
// or several), and that a process in the cgroup is denied /dev/zero but
// not /dev/null.
func TestApplyReplaces(t *testing.T) {
	dir := cgroup2Dir(t)
	cg, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(cg) })
	// Two programs attached by someone else.
	allow, err := Generate([]Rule{{Allow: true, Type: 'a', Major: Any, Minor: Any, Access: "rwm"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		p, err := loadProgram("berth_test", allow)
		if err != nil {
			t.Fatal(err)
		}
		err = attachProgram(cg, p, unix.BPF_F_ALLOW_MULTI, -1)
		unix.Close(p)
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { detachAll(t, cg) })
	if ids, err := Attached(dir); err != nil || len(ids) != 2 {
		t.Fatalf("Attached = %v, %v; want 2 programs", ids, err)
	}

	allowAll := []specs.LinuxDeviceCgroup{{Allow: true}}
	onlyNull := []specs.LinuxDeviceCgroup{
		{Allow: false},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"},
	}
	var prev uint32
	for i, rules := range [][]specs.LinuxDeviceCgroup{allowAll, onlyNull, onlyNull} {
		if err := Apply(dir, rules); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		id := attachedOne(t, dir)
		if id == prev {
			t.Fatalf("apply %d: program %d still attached", i, id)
		}
		prev = id
	}
	if got := runHelper(t, dir, []string{"r:/dev/null", "r:/dev/zero"}); got != "AD" {
		t.Errorf("helper results %q, want AD (/dev/null allowed, /dev/zero denied)", got)
	}
}

// detachAll detaches the device programs attached to the cgroup fd cg.
func detachAll(t *testing.T, cg int) {
	ids, err := queryPrograms(cg)
	if err != nil {
		t.Error(err)
		return
	}
	for _, id := range ids {
		p, err := programFD(id)
		if err == nil {
			err = detachProgram(cg, p)
			unix.Close(p)
		}
		if err != nil {
			t.Errorf("detach program %d: %v", id, err)
		}
	}
}

// TestRuleKinds applies rule lists of every kind (types, wildcards,
// access combinations, rule order) and checks what a process in the
// cgroup may open and create.
func TestRuleKinds(t *testing.T) {
	dir := cgroup2Dir(t)
	nodes := t.TempDir()
	if err := unix.Mount("tmpfs", nodes, "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", nodes, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(nodes, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", nodes, err)
		}
	})
	for _, n := range []struct {
		name         string
		mode         uint32
		major, minor uint32
	}{{"c1-3", unix.S_IFCHR, 1, 3}, {"c1-5", unix.S_IFCHR, 1, 5}, {"b7-0", unix.S_IFBLK, 7, 0}} {
		if err := unix.Mknod(filepath.Join(nodes, n.name), n.mode|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(nodes, name) }
	ops := []string{
		"r:" + p("c1-3"), "w:" + p("c1-3"), "rw:" + p("c1-3"),
		"r:" + p("c1-5"), "w:" + p("c1-5"),
		"r:" + p("b7-0"), "w:" + p("b7-0"),
		"m:" + p("new") + ":c:1:3", "m:" + p("new") + ":c:1:5", "m:" + p("new") + ":b:7:0",
	}
	// Columns of want: c1:3 r w rw | c1:5 r w | b7:0 r w | mknod c1:3 c1:5 b7:0.
	dev := func(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: ptr(major), Minor: ptr(minor), Access: access}
	}
	cases := []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  string
	}{
		{"none", nil, "DDD DD DD DDD"},
		{"allow all", []specs.LinuxDeviceCgroup{{Allow: true}}, "AAA AA AA AAA"},
		{"c 1:3 rw", []specs.LinuxDeviceCgroup{dev(true, "c", 1, 3, "rw")}, "AAA DD DD DDD"},
		{"c 1:* r", []specs.LinuxDeviceCgroup{dev(true, "c", 1, Any, "r")}, "ADD AD DD DDD"},
		{"c *:3 m", []specs.LinuxDeviceCgroup{dev(true, "c", Any, 3, "m")}, "DDD DD DD ADD"},
		{"b *:* rwm", []specs.LinuxDeviceCgroup{dev(true, "b", Any, Any, "rwm")}, "DDD DD AA DDA"},
		{"a *:* m", []specs.LinuxDeviceCgroup{dev(true, "a", Any, Any, "m")}, "DDD DD DD AAA"},
		{"a 1:* rw", []specs.LinuxDeviceCgroup{dev(true, "a", 1, Any, "rw")}, "AAA AA DD DDD"},
		{"b 7:0 r, c *:5 wr", []specs.LinuxDeviceCgroup{dev(true, "b", 7, 0, "r"), dev(true, "c", Any, 5, "wr")}, "DDD AA AD DDD"},
		{"allow all, deny c 1:3", []specs.LinuxDeviceCgroup{{Allow: true}, dev(false, "c", 1, 3, "")}, "DDD AA AA DAA"},
		{"deny c 1:3 w, allow all", []specs.LinuxDeviceCgroup{dev(false, "c", 1, 3, "w"), {Allow: true}}, "AAA AA AA AAA"},
		// The deny rule matches only requests within its access: rw
		// (needs r too) falls through to the allow rule.
		{"allow all, deny c 1:3 w", []specs.LinuxDeviceCgroup{{Allow: true}, dev(false, "c", 1, 3, "w")}, "ADA AA AA AAA"},
		{"allow c 1:*, deny c 1:5 rw", []specs.LinuxDeviceCgroup{dev(true, "c", 1, Any, "rwm"), dev(false, "c", 1, 5, "rw")}, "AAA DD DD AAD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Apply(dir, c.rules); err != nil {
				t.Fatal(err)
			}
			attachedOne(t, dir)
			want := strings.ReplaceAll(c.want, " ", "")
			if got := runHelper(t, dir, ops); got != want {
				t.Errorf("got  %s\nwant %s\n(ops %s)", got, want, strings.Join(ops, " "))
			}
		})
	}
}
