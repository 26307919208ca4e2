package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
)

// remoteInspect is "image inspect --remote": an image's manifest and config
// read from its registry, without pulling it.
type remoteInspect struct {
	ro       remoteOptions
	on       bool
	raw      bool
	config   bool
	platform string
}

func (ri *remoteInspect) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&ri.on, "remote", false, "inspect images in their registry instead of the store")
	f.BoolVar(&ri.raw, "raw", false, "with --remote: print the manifest or index as the registry sent it")
	f.BoolVar(&ri.config, "config", false, "with --remote: print the image's raw config")
	f.StringVar(&ri.platform, "platform", "", "with --remote: platform to choose from an index (os/arch[/variant])")
	ri.ro.addFlags(cmd, false)
}

// remoteJSON is what "inspect --remote" prints, in the spirit of skopeo
// inspect.
type remoteJSON struct {
	Name         string
	Tag          string `json:",omitempty"`
	Digest       digest.Digest
	MediaType    string
	Created      string `json:",omitempty"`
	Architecture string
	Variant      string `json:",omitempty"`
	Os           string
	Config       ocispec.ImageConfig
	Layers       []ocispec.Descriptor
	// Manifests lists an index's images, when the name is an index.
	Manifests []ocispec.Descriptor `json:",omitempty"`
}

func (ri *remoteInspect) run(cmd *cobra.Command, args []string) error {
	platform := image.DefaultPlatform()
	if ri.platform != "" {
		p, err := image.ParsePlatform(ri.platform)
		if err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
		platform = p
	}
	cfg, err := ri.ro.hostsConfig()
	if err != nil {
		return err
	}
	client := ri.ro.client(cfg, nopRenderer{})
	var out []remoteJSON
	var errs []error
	for _, name := range args {
		ref, err := reference.Parse(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		j, raw, err := ri.inspect(cmd, client, ref, platform)
		if err != nil {
			errs = append(errs, fmt.Errorf("inspect %s: %w", ref.Familiar(), err))
			continue
		}
		if raw != nil {
			// As sent, byte for byte: its sha256 is its digest.
			cmd.OutOrStdout().Write(raw)
			continue
		}
		out = append(out, j)
	}
	if len(out) > 0 {
		data, err := json.MarshalIndent(out, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n", data)
	}
	return errors.Join(errs...)
}

// inspect reads ref's manifest (and config): the summary, or with --raw or
// --config the raw document to print.
func (ri *remoteInspect) inspect(cmd *cobra.Command, client *registry.Client, ref reference.Reference, platform ocispec.Platform) (remoteJSON, []byte, error) {
	ctx := cmd.Context()
	j := remoteJSON{Name: ref.Name(), Tag: ref.Tag}
	repo, err := client.Repository(ref, false)
	if err != nil {
		return j, nil, err
	}
	desc, data, err := repo.Manifest(ctx, ref.Object())
	if err != nil {
		return j, nil, err
	}
	if ri.raw {
		return j, data, nil
	}
	j.Digest, j.MediaType = desc.Digest, desc.MediaType
	kind, err := image.DetectKind(desc.MediaType, data)
	if err != nil {
		return j, nil, err
	}
	if kind == image.KindIndex {
		idx, err := image.ParseIndex(data)
		if err != nil {
			return j, nil, err
		}
		j.Manifests = idx.Manifests
		m, err := image.MatchIndex(idx, platform)
		if err != nil {
			return j, nil, err
		}
		if _, data, err = repo.Manifest(ctx, m.Digest.String()); err != nil {
			return j, nil, err
		}
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		return j, nil, err
	}
	rc, err := repo.OpenBlob(ctx, mf.Config, 0)
	if err != nil {
		return j, nil, fmt.Errorf("config: %w", err)
	}
	defer rc.Close()
	cdata, err := image.ReadBlob(io.Reader(rc), mf.Config, image.MaxConfigSize)
	if err != nil {
		return j, nil, fmt.Errorf("config: %w", err)
	}
	if ri.config {
		return j, cdata, nil
	}
	c, err := image.ParseConfig(cdata)
	if err != nil {
		return j, nil, fmt.Errorf("config: %w", err)
	}
	j.Architecture, j.Variant, j.Os, j.Config, j.Layers = c.Architecture, c.Variant, c.OS, c.Config, mf.Layers
	if c.Created != nil {
		j.Created = c.Created.Format(time.RFC3339Nano)
	}
	return j, nil, nil
}
