package attemptdir

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSpread: on ext2/3/4 the jobs dir gets the top-of-hierarchy flag,
// kept with its others; elsewhere (tmpfs, xfs, btrfs refuse or ignore
// it) Spread is a no-op, not an error; a missing dir is an error.
func TestSpread(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	before, flagsErr := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err := Spread(dir); err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		t.Fatal(err)
	}
	const ext4Magic = 0xEF53
	if fs.Type == ext4Magic && flagsErr == nil {
		after, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err != nil || after&fsTopdirFL == 0 || after&^fsTopdirFL != before&^fsTopdirFL {
			t.Fatalf("flags %#x -> %#x (%v), want %#x", before, after, err, before|fsTopdirFL)
		}
		if err := Spread(dir); err != nil {
			t.Fatalf("again: %v", err)
		}
	} else {
		t.Logf("%s is not on ext2/3/4 (%#x, %v): nothing to check but the no-op", dir, fs.Type, flagsErr)
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
