package oci

import (
	"errors"
	"reflect"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestMerge(t *testing.T) {
	img := dockerspec.DockerOCIImageConfig{
		ImageConfig: ocispec.ImageConfig{
			User:         "app",
			Env:          []string{"PATH=/img/bin", "A=img", "B=img"},
			Entrypoint:   []string{"/entry"},
			Cmd:          []string{"img-cmd"},
			WorkingDir:   "/work",
			StopSignal:   "SIGQUIT",
			Volumes:      map[string]struct{}{"/data": {}},
			Labels:       map[string]string{"a": "img", "b": "img"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
		},
		DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{
			Healthcheck: &dockerspec.HealthcheckConfig{Test: []string{"CMD", "true"}, Interval: time.Second, Retries: 3},
		},
	}
	tests := []struct {
		name  string
		user  container.Config
		check func(t *testing.T, c *container.Config)
	}{
		{"image defaults", container.Config{}, func(t *testing.T, c *container.Config) {
			eq(t, "Entrypoint", c.Entrypoint, []string{"/entry"})
			eq(t, "Cmd", c.Cmd, []string{"img-cmd"})
			eq(t, "User", c.User, "app")
			eq(t, "WorkingDir", c.WorkingDir, "/work")
			eq(t, "StopSignal", c.StopSignal, "SIGQUIT")
			eq(t, "Env", c.Env, []string{"PATH=/img/bin", "A=img", "B=img"})
			eq(t, "Volumes", c.Volumes, map[string]struct{}{"/data": {}})
			eq(t, "Labels", c.Labels, map[string]string{"a": "img", "b": "img"})
			eq(t, "ExposedPorts", c.ExposedPorts, network.PortSet{network.MustParsePort("80/tcp"): {}})
			eq(t, "Healthcheck.Test", c.Healthcheck.Test, []string{"CMD", "true"})
		}},
		{"user cmd keeps image entrypoint", container.Config{Cmd: []string{"mine"}}, func(t *testing.T, c *container.Config) {
			eq(t, "Entrypoint", c.Entrypoint, []string{"/entry"})
			eq(t, "Cmd", c.Cmd, []string{"mine"})
		}},
		{"user entrypoint drops image cmd", container.Config{Entrypoint: []string{"/bin/sh"}}, func(t *testing.T, c *container.Config) {
			eq(t, "Entrypoint", c.Entrypoint, []string{"/bin/sh"})
			eq(t, "Cmd", len(c.Cmd), 0)
		}},
		{"user entrypoint and cmd", container.Config{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "x"}}, func(t *testing.T, c *container.Config) {
			eq(t, "Entrypoint", c.Entrypoint, []string{"/bin/sh"})
			eq(t, "Cmd", c.Cmd, []string{"-c", "x"})
		}},
		{"empty entrypoint resets it, keeps image cmd", container.Config{Entrypoint: []string{""}}, func(t *testing.T, c *container.Config) {
			eq(t, "Entrypoint", len(c.Entrypoint), 0)
			eq(t, "Cmd", c.Cmd, []string{"img-cmd"})
		}},
		{"env override by key, user first", container.Config{Env: []string{"B=user", "C=user"}}, func(t *testing.T, c *container.Config) {
			eq(t, "Env", c.Env, []string{"B=user", "C=user", "PATH=/img/bin", "A=img"})
		}},
		{"user fields win", container.Config{User: "1000:1000", WorkingDir: "/u", StopSignal: "SIGTERM"}, func(t *testing.T, c *container.Config) {
			eq(t, "User", c.User, "1000:1000")
			eq(t, "WorkingDir", c.WorkingDir, "/u")
			eq(t, "StopSignal", c.StopSignal, "SIGTERM")
		}},
		{"labels: image under user", container.Config{Labels: map[string]string{"b": "user", "c": "user"}}, func(t *testing.T, c *container.Config) {
			eq(t, "Labels", c.Labels, map[string]string{"a": "img", "b": "user", "c": "user"})
		}},
		{"volumes and ports union", container.Config{Volumes: map[string]struct{}{"/u": {}}, ExposedPorts: network.PortSet{network.MustParsePort("53/udp"): {}}}, func(t *testing.T, c *container.Config) {
			eq(t, "Volumes", c.Volumes, map[string]struct{}{"/data": {}, "/u": {}})
			eq(t, "ExposedPorts", c.ExposedPorts, network.PortSet{network.MustParsePort("80/tcp"): {}, network.MustParsePort("53/udp"): {}})
		}},
		{"healthcheck: user fields over image", container.Config{Healthcheck: &container.HealthConfig{Timeout: 5 * time.Second, Retries: 7}}, func(t *testing.T, c *container.Config) {
			eq(t, "Test", c.Healthcheck.Test, []string{"CMD", "true"})
			eq(t, "Interval", c.Healthcheck.Interval, time.Second)
			eq(t, "Timeout", c.Healthcheck.Timeout, 5*time.Second)
			eq(t, "Retries", c.Healthcheck.Retries, 7)
		}},
		{"healthcheck NONE kept", container.Config{Healthcheck: &container.HealthConfig{Test: []string{"NONE"}}}, func(t *testing.T, c *container.Config) {
			eq(t, "Test", c.Healthcheck.Test, []string{"NONE"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.user
			if err := Merge(&c, img); err != nil {
				t.Fatal(err)
			}
			tt.check(t, &c)
		})
	}
	// The image's maps are not shared with the result.
	c := container.Config{}
	if err := Merge(&c, img); err != nil {
		t.Fatal(err)
	}
	c.Labels["new"] = "x"
	if _, ok := img.Labels["new"]; ok {
		t.Error("Merge shares the image's Labels map with the config")
	}
}

func TestMergeNoCommand(t *testing.T) {
	c := container.Config{}
	err := Merge(&c, dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{Env: []string{"A=b"}}})
	if !errors.Is(err, ErrNoCommand) || err.Error() != "no command specified" {
		t.Fatalf("Merge without command: %v, want %q", err, "no command specified")
	}
	c = container.Config{Entrypoint: []string{""}}
	if err := Merge(&c, dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{Entrypoint: []string{"/e"}}}); !errors.Is(err, ErrNoCommand) {
		t.Fatalf("Merge with reset entrypoint and no cmd: %v, want ErrNoCommand", err)
	}
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}
