package task

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
)

// jobPeakRSS is the job's peak resident memory from its ru_maxrss, or 0
// when that cannot be told apart from this process's own.
//
// Linux carries the resident high-water mark of the memory a process
// exec'd from into its ru_maxrss: a command started by this process
// (vfork, then exec) begins with our peak (tens of MB) however little it
// uses itself. ru_maxrss is the larger of the two, so one above our own
// peak as it stood when the command exec'd (ownPeak: read right after the
// start, since it only grows — and grows with whatever else this process
// does while the command runs) is the job's; one at or below it is not
// known, and is reported as 0 (not measured) rather than as our size.
func jobPeakRSS(childMaxRSS, ownPeak int64) int64 {
	if ownPeak <= 0 || childMaxRSS > ownPeak {
		return childMaxRSS
	}
	return 0
}

// PeakReader reads this process's resident high-water mark (VmHWM)
// through one /proc/self/status kept open: a read at offset 0 costs a
// third of opening the file again for every job. (getrusage's own
// ru_maxrss will not do: the same inheritance puts into it the peak of
// the process this one was exec'd from — the server's, for an executor.)
type PeakReader struct {
	mu  sync.Mutex
	f   *os.File
	buf [8192]byte
}

// NewPeakReader opens /proc/self/status; nil if it cannot (Peak then
// reads the file each time).
func NewPeakReader() *PeakReader {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil
	}
	return &PeakReader{f: f}
}

// Peak is VmHWM in bytes, 0 if it cannot be read.
func (p *PeakReader) Peak() int64 {
	if p == nil {
		return ownPeakRSS()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n, _ := p.f.ReadAt(p.buf[:], 0) // io.EOF with the whole file read
	return parseVmHWM(p.buf[:n])
}

// ownPeakRSS is this process's VmHWM in bytes, 0 if it cannot be read.
func ownPeakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return parseVmHWM(data)
}

func parseVmHWM(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		kb, ok := bytes.CutSuffix(bytes.TrimSpace(rest), []byte(" kB"))
		if !ok {
			return 0
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(kb)), 10, 64)
		if err != nil {
			return 0
		}
		return n * 1024
	}
	return 0
}
