package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// objectWriter writes one object: nothing is visible under its name
// until Commit; Abort (or a crash) leaves nothing behind.
type objectWriter interface {
	Write(p []byte) (int, error)
	Commit() error
	Abort()
}

// tmpfileWriter writes a local file as an unnamed inode (O_TMPFILE) in
// its directory and links it under its name when complete, with the
// source's time already set: no temporary name to create, rename or
// clean up after a kill — the kernel frees an unlinked inode by itself.
type tmpfileWriter struct {
	f     *os.File
	final string
	mtime time.Time
}

// errNoTmpfile: the file system cannot make unnamed files; the caller
// writes through a temporary name instead.
var errNoTmpfile = errors.New("O_TMPFILE not supported")

func newTmpfileWriter(final string, mtime time.Time) (*tmpfileWriter, error) {
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Read-write: a ranged download hashes the parts back as they land.
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, errNoTmpfile
		}
		return nil, &os.PathError{Op: "create", Path: final, Err: err}
	}
	return &tmpfileWriter{f: os.NewFile(uintptr(fd), final), final: final, mtime: mtime}, nil
}

func (w *tmpfileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *tmpfileWriter) WriteAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }

func (w *tmpfileWriter) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

func (w *tmpfileWriter) Abort() { w.f.Close() }

func (w *tmpfileWriter) Commit() error {
	defer w.f.Close()
	self := "/proc/self/fd/" + strconv.Itoa(int(w.f.Fd()))
	if !w.mtime.IsZero() {
		if err := os.Chtimes(self, w.mtime, w.mtime); err != nil {
			return fmt.Errorf("set time of %s: %w", w.final, err)
		}
	}
	err := unix.Linkat(unix.AT_FDCWD, self, unix.AT_FDCWD, w.final, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		// Replacing a file: link under a temporary name, then rename over
		// the old one, which readers see replaced whole.
		tmp := w.final + "." + strconv.FormatInt(time.Now().UnixNano(), 16) + ".tmp"
		if err = unix.Linkat(unix.AT_FDCWD, self, unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW); err == nil {
			if err = os.Rename(tmp, w.final); err != nil {
				os.Remove(tmp)
			}
		}
	}
	if err != nil {
		return &os.PathError{Op: "link", Path: w.final, Err: err}
	}
	return nil
}

// plainKey reports whether a key maps to the same relative path in
// gocloud's fileblob (which escapes odd keys), so that a file written
// directly lists back under its key.
func plainKey(key string) bool {
	if key == "" || !filepath.IsLocal(key) || strings.Contains(key, "__0x") || strings.Contains(key, "//") ||
		strings.HasSuffix(key, "/") {
		return false
	}
	for _, c := range key {
		if c < 32 {
			return false
		}
	}
	return true
}
