package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// writeOnce creates path (mode 0600) holding data, only if it does not
// exist yet, and returns what path holds afterwards: data, or what was
// there before. The bytes go to a temporary file that is linked into
// place whole, so a kill at any moment leaves either no file or a
// complete one, never an empty file that a restart would take as given.
func writeOnce(path string, data []byte) ([]byte, error) {
	if old, err := os.ReadFile(path); err == nil {
		return old, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	// The new name survives a power loss only once its directory is on
	// disk (a server-id lost so would orphan the scratch dir it owns).
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	// Ours, or another writer's that got there first.
	return os.ReadFile(path)
}
