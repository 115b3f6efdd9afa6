package task

import "syscall"

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

// ownPeakRSS is this process's resident high-water mark in bytes (its
// own ru_maxrss, the VmHWM of /proc/self/status without opening and
// parsing a file on every start), 0 if it cannot be read.
func ownPeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}
