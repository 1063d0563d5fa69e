package service

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCredentialHandover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       Credential
		wantType string
	}{
		{"passphrase", Credential{Passphrase: []byte("pass\x00word"), Salt: []byte("salt")}, "passphrase"},
		{"rsa", Credential{RSAPEM: []byte("-----BEGIN-----"), RSAPassword: []byte("pw")}, "rsa"},
		{"none", Credential{}, "passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pipe bytes.Buffer
			if err := SendCredential(&pipe, &tc.in); err != nil {
				t.Fatal(err)
			}
			got, err := ReceiveCredential(&pipe)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tc.wantType {
				t.Errorf("type %q, want %q", got.Type, tc.wantType)
			}
			for _, f := range []struct {
				name      string
				got, want []byte
			}{{"passphrase", got.Passphrase, tc.in.Passphrase}, {"salt", got.Salt, tc.in.Salt},
				{"rsa pem", got.RSAPEM, tc.in.RSAPEM}, {"rsa password", got.RSAPassword, tc.in.RSAPassword}} {
				if !bytes.Equal(f.got, f.want) {
					t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
				}
			}
		})
	}
}

// The wire format is shared by a parent and a child of the same binary,
// but pinned here so that a field rename is a deliberate change.
func TestCredentialWireFormat(t *testing.T) {
	var pipe bytes.Buffer
	if err := SendCredential(&pipe, &Credential{Passphrase: []byte("p"), Salt: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	if got, want := pipe.String(), `{"passphrase":"cA==","salt":"cw=="}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestCredentialWipe(t *testing.T) {
	c := Credential{Passphrase: []byte("p"), Salt: []byte("s"), RSAPEM: []byte("k"), RSAPassword: []byte("w")}
	c.Wipe()
	for _, b := range [][]byte{c.Passphrase, c.Salt, c.RSAPEM, c.RSAPassword} {
		if !bytes.Equal(b, []byte{0}) {
			t.Fatalf("not wiped: %q", b)
		}
	}
}

func TestReceiveCredentialBad(t *testing.T) {
	for _, in := range []string{"", "not json", strings.Repeat(" ", maxHandover) + "{}"} {
		if _, err := ReceiveCredential(strings.NewReader(in)); err == nil {
			t.Errorf("%.20q: no error", in)
		}
	}
}

func TestReport(t *testing.T) {
	for _, r := range []Report{{OK: true}, {Error: "wrong passphrase", Hint: "try again", Code: 3}} {
		var pipe bytes.Buffer
		if err := r.Send(&pipe); err != nil {
			t.Fatal(err)
		}
		got, err := ReadReport(&pipe)
		if err != nil || got != r {
			t.Fatalf("ReadReport = %+v, %v; want %+v", got, err, r)
		}
	}
	// A child that died before reporting closes the pipe with nothing.
	if _, err := ReadReport(strings.NewReader("")); !errors.Is(err, ErrNoReport) {
		t.Fatalf("empty pipe: %v, want ErrNoReport", err)
	}
	if ErrNoReport.Error() != "the daemon exited before the mount was ready" {
		t.Fatalf("message changed: %q", ErrNoReport)
	}
}

// The parent reads the first report only: a failure after the mount was
// ready (the daemon's later exit) must not replace "ready".
func TestReadyPipeFirstReportOnly(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := NewReadyPipe(w)
	p.Send(Report{OK: true})
	p.Send(Report{Error: "unmounted from outside", Code: 1})
	got, err := ReadReport(r)
	if err != nil || got != (Report{OK: true}) {
		t.Fatalf("ReadReport = %+v, %v; want the first report", got, err)
	}
	var none *ReadyPipe
	none.Send(Report{OK: true}) // no parent: nothing happens
}
