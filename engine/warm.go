package engine

import (
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/oci"
	"github.com/berth-project/berth/runtime/container"
)

// WarmUp builds, on a goroutine of its own, what the first container
// create and start of this process spend CPU on before anything else can
// use it: encoding/json's encoders and field tables of the container
// record, the OCI spec and the runtime's state (built once per process
// and type; the spec's, with all its nested types, is the largest), and
// those of the default seccomp profile's decoding. A command that is
// about to open the store and create a container calls it first: the
// work then overlaps the store's opening on another core instead of
// lengthening the create. It changes nothing else; the results are
// discarded.
func WarmUp() {
	go func() {
		json.Marshal(&containers.Container{})
		json.Marshal(&specs.Spec{})
		json.Marshal(&container.State{})
		oci.DefaultSeccomp(nil)
	}()
}
