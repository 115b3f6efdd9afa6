package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeWhole writes the file path through a temporary file beside it
// (mode 0644), renamed into place only once fill has written every byte
// without error: path is never left partial, and an old file there stays
// until the new one is complete.
func writeWhole(path string, fill func(w io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed; else the leftover
	err = tmp.Chmod(0o644)
	if err == nil {
		err = fill(tmp)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic writes data to path whole or not at all (writeWhole).
func writeFileAtomic(path string, data []byte) error {
	return writeWhole(path, func(w io.Writer) error { _, err := w.Write(data); return err })
}
