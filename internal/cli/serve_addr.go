package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
)

// reachableAddr is the address a replica announces for its listener: the
// listener's own, or for one on every interface (0.0.0.0, ::) this node's
// address, so that a gateway on another node can reach it — the address
// the host name resolves to unless that is loopback (Debian maps it to
// 127.0.1.1), else the first up, non-loopback IPv4 interface address.
func reachableAddr(l *net.TCPAddr) (string, error) {
	if !l.IP.IsUnspecified() {
		return l.String(), nil
	}
	port := strconv.Itoa(l.Port)
	if host, err := os.Hostname(); err == nil {
		if ips, err := net.LookupIP(host); err == nil {
			for _, ip := range ips {
				if ip4 := ip.To4(); ip4 != nil && !ip4.IsLoopback() {
					return net.JoinHostPort(ip4.String(), port), nil
				}
			}
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("find this node's address: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return net.JoinHostPort(n.IP.String(), port), nil
			}
		}
	}
	return "", errors.New("listening on every interface, but this node has no non-loopback IPv4 address to announce; give --listen HOST:PORT")
}
