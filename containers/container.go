package containers

import (
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	digest "github.com/opencontainers/go-digest"
)

// Container is one container of the engine.
type Container struct {
	ID      string // 64 hex digits
	Name    string // without docker's leading "/"
	Created time.Time
	// Image is the image's name as the user gave it; ImageID is the
	// digest of its config (docker's image ID).
	Image   string
	ImageID digest.Digest
	// Config is the merged config: the image's defaults with the user's
	// options over them, as docker shows it in inspect.
	Config     *container.Config
	HostConfig *container.HostConfig
	// Mounts are the container's binds, volumes and tmpfs mounts,
	// resolved at create from HostConfig (Binds, Mounts, Tmpfs) and the
	// image's volumes.
	Mounts []Mount
	State  State
	// NetworkSettings are the running container's network namespace,
	// endpoints (address, gateway, MAC per network) and published ports,
	// in docker's inspect shape; nil when it is not running or has no
	// network of berth's.
	NetworkSettings *container.NetworkSettings `json:",omitempty"`
	// Endpoints are the networks the container joins when it starts,
	// by name, with the user's settings for each (Aliases, IPAMConfig's
	// fixed addresses, MacAddress): the network of its network mode and
	// those of network connect. nil for a record made before berth kept
	// them: the network mode's network alone.
	Endpoints map[string]*network.EndpointSettings
}

// Mount is one resolved mount of a container.
type Mount struct {
	Type        string // "bind", "volume" or "tmpfs"
	Name        string `json:",omitempty"` // the volume's name
	Source      string `json:",omitempty"` // host path: the bind's source, the volume's directory
	Destination string
	ReadOnly    bool     `json:",omitempty"`
	Propagation string   `json:",omitempty"`
	Options     []string `json:",omitempty"` // tmpfs options (size=, mode=)
	// Anonymous volumes are removed with the container by rm -v and
	// --rm; NoCopy skips seeding a new volume from the image.
	Anonymous bool `json:",omitempty"`
	NoCopy    bool `json:",omitempty"`
}

// Status is a container's status, in docker's words.
type Status string

// The statuses of a container.
const (
	Created    Status = "created"
	Running    Status = "running"
	Paused     Status = "paused"
	Restarting Status = "restarting"
	Removing   Status = "removing"
	Exited     Status = "exited"
	Dead       Status = "dead"
)

// State is what berth knows of a container's life.
type State struct {
	Status     Status
	Pid        int // the container's init on the host, 0 when not running
	ExitCode   int
	Error      string // why the container stopped, when berth knows a reason beyond its exit code
	StartedAt  time.Time
	FinishedAt time.Time
	OOMKilled  bool
	// RestartCount counts restarts by the restart policy.
	RestartCount int
	// Monitor is the process that holds the container's stdio and
	// waits for it; BootID is the host's boot the container runs in.
	MonitorPID   int
	MonitorStart uint64
	BootID       string
	Health       *Health `json:",omitempty"`
	// ManuallyStopped is set by stop, kill and rm -f and cleared by
	// start: the restart policy leaves alone a container the user
	// stopped (docker's HasBeenManuallyStopped).
	ManuallyStopped bool `json:",omitempty"`
	// RestartDelay is the restart policy's current backoff: 100 ms,
	// doubled by each restart of a container that ran less than 10 s.
	RestartDelay time.Duration `json:",omitempty"`
}

// Health is the result of a container's health checks.
type Health struct {
	Status        string // starting, healthy, unhealthy
	FailingStreak int
	Log           []HealthResult
}

// HealthResult is one health check's outcome.
type HealthResult struct {
	Start    time.Time
	End      time.Time
	ExitCode int
	Output   string
}
