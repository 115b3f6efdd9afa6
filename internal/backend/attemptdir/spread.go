package attemptdir

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// fsTopdirFL is FS_TOPDIR_FL of <linux/fs.h> (chattr +T), which x/sys
// does not name.
const fsTopdirFL = 0x00020000

// Spread marks root as the top of separate directory trees (ext2/3/4's
// "top of hierarchy" flag, chattr +T), so that the filesystem places the
// attempt dirs under it — and the files in them — across its block
// groups rather than in root's own group. On ext4 without a journal every
// new inode is checked against the recently deleted ones of its group,
// so with thousands of attempts made and cleaned up in one group each new
// file scans past all of them (a third of the CPU of a burst of short
// jobs on such a disk). Filesystems without the flag ignore it: only
// errors other than "not supported" are returned.
func Spread(root string) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("spread %s: %w", root, err)
	}
	defer unix.Close(fd)
	// The kernel reads and writes the flags as a 32-bit int, whatever
	// the ioctl's number says.
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil && flags&fsTopdirFL == 0 {
		err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFL))
	}
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spread %s: %w", root, err)
	}
	return nil
}
