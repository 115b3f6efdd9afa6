package lazyfs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// DetachUnder detaches every FUSE mount at or below dir: what a server
// killed with -9 left (its mount points answer "transport endpoint is not
// connected" and cannot be removed). For whoever cleans up attempt dirs.
func DetachUnder(dir string) error {
	points, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	// Deepest first: a mount inside another goes before its parent.
	var first error
	for i := len(points) - 1; i >= 0; i-- {
		if err := detach(points[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// detach lazily unmounts one mount point: mount(2) as root, else
// fusermount (an argv, never a shell).
func detach(point string) error {
	err := syscall.Unmount(point, syscall.MNT_DETACH)
	if err == nil || err == syscall.EINVAL { // EINVAL: not mounted (any more)
		return nil
	}
	for _, prog := range []string{"fusermount3", "fusermount"} {
		if path, lerr := exec.LookPath(prog); lerr == nil {
			if out, ferr := exec.Command(path, "-u", "-z", point).CombinedOutput(); ferr != nil {
				return fmt.Errorf("%s -u -z %s: %v: %s", prog, point, ferr, strings.TrimSpace(string(out)))
			}
			return nil
		}
	}
	return fmt.Errorf("unmount %s: %w", point, err)
}

// MountsUnder lists the FUSE mount points at or below dir (absolute),
// parents before children, from /proc/self/mountinfo.
func MountsUnder(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "fuse") {
			continue
		}
		point := unescapeMountPath(fields[4])
		if point == abs || strings.HasPrefix(point, abs+"/") {
			points = append(points, point)
		}
	}
	return points, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
