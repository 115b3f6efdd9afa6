package attemptdir

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSpread: on a filesystem with inode flags (ext4 here) the jobs dir
// gets the top-of-hierarchy flag, kept with its others; on one without
// (tmpfs) Spread is a no-op, not an error; a missing dir is an error.
func TestSpread(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	before, flagsErr := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err := Spread(dir); err != nil {
		t.Fatal(err)
	}
	if flagsErr == nil {
		after, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
		if err != nil || after&fsTopdirFL == 0 || after&^fsTopdirFL != before&^fsTopdirFL {
			t.Fatalf("flags %#x -> %#x (%v), want %#x", before, after, err, before|fsTopdirFL)
		}
		if err := Spread(dir); err != nil {
			t.Fatalf("again: %v", err)
		}
	} else {
		t.Logf("%s has no inode flags (%v): nothing to check but the no-op", dir, flagsErr)
	}
	if shm, err := os.MkdirTemp("/dev/shm", "spread-"); err == nil {
		defer os.RemoveAll(shm)
		if err := Spread(shm); err != nil {
			t.Fatalf("tmpfs: %v", err)
		}
	}
	if err := Spread(dir + "/missing"); err == nil {
		t.Fatal("a missing dir was spread")
	}
}
