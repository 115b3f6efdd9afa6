package task

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// touchCommand makes this test binary (see TestMain) a program that
// touches the MiB its next argument gives, then exits.
const touchCommand = "__test-touch"

func touchMiB(arg string) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		os.Exit(2)
	}
	b := make([]byte, n<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
}

// A job's peak memory is its own, not that of the process that started
// it: a small command started by a process of 96+ MiB is not reported at
// 96 MiB, and one that uses more than its starter is reported at its
// size.
func TestPeakRSSIsTheJobs(t *testing.T) {
	ballast := make([]byte, 96<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	defer runtime.KeepAlive(ballast)

	res, _ := runAttempt(t, &Launch{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}})
	if res.MaxRSSBytes != 0 {
		t.Fatalf("true reported a peak of %d MiB (this process's own peak is %d MiB)", res.MaxRSSBytes>>20, ownPeakRSS()>>20)
	}
	res, _ = runAttempt(t, &Launch{Argv: []string{SelfProgram, touchCommand, "256"}, Env: []string{"PATH=/nonexistent"}})
	if res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("touch program: exit %v, %s", derefInt(res.ExitCode), res.Error)
	}
	// At least its size (the race detector's shadow memory can add as much
	// again, so no upper bound).
	if mib := res.MaxRSSBytes >> 20; mib < 256 {
		t.Fatalf("a program touching 256 MiB reported a peak of %d MiB", mib)
	}
}

func TestJobPeakRSS(t *testing.T) {
	for _, c := range []struct{ child, own, want int64 }{
		{40 << 20, 43 << 20, 0},          // at most ours: not known
		{43 << 20, 43 << 20, 0},          // equal: ours
		{300 << 20, 43 << 20, 300 << 20}, // above ours: the job's
		{5 << 20, 0, 5 << 20},            // our own unknown: as reported
	} {
		if got := jobPeakRSS(c.child, c.own); got != c.want {
			t.Errorf("jobPeakRSS(%d, %d) = %d, want %d", c.child, c.own, got, c.want)
		}
	}
}

// The starter's peak that counts is the one the command inherited, not
// what the starter grew to while the command ran (an executor runs other
// attempts meanwhile): a 160 MiB command is reported at its size even
// when the starter passes 300 MiB after starting it.
func TestPeakRSSIgnoresLaterGrowth(t *testing.T) {
	var ballast []byte
	grow := func(string) { // called once the command runs
		ballast = make([]byte, 300<<20)
		for i := 0; i < len(ballast); i += 4096 {
			ballast[i] = 1
		}
	}
	res, _ := runAttemptNotify(t, &Launch{Argv: []string{SelfProgram, touchCommand, "160"}, Env: []string{"PATH=/nonexistent"}}, grow)
	runtime.KeepAlive(ballast)
	if mib := res.MaxRSSBytes >> 20; mib < 160 {
		t.Fatalf("a program touching 160 MiB reported %d MiB (this process's peak is now %d MiB)", mib, ownPeakRSS()>>20)
	}
}

// TestPeakReaderIsVmHWM: the kept-open reader gives what a fresh read of
// /proc/self/status gives, and sees the peak grow.
func TestPeakReaderIsVmHWM(t *testing.T) {
	p := NewPeakReader()
	if p == nil {
		t.Fatal("cannot open /proc/self/status")
	}
	before := p.Peak()
	if before <= 0 || before > ownPeakRSS() {
		t.Fatalf("reader says %d, a fresh read %d", before, ownPeakRSS())
	}
	// Touched beyond the peak so far (other tests may have set it high),
	// in fresh pages (the Go heap may reuse pages still resident).
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var rssKB int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	size := int(max(0, before-rssKB*1024) + 64<<20)
	grow, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(grow)
	for i := 0; i < len(grow); i += 4096 {
		grow[i] = 1
	}
	after := p.Peak()
	if after < before+60<<20 {
		t.Fatalf("peak %d MiB after touching 64 MiB beyond it, was %d MiB", after>>20, before>>20)
	}
	if fresh := ownPeakRSS(); after > fresh {
		t.Fatalf("reader says %d, a fresh read after it %d", after, fresh)
	}
}
