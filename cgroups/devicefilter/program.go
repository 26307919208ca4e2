package devicefilter

import (
	"fmt"
	"math"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Access and type bits of struct bpf_cgroup_dev_ctx.access_type
// (include/uapi/linux/bpf.h): the type is in the low 16 bits, the access
// in the high 16 bits.
const (
	devBlock = unix.BPF_DEVCG_DEV_BLOCK
	devChar  = unix.BPF_DEVCG_DEV_CHAR

	accMknod = unix.BPF_DEVCG_ACC_MKNOD
	accRead  = unix.BPF_DEVCG_ACC_READ
	accWrite = unix.BPF_DEVCG_ACC_WRITE
)

// ParseRules validates the OCI device rules.
func ParseRules(devices []specs.LinuxDeviceCgroup) ([]Rule, error) {
	rules := make([]Rule, 0, len(devices))
	for i, d := range devices {
		r, err := ParseRule(d)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Generate builds the program implementing rules with the cgroup v1
// semantics: the last rule matching a device access decides, and an
// access no rule matches is denied.
func Generate(rules []Rule) ([]Instruction, error) {
	// R1 holds the context: u32 access_type, u32 major, u32 minor.
	insns := []Instruction{
		ldxW(r2, r1, 0),
		alu32Imm(unix.BPF_AND, r2, 0xffff), // device type
		ldxW(r3, r1, 0),
		alu32Imm(unix.BPF_RSH, r3, 16), // requested access
		ldxW(r4, r1, 4),
		ldxW(r5, r1, 8),
	}
	// Later rules override earlier ones: test them first. Each rule is a
	// block whose jumps (all "no match") go to the start of the next
	// block; the last block is the default deny.
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		var b []Instruction
		switch r.Type {
		case 'b':
			b = append(b, jmpImm(unix.BPF_JNE, r2, devBlock, 0))
		case 'c':
			b = append(b, jmpImm(unix.BPF_JNE, r2, devChar, 0))
		}
		var mask int32
		for _, c := range r.Access {
			switch c {
			case 'r':
				mask |= accRead
			case 'w':
				mask |= accWrite
			case 'm':
				mask |= accMknod
			}
		}
		if mask != accRead|accWrite|accMknod {
			// Match only when every requested access bit is allowed by
			// the rule.
			b = append(b,
				alu32Reg(unix.BPF_MOV, r1, r3),
				alu32Imm(unix.BPF_AND, r1, ^mask&(accRead|accWrite|accMknod)),
				jmpImm(unix.BPF_JNE, r1, 0, 0),
			)
		}
		for _, n := range []struct {
			v   int64
			reg uint8
		}{{r.Major, r4}, {r.Minor, r5}} {
			if n.v == Any {
				continue
			}
			if n.v > math.MaxInt32 {
				return nil, fmt.Errorf("device rule %d: device number %d is too large", i, n.v)
			}
			b = append(b, jmpImm(unix.BPF_JNE, n.reg, int32(n.v), 0))
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		b = append(b, alu32Imm(unix.BPF_MOV, r0, verdict), exit())
		for j := range b {
			if b[j].OpCode&0x07 == unix.BPF_JMP && b[j].OpCode != unix.BPF_JMP|unix.BPF_EXIT {
				b[j].Offset = int16(len(b) - j - 1) // to the next block
			}
		}
		insns = append(insns, b...)
		if len(b) == 2 {
			// The rule matches every access: earlier rules and the
			// default are unreachable, which the verifier rejects.
			return insns, nil
		}
	}
	return append(insns, alu32Imm(unix.BPF_MOV, r0, 0), exit()), nil
}
