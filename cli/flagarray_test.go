package cli

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestStringArrayFlag: berth's stringArray flags behave as pflag's: each
// use appends one value, commas are kept, and help names the type.
func TestStringArrayFlag(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var env, none []string
	stringArrayVarP(fs, &env, "env", "e", "set variables")
	stringArrayVarP(fs, &none, "none", "", "never given")
	if err := fs.Parse([]string{"-e", "A=1,2", "--env", "B=3", "-eC"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1,2", "B=3", "C"}; !reflect.DeepEqual(env, want) {
		t.Fatalf("env %q, want %q", env, want)
	}
	if none != nil {
		t.Fatalf("an unused flag's value is %q", none)
	}
	if f := fs.Lookup("env"); f.Value.Type() != "stringArray" || f.DefValue != "[]" {
		t.Fatalf("type %q default %q", f.Value.Type(), f.DefValue)
	}
	if usage := fs.FlagUsages(); !strings.Contains(usage, "--env stringArray") {
		t.Fatalf("help: %s", usage)
	}
	sv, ok := fs.Lookup("env").Value.(pflag.SliceValue)
	if !ok {
		t.Fatal("not a pflag.SliceValue")
	}
	sv.Replace([]string{"X"})
	if got := sv.GetSlice(); !reflect.DeepEqual(got, []string{"X"}) || !reflect.DeepEqual(env, []string{"X"}) {
		t.Fatalf("after Replace: %q %q", got, env)
	}
}
