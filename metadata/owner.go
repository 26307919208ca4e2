package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Owner is the process that owns a lease (see WithOwner).
type Owner struct {
	PID int
	// Start is the process's start time in clock ticks after boot (field
	// 22 of /proc/<pid>/stat): a later process given the same pid has
	// another.
	Start uint64
}

// String returns "pid 1234".
func (o Owner) String() string { return "pid " + strconv.Itoa(o.PID) }

// OwnerOf returns process pid as an Owner, or an error if it is gone.
func OwnerOf(pid int) (Owner, error) {
	start, state, err := procStat(pid)
	if err != nil {
		return Owner{}, err
	}
	if state == 'Z' || state == 'X' {
		return Owner{}, fmt.Errorf("process %d is in state %c", pid, state)
	}
	return Owner{PID: pid, Start: start}, nil
}

// selfOwner returns the calling process as an Owner.
func selfOwner() (Owner, error) {
	return OwnerOf(os.Getpid())
}

// Alive reports whether the owner process still runs: a process with its
// pid exists, has its start time and is not a zombie. When that cannot be
// known (/proc unreadable for another reason than the process being gone,
// as with a hidepid mount) the owner is taken to be alive, so that a lease
// is never dropped for lack of information.
func (o Owner) Alive() bool {
	if o.PID <= 0 {
		return false
	}
	start, state, err := procStat(o.PID)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	return start == o.Start && state != 'Z' && state != 'X'
}

// procStat returns the start time (field 22) and the state (field 3) of
// process pid from /proc/<pid>/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(data)
}

// parseStat parses the contents of /proc/<pid>/stat. Field 2, the command
// name in parentheses, may itself hold spaces and parentheses: the fields
// after it start after its last ')'.
func parseStat(data []byte) (start uint64, state byte, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc stat %q: no command name", data)
	}
	fields := bytes.Fields(data[i+1:]) // fields 3, 4, …
	const startField = 22
	if len(fields) < startField-2 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("parse /proc stat %q: too few fields", data)
	}
	start, err = strconv.ParseUint(string(fields[startField-3]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc stat: start time: %w", err)
	}
	return start, fields[0][0], nil
}
