package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSend(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@mysecure-sdnotify-test-%d", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := Send(name, Ready); err != nil {
				t.Fatal(err)
			}
			l.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 256)
			n, err := l.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(buf[:n]); got != "READY=1" {
				t.Fatalf("got %q, want READY=1", got)
			}
		})
	}
}

func TestSendNoSocket(t *testing.T) {
	if err := Send("", Ready); err != nil {
		t.Fatalf("no socket should send nothing: %v", err)
	}
	if err := Send("relative/path", Ready); err == nil {
		t.Fatal("a relative socket name was accepted")
	}
	if err := Send(filepath.Join(t.TempDir(), "absent"), Ready); err == nil {
		t.Fatal("a missing socket gave no error")
	}
}
