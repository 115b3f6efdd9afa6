package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// writeWhole writes the file path through a temporary file beside it,
// renamed into place only once fill has written every byte without
// error: path is never left partial, and an old file there stays until
// the new one is complete. The file gets mode 0644 less the umask, as
// os.WriteFile gives. fill's error is returned as it is; the file's own
// operations' name the file.
func writeWhole(path string, fill func(w io.Writer) error) error {
	tmp, err := createBeside(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed; else the leftover
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// createBeside creates a new, uniquely named hidden file in path's
// directory. Not os.CreateTemp: its files are 0600 whatever the umask.
func createBeside(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	for try := 0; ; try++ {
		name := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		return f, err
	}
}

// writeFileAtomic writes data to path whole or not at all (writeWhole).
func writeFileAtomic(path string, data []byte) error {
	return writeWhole(path, func(w io.Writer) error { _, err := w.Write(data); return err })
}
