package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/sandbox"
)

// TestStatusWarnsSecureFilePriv: a server that the rules let open its
// encrypted datadir, with secure_file_priv unset or inside the mount, is a
// way for any account with FILE to read encrypted files (LOAD_FILE runs in
// the allowed server): status says so, and is quiet once it points outside
// (issue 13, item 6).
func TestStatusWarnsSecureFilePriv(t *testing.T) {
	m := newMount(t)
	dir := serverTestDir(t)
	bin := filepath.Join(dir, "bin", "mariadbd")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	sys, err := execLookPath("mariadbd")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, sys, bin, 0o755)
	datadir := filepath.Join(dir, "data")
	o := sandbox.Options{Dir: filepath.Join(dir, "srv"), DataDir: datadir, Binary: bin}
	startSandbox(t, o).Stop()
	m.ms(0, append([]string{"encrypt", "@mysql", datadir}, m.creds()...)...)
	m.aclAdd("ALLOW @mysql " + strings.TrimPrefix(datadir, "/") + "/* " + bin + " --user=mysql")
	files := filepath.Join(dir, "files")
	os.Mkdir(files, 0o750)

	status := func() []map[string]any {
		t.Helper()
		var s struct {
			Warnings []map[string]any `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(m.ms(0, "status", "--json")), &s); err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, w := range s.Warnings {
			if w["kind"] == "secure-file-priv" {
				out = append(out, w)
			}
		}
		return out
	}
	for _, tc := range []struct {
		arg, want string
	}{
		{"--secure-file-priv=", "unset"},
		{"--secure-file-priv=" + datadir, "mount"}, // the server resolves the symlink itself
		{"--secure-file-priv=" + files, ""},
	} {
		o.Args = []string{tc.arg}
		s := startSandbox(t, o)
		ws := status()
		s.Stop()
		if tc.want == "" {
			if len(ws) != 0 {
				t.Errorf("%s: warned %v", tc.arg, ws)
			}
			continue
		}
		if len(ws) != 1 || !strings.Contains(ws[0]["message"].(string), tc.want) || !strings.Contains(ws[0]["hint"].(string), "outside the mount") {
			t.Errorf("%s: warnings %v, want one saying %q", tc.arg, ws, tc.want)
		}
	}
	// The text form prints it on stderr.
	o.Args = []string{"--secure-file-priv="}
	s := startSandbox(t, o)
	defer s.Stop()
	if out := m.ms(0, "status"); !strings.Contains(out, "mysecure: warning: server pid") || !strings.Contains(out, "LOAD_FILE") {
		t.Fatalf("status:\n%s", out)
	}
}
