package engine

import (
	"context"
	"fmt"
)

// VolumeUsers returns the IDs of the containers, running or not, that
// mount the volume name, oldest first: the containers that keep
// `volume rm` from removing it.
func (s *Store) VolumeUsers(ctx context.Context, name string) ([]string, error) {
	list, err := s.db.ListContainers(ctx)
	if err != nil {
		return nil, fmt.Errorf("containers using volume %s: %w", name, err)
	}
	var ids []string
	for _, c := range list {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				ids = append(ids, c.ID)
				break
			}
		}
	}
	return ids, nil
}
