package job

import (
	"strings"
	"syscall"
)

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
}

// SignalName is the conventional name of a signal ("SIGKILL").
func SignalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return "SIG" + strings.ToUpper(s.String())
}

// SignalNumber reads "SIGKILL", "KILL" or "9".
func SignalNumber(name string) (syscall.Signal, bool) {
	up := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(up, "SIG") {
		up = "SIG" + up
	}
	for s, n := range signalNames {
		if n == up {
			return s, true
		}
	}
	var num int
	for _, r := range strings.TrimPrefix(up, "SIG") {
		if r < '0' || r > '9' {
			return 0, false
		}
		num = num*10 + int(r-'0')
		if num > 64 {
			return 0, false
		}
	}
	if num == 0 {
		return 0, false
	}
	return syscall.Signal(num), true
}
