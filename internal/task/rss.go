package task

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
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

// ownPeakRSS is this process's resident high-water mark (VmHWM) in
// bytes, 0 if it cannot be read.
func ownPeakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
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
