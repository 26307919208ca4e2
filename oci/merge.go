package oci

import (
	"errors"
	"maps"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// ErrNoCommand is returned by [Merge] when neither the user nor the image
// gives a program to run.
var ErrNoCommand = errors.New("no command specified")

// Merge applies docker's create-time merge of the image's config img into
// the user's config cfg, in place. img is docker's image config: the OCI
// image config plus docker's Healthcheck, OnBuild and Shell (an engine that
// has only an ocispec.ImageConfig passes
// dockerspec.DockerOCIImageConfig{ImageConfig: c}).
//
// The rules are docker's:
//   - Env: the user's variables, then the image's whose name the user did
//     not set.
//   - Entrypoint and Cmd: a user Entrypoint replaces the image's and drops
//     the image's Cmd (the user's Cmd, if any, stays); otherwise the
//     image's Entrypoint is used and Cmd is the user's or else the
//     image's. An Entrypoint of [""] (docker run --entrypoint "") resets
//     the image's Entrypoint and keeps the image's Cmd.
//   - User, WorkingDir, StopSignal, OnBuild, Shell: the user's, else the
//     image's.
//   - Healthcheck: the user's fields over the image's; Test ["NONE"] is
//     kept as is and means disabled.
//   - Volumes, ExposedPorts: union. Labels: the image's under the user's.
//
// Merge returns [ErrNoCommand] when the result has neither Entrypoint nor
// Cmd.
func Merge(cfg *container.Config, img dockerspec.DockerOCIImageConfig) error {
	if cfg.User == "" {
		cfg.User = img.User
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	if len(cfg.OnBuild) == 0 {
		cfg.OnBuild = img.OnBuild
	}
	if len(cfg.Shell) == 0 {
		cfg.Shell = img.Shell
	}

	cfg.Env = mergeEnv(cfg.Env, img.Env)

	if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		// --entrypoint "": no entrypoint at all, not the image's.
		cfg.Entrypoint = []string{}
	}
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = img.Cmd
			cfg.ArgsEscaped = img.ArgsEscaped
		}
		if cfg.Entrypoint == nil {
			cfg.Entrypoint = img.Entrypoint
		}
	}

	for p := range img.ExposedPorts {
		port, err := network.ParsePort(p)
		if err != nil {
			// docker ignores what it cannot parse in an image.
			continue
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		cfg.ExposedPorts[port] = struct{}{}
	}
	if len(img.Volumes) > 0 {
		if cfg.Volumes == nil {
			cfg.Volumes = make(map[string]struct{}, len(img.Volumes))
		}
		maps.Copy(cfg.Volumes, img.Volumes)
	}
	for k, v := range img.Labels {
		if cfg.Labels == nil {
			cfg.Labels = make(map[string]string, len(img.Labels))
		}
		if _, ok := cfg.Labels[k]; !ok {
			cfg.Labels[k] = v
		}
	}
	cfg.Healthcheck = mergeHealth(cfg.Healthcheck, img.Healthcheck)

	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return ErrNoCommand
	}
	return nil
}

// envKey is the name part of a NAME=value environment entry.
func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// mergeEnv returns user's variables followed by image's whose names user
// does not set.
func mergeEnv(user, image []string) []string {
	if len(user) == 0 {
		return append([]string(nil), image...)
	}
	seen := make(map[string]bool, len(user))
	for _, kv := range user {
		seen[envKey(kv)] = true
	}
	out := append([]string(nil), user...)
	for _, kv := range image {
		if !seen[envKey(kv)] {
			out = append(out, kv)
		}
	}
	return out
}

func mergeHealth(user, image *container.HealthConfig) *container.HealthConfig {
	if image == nil {
		return user
	}
	if user == nil {
		h := *image
		h.Test = append([]string(nil), image.Test...)
		return &h
	}
	if len(user.Test) == 0 {
		user.Test = append([]string(nil), image.Test...)
	}
	if user.Interval == 0 {
		user.Interval = image.Interval
	}
	if user.Timeout == 0 {
		user.Timeout = image.Timeout
	}
	if user.StartPeriod == 0 {
		user.StartPeriod = image.StartPeriod
	}
	if user.StartInterval == 0 {
		user.StartInterval = image.StartInterval
	}
	if user.Retries == 0 {
		user.Retries = image.Retries
	}
	return user
}
