package devicefilter

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Registers used by the program. R0 holds the verdict, R1 the context
// pointer on entry.
const (
	r0 = iota
	r1
	r2
	r3
	r4
	r5
)

// Instruction is one eBPF instruction (struct bpf_insn in
// include/uapi/linux/bpf.h).
type Instruction struct {
	// OpCode is the instruction class ORed with the operation (or size)
	// and the source (or mode) bits, e.g. BPF_JMP|BPF_JNE|BPF_K.
	OpCode uint8
	// Dst and Src are register numbers (0-10).
	Dst, Src uint8
	// Offset is the memory offset of a load, or for a jump the number of
	// instructions to skip after the jump.
	Offset int16
	// Constant is the immediate operand.
	Constant int32
}

// ldxW loads the u32 at src+off into dst.
func ldxW(dst, src uint8, off int16) Instruction {
	return Instruction{OpCode: unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W, Dst: dst, Src: src, Offset: off}
}

// alu32Imm applies the 32-bit ALU operation op (BPF_AND, BPF_RSH, BPF_MOV…)
// to dst and imm.
func alu32Imm(op uint8, dst uint8, imm int32) Instruction {
	return Instruction{OpCode: unix.BPF_ALU | op | unix.BPF_K, Dst: dst, Constant: imm}
}

// alu32Reg applies the 32-bit ALU operation op to dst and src.
func alu32Reg(op uint8, dst, src uint8) Instruction {
	return Instruction{OpCode: unix.BPF_ALU | op | unix.BPF_X, Dst: dst, Src: src}
}

// jmpImm jumps off instructions ahead when the 64-bit comparison op
// (BPF_JNE, BPF_JEQ…) of dst and imm holds.
func jmpImm(op uint8, dst uint8, imm int32, off int16) Instruction {
	return Instruction{OpCode: unix.BPF_JMP | op | unix.BPF_K, Dst: dst, Offset: off, Constant: imm}
}

// exit returns R0.
func exit() Instruction {
	return Instruction{OpCode: unix.BPF_JMP | unix.BPF_EXIT}
}

// opName is the C operator of an ALU or jump operation, or "".
func opName(class, op uint8) string {
	switch {
	case class == unix.BPF_ALU && op == unix.BPF_AND:
		return "&="
	case class == unix.BPF_ALU && op == unix.BPF_RSH:
		return ">>="
	case class == unix.BPF_ALU && op == unix.BPF_MOV:
		return "="
	case class == unix.BPF_JMP && op == unix.BPF_JNE:
		return "!="
	case class == unix.BPF_JMP && op == unix.BPF_JEQ:
		return "=="
	}
	return ""
}

// String formats the instruction like the kernel verifier log does.
func (i Instruction) String() string {
	class, op, reg := i.OpCode&0x07, i.OpCode&0xf0, i.OpCode&unix.BPF_X != 0
	name := opName(class, op)
	switch {
	case i.OpCode == unix.BPF_LDX|unix.BPF_MEM|unix.BPF_W:
		return fmt.Sprintf("r%d = *(u32 *)(r%d %+d)", i.Dst, i.Src, i.Offset)
	case i.OpCode == unix.BPF_JMP|unix.BPF_EXIT:
		return "exit"
	case name != "" && class == unix.BPF_ALU && reg:
		return fmt.Sprintf("w%d %s w%d", i.Dst, name, i.Src)
	case name != "" && class == unix.BPF_ALU:
		return fmt.Sprintf("w%d %s %d", i.Dst, name, i.Constant)
	case name != "" && !reg:
		return fmt.Sprintf("if r%d %s %d goto %+d", i.Dst, name, i.Constant, i.Offset)
	}
	return fmt.Sprintf("op %#02x dst r%d src r%d off %d imm %d", i.OpCode, i.Dst, i.Src, i.Offset, i.Constant)
}

// kernelInsn is struct bpf_insn as the kernel reads it: the register
// numbers share a byte whose nibble order follows the bitfield order of
// the platform.
type kernelInsn struct {
	code uint8
	regs uint8
	off  int16
	imm  int32
}

// encode converts insns to the kernel's in-memory representation.
func encode(insns []Instruction) []kernelInsn {
	one := uint16(1)
	littleEndian := *(*byte)(unsafe.Pointer(&one)) == 1
	out := make([]kernelInsn, len(insns))
	for n, i := range insns {
		regs := i.Dst&0x0f | i.Src<<4 // __LITTLE_ENDIAN_BITFIELD: dst_reg:4, src_reg:4
		if !littleEndian {
			regs = i.Src&0x0f | i.Dst<<4
		}
		out[n] = kernelInsn{code: i.OpCode, regs: regs, off: i.Offset, imm: i.Constant}
	}
	return out
}
