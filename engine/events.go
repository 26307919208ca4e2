package engine

import (
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"strconv"
	"strings"

	eventtypes "github.com/moby/moby/api/types/events"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/events"
)

// Events returns the store's event journal (ROOT/events), which every
// berth process that changes a container, image or volume appends to.
func (s *Store) Events() *events.Journal {
	return events.Open(filepath.Join(s.root, "events"), 0)
}

// event records an event of type typ on actor id. Events are a record of
// what happened, not part of it: a failure to record one is logged, and
// the change stands.
func (s *Store) event(ctx context.Context, typ eventtypes.Type, action, id string, attrs map[string]string) {
	if attrs == nil {
		attrs = map[string]string{}
	}
	m := eventtypes.Message{Type: typ, Action: eventtypes.Action(action), Actor: eventtypes.Actor{ID: id, Attributes: attrs}}
	if err := s.Events().Append(m); err != nil {
		slog.WarnContext(ctx, "record event", "type", typ, "action", action, "id", id, "err", err)
	}
}

// containerEvent records a container event with docker's attributes: the
// container's labels, image and name, then the key/value pairs of kv
// (exitCode, signal, execID...).
func (s *Store) containerEvent(ctx context.Context, c *containers.Container, action string, kv ...string) {
	attrs := map[string]string{}
	if c.Config != nil {
		maps.Copy(attrs, c.Config.Labels)
	}
	attrs["image"], attrs["name"] = c.Image, strings.TrimPrefix(c.Name, "/")
	for i := 0; i+1 < len(kv); i += 2 {
		attrs[kv[i]] = kv[i+1]
	}
	s.event(ctx, eventtypes.ContainerEventType, action, c.ID, attrs)
}

// imageEvent records an image event; id is the image ID or reference, as
// docker's; name the reference the action was on.
func (s *Store) imageEvent(ctx context.Context, action, id, name string) {
	s.event(ctx, eventtypes.ImageEventType, action, id, map[string]string{"name": name})
}

// VolumeEvents records a volume event (create, destroy) for each volume
// of names; the volume commands, which work on the volume store directly,
// call it too.
func (s *Store) VolumeEvents(ctx context.Context, action string, names []string) {
	for _, name := range names {
		s.event(ctx, eventtypes.VolumeEventType, action, name, map[string]string{"driver": "local"})
	}
}

// ContainerEvent records a container event that happens outside the
// engine's own functions (attach, which the CLI does).
func (s *Store) ContainerEvent(ctx context.Context, c *containers.Container, action string) {
	s.containerEvent(ctx, c, action)
}

// execEvents records exec_create and exec_start of an exec in c, and
// returns the function that records its exec_die with the exit code.
func (s *Store) execEvents(ctx context.Context, c *containers.Container, o ExecOptions) func(code *int) {
	id, err := newContainerID()
	if err != nil {
		id = ""
	}
	action := ": " + strings.Join(o.Cmd, " ")
	s.containerEvent(ctx, c, "exec_create"+action, "execID", id)
	s.containerEvent(ctx, c, "exec_start"+action, "execID", id)
	return func(code *int) {
		if !o.Detach {
			s.containerEvent(ctx, c, "exec_die", "execID", id, "exitCode", strconv.Itoa(*code))
		}
	}
}

// removeEvents records what an image removal did: untag for each name,
// delete for the image when it was left without names.
func (s *Store) removeEvents(ctx context.Context, id digest.Digest, res RemoveResult) {
	for _, n := range res.Untagged {
		s.imageEvent(ctx, "untag", id.String(), n)
	}
	for _, d := range res.Deleted {
		s.imageEvent(ctx, "delete", d.String(), d.String())
	}
}

// saveEvents records a save event for each image saved.
func (s *Store) saveEvents(ctx context.Context, imgs []savedImage) {
	for _, si := range imgs {
		s.imageEvent(ctx, "save", si.img.ID.String(), si.name)
	}
}
