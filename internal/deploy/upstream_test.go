package deploy

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// A request is sent again on a new connection only when the old one broke
// under it, never when it timed out (the replica may have computed it).
func TestIsReset(t *testing.T) {
	if !isReset(&net.OpError{Op: "read", Err: syscall.ECONNRESET}) || !isReset(&net.OpError{Op: "write", Err: syscall.EPIPE}) {
		t.Error("a reset connection is not retried")
	}
	if isReset(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}) {
		t.Error("a timed-out exchange is retried")
	}
}

// closedByPeer sees an open idle connection as usable and one the peer
// closed, or one closed here, as not.
func TestClosedByPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if closedByPeer(c) {
		t.Fatal("an open idle connection is taken for closed")
	}
	peer.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !closedByPeer(c) {
		if time.Now().After(deadline) {
			t.Fatal("a connection the peer closed is taken for open")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if !closedByPeer(c) {
		t.Fatal("a connection closed here is taken for open")
	}
}
