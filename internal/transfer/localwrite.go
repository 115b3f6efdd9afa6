package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
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
		tmp := partialName(w.final)
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

// hpcml's own temporary files are named ".hpcml-<16 hex digits>.partial"
// in the directory of the file being written: a marker no user file is
// expected to carry, so that a destination's listing can remove the ones
// a killed write left (a kill between the link and the rename that
// replace a file, or any kill where the file system cannot make unnamed
// files) without ever taking a user's file for one. The name does not
// include the final name, so that it fits whatever that name's length.
//
// Versions before this one left fileblob's "<name>.<hex>.tmp" instead.
// Those are no longer recognised: a user's own file can look like that
// (it was deleted and copied again on every sync), and a stray leftover
// of an old version is a lesser harm than deleting user data. Writes
// that still go through fileblob (keys it must escape) leave such names
// when killed; they are left alone likewise.
var partialRE = regexp.MustCompile(`^\.hpcml-[0-9a-f]{16}\.partial$`)

// isPartial reports whether a key (slash-separated) names one of hpcml's
// temporary files.
func isPartial(key string) bool { return partialRE.MatchString(path.Base(key)) }

// partialName is a fresh temporary name in the directory of final.
func partialName(final string) string {
	return filepath.Join(filepath.Dir(final), fmt.Sprintf(".hpcml-%016x.partial", rand.Uint64()))
}

// tempnameWriter writes a local file under a temporary name (see
// partialRE) and renames it over its final name when complete: the way
// where O_TMPFILE cannot be used. A failed write removes its temporary
// file; a killed one leaves it for the next sync to remove.
type tempnameWriter struct {
	f          *os.File
	tmp, final string
	mtime      time.Time
}

func newTempnameWriter(final string, mtime time.Time) (*tempnameWriter, error) {
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		tmp := partialName(final)
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue // 64 random bits taken: try other ones
		}
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: final, Err: pathErrno(err)}
		}
		return &tempnameWriter{f: f, tmp: tmp, final: final, mtime: mtime}, nil
	}
}

// Write names the final file in its errors (a full disk is reported as
// writing it), not the temporary one, which the user never asked for.
func (w *tempnameWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = &os.PathError{Op: "write", Path: w.final, Err: pathErrno(err)}
	}
	return n, err
}

// WriteAt, for ranged downloads; errors as Write's.
func (w *tempnameWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.f.WriteAt(p, off)
	if err != nil {
		err = &os.PathError{Op: "write", Path: w.final, Err: pathErrno(err)}
	}
	return n, err
}

func (w *tempnameWriter) Abort() {
	w.f.Close()
	os.Remove(w.tmp)
}

func (w *tempnameWriter) Commit() error {
	err := w.f.Close() // NFS reports a full disk here
	if err != nil {
		err = &os.PathError{Op: "close", Path: w.final, Err: pathErrno(err)}
	}
	if err == nil && !w.mtime.IsZero() {
		if err = os.Chtimes(w.tmp, w.mtime, w.mtime); err != nil {
			err = fmt.Errorf("set time of %s: %w", w.final, err)
		}
	}
	if err == nil {
		err = os.Rename(w.tmp, w.final)
	}
	if err != nil {
		os.Remove(w.tmp)
		return err
	}
	return nil
}

// pathErrno is the error inside a *os.PathError (err itself otherwise).
func pathErrno(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
