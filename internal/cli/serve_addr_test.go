package cli

import (
	"net"
	"testing"
)

func TestReachableAddr(t *testing.T) {
	got, err := reachableAddr(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8081})
	if err != nil || got != "127.0.0.1:8081" {
		t.Fatalf("a loopback listener announces %q, %v", got, err)
	}
	got, err = reachableAddr(&net.TCPAddr{IP: net.IPv4zero, Port: 9000})
	if err != nil {
		t.Fatal(err) // every machine these tests run on has a network interface
	}
	host, port, _ := net.SplitHostPort(got)
	ip := net.ParseIP(host)
	if port != "9000" || ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		t.Fatalf("a listener on every interface announces %q", got)
	}
	// The announced address is this node's: something can listen on it.
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("announced %s, which is not an address of this node: %v", host, err)
	}
	ln.Close()
}
