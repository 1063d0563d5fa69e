package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func write(t *testing.T, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
		mode             os.FileMode
		loose            fs.FileMode
	}{
		{"plain", "s3cret", "s3cret", 0o600, 0},
		{"one newline dropped", "s3cret\n", "s3cret", 0o600, 0},
		{"crlf dropped", "s3cret\r\n", "s3cret", 0o400, 0},
		{"only one newline", "s3cret\n\n", "s3cret\n", 0o600, 0},
		{"inner newline kept", "a\nb", "a\nb", 0o600, 0},
		{"empty", "", "", 0o600, 0},
		{"group readable", "x", "x", 0o640, 0o640},
		{"world readable", "x\n", "x", 0o604, 0o604},
		{"exactly max", strings.Repeat("a", Max), strings.Repeat("a", Max), 0o600, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, loose, err := Read(write(t, tc.data, tc.mode), "passphrase")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || loose != tc.loose {
				t.Errorf("got %q loose %04o, want %q %04o", got, loose, tc.want, tc.loose)
			}
		})
	}
}

func TestReadTooLarge(t *testing.T) {
	_, _, err := Read(write(t, strings.Repeat("a", Max+1), 0o600), "salt")
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.What != "salt" {
		t.Fatalf("err = %v, want a TooLargeError for the salt", err)
	}
	if err.Error() != "salt file is larger than 65536 bytes" {
		t.Errorf("message %q", err.Error())
	}
}

func TestReadMissing(t *testing.T) {
	_, _, err := Read(filepath.Join(t.TempDir(), "none"), "password")
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "failed to open password file: ") {
		t.Fatalf("err = %v", err)
	}
}

// TestReadPipe: a descriptor (/dev/fd/N of a pipe) is read, and no mode
// warning is given for what is not a regular file.
func TestReadPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { w.WriteString("piped\n"); w.Close() }()
	got, loose, err := Read("/dev/fd/"+strconv.Itoa(int(r.Fd())), "passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "piped" || loose != 0 {
		t.Errorf("got %q loose %04o", got, loose)
	}
}
