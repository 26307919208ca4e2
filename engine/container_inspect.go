package engine

import (
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-project/berth/containers"
)

// Inspect returns c in docker's inspect shape.
func (s *Store) Inspect(c *containers.Container) container.InspectResponse {
	dir := s.containerDir(c.ID)
	st := c.State
	state := &container.State{
		Status:     container.ContainerState(st.Status),
		Running:    st.Status == containers.Running || st.Status == containers.Paused || st.Status == containers.Restarting, // docker's: restarting counts as running
		Paused:     st.Status == containers.Paused,
		Restarting: st.Status == containers.Restarting,
		OOMKilled:  st.OOMKilled,
		Dead:       st.Status == containers.Dead,
		Pid:        st.Pid,
		ExitCode:   st.ExitCode,
		Error:      st.Error,
		StartedAt:  dockerTime(st.StartedAt),
		FinishedAt: dockerTime(st.FinishedAt),
	}
	if h := st.Health; h != nil {
		state.Health = &container.Health{Status: container.HealthStatus(h.Status), FailingStreak: h.FailingStreak}
		for _, r := range h.Log {
			state.Health.Log = append(state.Health.Log, &container.HealthcheckResult{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
		}
	}
	var path string
	var args []string
	if cmd := append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...); len(cmd) > 0 {
		path, args = cmd[0], cmd[1:]
	}
	if args == nil {
		args = []string{}
	}
	mounts := []container.MountPoint{}
	for _, m := range c.Mounts {
		mp := container.MountPoint{Type: mount.Type(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination,
			RW: !m.ReadOnly, Propagation: mount.Propagation(m.Propagation)}
		if m.Type == "volume" {
			mp.Driver = "local"
		}
		if m.ReadOnly {
			mp.Mode = "ro"
		}
		mounts = append(mounts, mp)
	}
	driver := "native"
	if s.overlay {
		driver = "overlay2"
	}
	ports := container.NetworkSettings{Networks: nil}
	if c.NetworkSettings != nil {
		ports = *c.NetworkSettings
	} else if len(c.Endpoints) > 0 {
		ports.Networks = c.Endpoints // the networks it will join, as docker shows a created container's
	}
	return container.InspectResponse{
		ID:              c.ID,
		Created:         c.Created.Format(time.RFC3339Nano),
		Path:            path,
		Args:            args,
		State:           state,
		Image:           c.ImageID.String(),
		ResolvConfPath:  filepath.Join(dir, "resolv.conf"),
		HostnamePath:    filepath.Join(dir, "hostname"),
		HostsPath:       filepath.Join(dir, "hosts"),
		LogPath:         s.LogPath(c),
		Name:            "/" + c.Name,
		RestartCount:    st.RestartCount,
		Driver:          driver,
		Platform:        "linux",
		ExecIDs:         nil,
		HostConfig:      c.HostConfig,
		GraphDriver:     &storage.DriverData{Name: driver, Data: map[string]string{"MergedDir": filepath.Join(dir, "rootfs")}},
		Mounts:          mounts,
		Config:          c.Config,
		NetworkSettings: &ports,
	}
}

// LogPath is where the container's json-file log is ("" with
// --log-driver none).
func (s *Store) LogPath(c *containers.Container) string {
	if c.HostConfig.LogConfig.Type == "none" {
		return ""
	}
	return filepath.Join(s.containerDir(c.ID), c.ID+"-json.log")
}

// dockerTime formats t as docker does, the zero time as
// "0001-01-01T00:00:00Z".
func dockerTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
