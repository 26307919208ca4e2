package cli

import (
	"strings"

	"github.com/spf13/pflag"
)

// stringArrayVarP is pflag's StringArrayVarP with no default: each use of
// the flag appends one value, commas included. pflag renders every
// stringArray's default through encoding/csv when the flag is defined,
// which for run's and create's two dozen of them cost about 2 ms of every
// berth command's start (all commands are built for each one).
func stringArrayVarP(fs *pflag.FlagSet, p *[]string, name, short, usage string) {
	fs.VarP(&stringArray{p: p}, name, short, usage)
}

// stringArray is a pflag.Value like pflag's stringArray.
type stringArray struct{ p *[]string }

func (s *stringArray) Set(v string) error { *s.p = append(*s.p, v); return nil }
func (s *stringArray) Type() string       { return "stringArray" }

// String is the values in pflag's form, [a,b] (only shown in help, for
// non-empty defaults, which these flags have not).
func (s *stringArray) String() string { return "[" + strings.Join(*s.p, ",") + "]" }

// Append, Replace and GetSlice make it a pflag.SliceValue, as pflag's is.
func (s *stringArray) Append(v string) error     { return s.Set(v) }
func (s *stringArray) Replace(vs []string) error { *s.p = append([]string(nil), vs...); return nil }
func (s *stringArray) GetSlice() []string        { return append([]string(nil), *s.p...) }
