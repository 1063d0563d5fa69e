package kdfchild

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// behaviour makes the test binary's child misbehave (bad output tests).
const behaviour = "KDFCHILD_TEST_BEHAVIOUR"

func TestMain(m *testing.M) {
	if IsChild(os.Args) {
		switch os.Getenv(behaviour) {
		case "short":
			os.Stdout.Write([]byte("abc"))
			os.Exit(0)
		case "long":
			os.Stdout.Write(make([]byte, 33))
			os.Exit(0)
		case "fail":
			fmt.Fprintln(os.Stderr, "boom: no memory")
			os.Exit(3)
		}
		os.Exit(Serve(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestIDKeyInChild: the key comes from another process and equals
// argon2.IDKey's.
func TestIDKeyInChild(t *testing.T) {
	var pids []int
	started = func(p *os.Process) { pids = append(pids, p.Pid) }
	defer func() { started = nil }()
	parts := [][]byte{{0, 0, 0, 5}, []byte("hello"), {}, {0, 0, 0, 4}, []byte("salt")}
	pw, salt := []byte("\x00\x00\x00\x05hello\x00\x00\x00\x04salt"), []byte("0123456789abcdef")
	for _, c := range []struct {
		time, mem uint32
		threads   uint8
		keyLen    uint32
	}{{1, 64, 1, 32}, {2, 256, 4, 32}, {1, 8, 1, 1}, {1, 64, 2, 64}} {
		got, err := IDKey(parts, salt, c.time, c.mem, c.threads, c.keyLen)
		if err != nil {
			t.Fatal(err)
		}
		want := argon2.IDKey(pw, salt, c.time, c.mem, c.threads, c.keyLen)
		if !bytes.Equal(got, want) {
			t.Fatalf("%+v: child %x, in process %x", c, got, want)
		}
	}
	if len(pids) != 4 || pids[0] == os.Getpid() {
		t.Fatalf("children %v (this process %d)", pids, os.Getpid())
	}
	// The caller's buffers are its own: unchanged.
	if string(parts[1]) != "hello" || string(parts[4]) != "salt" || string(salt) != "0123456789abcdef" {
		t.Fatal("IDKey changed its inputs")
	}
}

func TestChildKilled(t *testing.T) {
	started = func(p *os.Process) { p.Kill() }
	defer func() { started = nil }()
	key, err := IDKey([][]byte{[]byte("pw")}, []byte("0123456789abcdef"), 1, 64, 1, 32)
	if err == nil || key != nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("key %x, err %v; want a killed child's error", key, err)
	}
}

func TestBadOutput(t *testing.T) {
	for _, c := range []struct{ behaviour, want string }{
		{"short", "bad output (3 of 32 bytes)"},
		{"long", "more output than the key"},
		{"fail", "exit status 3: boom: no memory"},
	} {
		t.Run(c.behaviour, func(t *testing.T) {
			t.Setenv(behaviour, c.behaviour)
			key, err := IDKey([][]byte{[]byte("pw")}, []byte("0123456789abcdef"), 1, 64, 1, 32)
			if err == nil || key != nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("key %x, err %v; want %q", key, err, c.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		pw, salt  int
		time, mem uint32
		threads   uint8
		keyLen    uint32
	}{{maxPassword + 1, 16, 1, 64, 1, 32}, {8, maxSalt + 1, 1, 64, 1, 32}, {8, 16, 0, 64, 1, 32},
		{8, 16, 1, maxMemoryKiB + 1, 1, 32}, {8, 16, 1, 64, 0, 32}, {8, 16, 1, 64, 1, 0}, {8, 16, 1, 64, 1, maxKeyLen + 1}} {
		if _, err := IDKey([][]byte{make([]byte, c.pw)}, make([]byte, c.salt), c.time, c.mem, c.threads, c.keyLen); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestServeRefuses: the child refuses what is not a request.
func TestServeRefuses(t *testing.T) {
	good := append(header(2, []byte("salt"), 1, 64, 1, 32), "pw"...)
	huge := append(header(2, []byte("salt"), 1, maxMemoryKiB+1, 1, 32), "pw"...)
	for name, in := range map[string][]byte{
		"empty": nil, "magic": append([]byte("not-a-kdf 1\n"), good[12:]...), "truncated": good[:len(good)-1],
		"memory": huge,
	} {
		var out, errb bytes.Buffer
		if code := Serve(bytes.NewReader(in), &out, &errb); code == 0 || out.Len() != 0 || !strings.HasPrefix(errb.String(), "mysecure kdf child: ") {
			t.Errorf("%s: exit %d, %d bytes out, stderr %q", name, code, out.Len(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := Serve(bytes.NewReader(good), &out, &errb); code != 0 || !bytes.Equal(out.Bytes(), argon2.IDKey([]byte("pw"), []byte("salt"), 1, 64, 1, 32)) {
		t.Fatalf("good request: exit %d, %x, %q", code, out.Bytes(), errb.String())
	}
}
