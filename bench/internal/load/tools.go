package load

import (
	"debug/buildinfo"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// LookPath resolves a peer tool's binary to an absolute path, or says
// how to get it (hint).
func LookPath(bin, name, hint string) (string, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s not found (%v): %s", name, err, hint)
	}
	return filepath.Abs(p)
}

// FirstLine is the first line a command prints (its version).
func FirstLine(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// BuildVersion names a Go binary's source: its module version (for one
// built by go install), else its VCS revision ("+dirty" when built from a
// modified tree), else, with tree, the revision of the tree the benchmark
// runs in (hpcml built without VCS stamps); and its Go version.
func BuildVersion(bin string, tree bool) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v + " " + info.GoVersion
	}
	rev, dirty := "", ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" && tree {
		if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
			rev = "tree " + strings.TrimSpace(string(out))
		}
	}
	if rev == "" {
		rev = "unknown revision"
	}
	return rev + dirty + " " + info.GoVersion
}
