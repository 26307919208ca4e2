package testregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Ref returns the docker:// transport reference skopeo uses for ref
// ("busybox:latest") in this registry.
func (r *Registry) Ref(ref string) string {
	return "docker://" + r.Host + "/" + ref
}

// SkopeoFlags returns skopeo's flags for reaching this registry: TLS
// verification against CertsDir (or --tls-verify=false for plain HTTP)
// and, with creds, --creds. prefix is "" for inspect and delete, "src-"
// or "dest-" for copy.
func (r *Registry) SkopeoFlags(prefix string, creds bool) []string {
	var flags []string
	if r.opts.TLS {
		flags = append(flags, "--"+prefix+"tls-verify=true", "--"+prefix+"cert-dir", filepath.Join(r.CertsDir, r.Host))
	} else {
		flags = append(flags, "--"+prefix+"tls-verify=false")
	}
	if creds && r.Username != "" {
		flags = append(flags, "--"+prefix+"creds", r.Username+":"+r.Password)
	}
	return flags
}

// Skopeo runs skopeo with args, isolated from the host's configuration:
// an accept-anything policy, an empty registries.conf (no mirrors or
// search list), no lookaside config and no stored credentials (the auth
// file flags point at an empty file), with temporary files under the
// test's directory. It returns
// standard output, and on failure an error holding standard error.
func Skopeo(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoSkopeo, err)
	}
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	regConf := filepath.Join(dir, "registries.conf")
	authFile := filepath.Join(dir, "auth.json")
	for path, data := range map[string]string{
		policy:   `{"default":[{"type":"insecureAcceptAnything"}]}`,
		regConf:  "",
		authFile: "{}",
	} {
		if err := writeFile(path, []byte(data), 0o600); err != nil {
			return nil, err
		}
	}
	full := []string{"--policy", policy, "--registries.d", dir, "--tmpdir", dir}
	if len(args) > 0 {
		full = append(full, args[0])
		switch args[0] {
		case "copy", "sync":
			full = append(full, "--src-authfile", authFile, "--dest-authfile", authFile)
		case "inspect", "delete", "list-tags":
			full = append(full, "--authfile", authFile)
		}
		full = append(full, args[1:]...)
	}
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+authFile, "DOCKER_CONFIG="+dir, "CONTAINERS_REGISTRIES_CONF="+regConf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("skopeo %s: %w\n%s", strings.Join(full, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Seed copies the OCI layout at layoutDir (its only image, or the one
// whose ref.name annotation matches ref's tag) into the registry as ref
// ("busybox:latest" becomes Host/busybox:latest), keeping manifest and
// blob digests. It fails t on error.
func (r *Registry) Seed(t testing.TB, layoutDir, ref string) {
	t.Helper()
	src := "oci:" + layoutDir
	if tag := tagOf(ref); tag != "" && layoutHasTag(layoutDir, tag) {
		src += ":" + tag
	}
	args := []string{"copy", "--quiet", "--preserve-digests"}
	args = append(args, r.SkopeoFlags("dest-", true)...)
	args = append(args, src, r.Ref(ref))
	if _, err := Skopeo(t, args...); err != nil {
		t.Fatalf("testregistry: seed %s from %s: %v", r.Ref(ref), layoutDir, err)
	}
}

// ManifestDigest returns the digest of ref's manifest (or index) as the
// registry serves it, read with skopeo inspect --raw. It fails t on error.
func (r *Registry) ManifestDigest(t testing.TB, ref string) digest.Digest {
	t.Helper()
	args := append([]string{"inspect", "--raw"}, r.SkopeoFlags("", true)...)
	out, err := Skopeo(t, append(args, r.Ref(ref))...)
	if err != nil {
		t.Fatalf("testregistry: manifest digest of %s: %v", r.Ref(ref), err)
	}
	return digest.FromBytes(out)
}

// tagOf returns the tag of "name:tag", or "" for a name or digest
// reference.
func tagOf(ref string) string {
	if strings.Contains(ref, "@") {
		return ""
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ""
	}
	return ref[i+1:]
}

// layoutHasTag says whether the layout's index.json names an image tag
// (an org.opencontainers.image.ref.name annotation).
func layoutHasTag(layoutDir, tag string) bool {
	data, err := os.ReadFile(filepath.Join(layoutDir, "index.json"))
	if err != nil {
		return false
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return false
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == tag {
			return true
		}
	}
	return false
}
