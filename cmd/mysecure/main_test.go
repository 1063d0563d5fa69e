package main

import (
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/testenv"
)

func TestMain(m *testing.M) {
	// Tests only: Argon2 at its cheapest. Slots record their parameters, so
	// volumes made here open with any build.
	testKDF = &volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}
	testscript.Main(m, map[string]func(){
		"mysecure": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: each a txtar file
// of commands and expected output (see testscript's docs).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// The fixture volume is shared read-only with the scripts.
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			e.Setenv("FIXTURE", wd+"/../../testdata/volume-v1")
			e.Setenv("MYSECURE_STORE", e.WorkDir+"/store")
			// Rollback state private to the script, never /var/lib/mysecure.
			e.Setenv("MYSECURE_STATE_DIR", e.WorkDir+"/state")
			// Never the host's daemon: a daemon on the default socket
			// (a host-layout integration test running meanwhile) would
			// answer the scripts that expect none (engine.txtar).
			e.Setenv("MYSECURE_SOCKET", e.WorkDir+"/run/control.sock")
			e.Setenv("MYSECURE_JOB_SOCKET", e.WorkDir+"/run/jobs.sock")
			return nil
		},
		// [!have:PROG] skip: a script that needs PROG (only
		// credentials.txtar needs openssl, for keys as users make them) is
		// skipped without it, and fails in strict mode (internal/testenv).
		// [root]: the process runs as root (CI does); lines that check
		// root-only refusals. Not root in strict mode is an error.
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				if os.Geteuid() != 0 && testenv.Strict() {
					return false, fmt.Errorf("condition [root]: not root and MYSECURE_TEST_STRICT=1")
				}
				return os.Geteuid() == 0, nil
			}
			prog, ok := strings.CutPrefix(cond, "have:")
			if !ok {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if _, err := exec.LookPath(prog); err != nil {
				if testenv.Strict() {
					return false, fmt.Errorf("missing test component %s (not found on PATH) and MYSECURE_TEST_STRICT=1", prog)
				}
				return false, nil
			}
			return true, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"genrsa":   cmdGenRSA,
			"exitcode": cmdExitCode,
			"genfile":  cmdGenFile,
			"conf-set": cmdConfSet,
			"flipbyte": cmdFlipByte,
		},
	})
}

// exitcode N PROG ARGS...: run PROG and insist on exit code N; stdout and
// stderr are kept for the following stdout/stderr checks.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("bad exit code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// genfile NAME SIZE: write SIZE pseudo-random bytes (seeded by SIZE) to NAME.
func cmdGenFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: genfile NAME SIZE")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("bad size %q", args[1])
	}
	rng := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	b := make([]byte, n)
	_, _ = rng.Read(b)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// conf-set STORE KEY JSON: set volume.KEY in STORE/mysecure.conf to the
// JSON value, as an attacker or a newer version would.
func cmdConfSet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: conf-set STORE KEY JSON")
	}
	path := ts.MkAbs(args[0]) + "/" + volume.ConfigName
	data, err := os.ReadFile(path)
	ts.Check(err)
	var m map[string]json.RawMessage
	ts.Check(json.Unmarshal(data, &m))
	var vol map[string]json.RawMessage
	ts.Check(json.Unmarshal(m["volume"], &vol))
	vol[args[1]] = json.RawMessage(args[2])
	m["volume"], err = json.Marshal(vol)
	ts.Check(err)
	out, err := json.MarshalIndent(m, "", "  ")
	ts.Check(err)
	ts.Check(os.WriteFile(path, out, 0o600))
}

// flipbyte FILE OFFSET: flip the low bit of one byte.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	off, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		ts.Fatalf("read %s at %d: %v", args[0], off, err)
	}
	b[0] ^= 1
	_, err = f.WriteAt(b, off)
	ts.Check(err)
}

// genrsa KEY.pem PUB.pem: write a new 2048-bit RSA key (PKCS#8) and its
// public key (PKIX), as 'openssl genpkey' and 'openssl pkey -pubout' do.
func cmdGenRSA(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: genrsa KEY.pem PUB.pem")
	}
	k, err := rsa.GenerateKey(crand.Reader, 2048)
	ts.Check(err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	ts.Check(err)
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644))
}
