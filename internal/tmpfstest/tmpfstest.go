// Package tmpfstest mounts small tmpfs file systems for tests that need
// a disk that fills up. Mounting needs root: CI runs as root, so there a
// test that cannot mount fails (a skipped test would pass without
// testing anything); elsewhere it is skipped. It is not part of the
// product.
package tmpfstest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size (as mount's size=, e.g. "2m") on a new
// temp dir, unmounted when the test ends, and returns the dir.
func Mount(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		require(t, fmt.Errorf("mounting a tmpfs needs root (running as uid %d)", os.Geteuid()))
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0755"); err != nil {
		require(t, fmt.Errorf("mount -t tmpfs -o size=%s %s: %w", size, dir, err))
	}
	// Registered after TempDir's removal, so run before it.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH) // a file still open: unmount when closed
		}
	})
	return dir
}

// Resize changes the size of a tmpfs mounted by Mount (files kept).
func Resize(t testing.TB, dir, size string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, "size="+size); err != nil {
		t.Fatalf("remount %s with size=%s: %v", dir, size, err)
	}
}

// Used is the bytes of a file system's blocks in use.
func Used(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

func require(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("this test needs a tmpfs it can fill, and CI (which runs as root) must run it: %v", err)
	}
	t.Skipf("needs root to mount a tmpfs: %v", err)
}
