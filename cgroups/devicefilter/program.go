package devicefilter

import (
	"fmt"
	"math"

	"github.com/cilium/ebpf/asm"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Access and type bits of struct bpf_cgroup_dev_ctx.access_type
// (include/uapi/linux/bpf.h): the type is in the low 16 bits, the access
// in the high 16 bits.
const (
	devBlock = 1 // BPF_DEVCG_DEV_BLOCK
	devChar  = 2 // BPF_DEVCG_DEV_CHAR

	accMknod = 1 // BPF_DEVCG_ACC_MKNOD
	accRead  = 2 // BPF_DEVCG_ACC_READ
	accWrite = 4 // BPF_DEVCG_ACC_WRITE
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
func Generate(rules []Rule) (asm.Instructions, error) {
	// R1 holds the context: u32 access_type, u32 major, u32 minor.
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.And.Imm32(asm.R2, 0xffff), // device type
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.RSh.Imm32(asm.R3, 16), // requested access
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word),
	}
	block := 0
	label := func(n int) string { return fmt.Sprintf("block%d", n) }
	// Later rules override earlier ones: test them first.
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		next := label(block + 1)
		var b asm.Instructions
		switch r.Type {
		case 'b':
			b = append(b, asm.JNE.Imm(asm.R2, devBlock, next))
		case 'c':
			b = append(b, asm.JNE.Imm(asm.R2, devChar, next))
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
				asm.Mov.Reg32(asm.R1, asm.R3),
				asm.And.Imm32(asm.R1, ^mask&(accRead|accWrite|accMknod)),
				asm.JNE.Imm(asm.R1, 0, next),
			)
		}
		for _, n := range []struct {
			v   int64
			reg asm.Register
		}{{r.Major, asm.R4}, {r.Minor, asm.R5}} {
			if n.v == Any {
				continue
			}
			if n.v > math.MaxInt32 {
				return nil, fmt.Errorf("device rule %d: device number %d is too large", i, n.v)
			}
			b = append(b, asm.JNE.Imm(n.reg, int32(n.v), next))
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		b = append(b, asm.Mov.Imm32(asm.R0, verdict), asm.Return())
		if block > 0 {
			b[0] = b[0].WithSymbol(label(block))
		}
		insns = append(insns, b...)
		block++
		if len(b) == 2 {
			// The rule matches every access: earlier rules and the
			// default are unreachable, which the verifier rejects.
			return insns, nil
		}
	}
	def := asm.Instructions{asm.Mov.Imm32(asm.R0, 0), asm.Return()}
	if block > 0 {
		def[0] = def[0].WithSymbol(label(block))
	}
	return append(insns, def...), nil
}
