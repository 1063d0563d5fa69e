package daemon

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// wipeProbe is an admin request that records the credential serveAdmin
// asks it for (to wipe it).
type wipeProbe struct {
	Credential *Credential `json:"credential"`
}

// probeSeen collects what wipeProbe.credential returned.
var probeSeen *[]*Credential

func (r *wipeProbe) credential() *Credential {
	*probeSeen = append(*probeSeen, r.Credential)
	return r.Credential
}

// TestServeAdminWipesOnBadRequest: a request refused as malformed after
// its credential was decoded (here an unknown field after it) still has
// the credential wiped.
func TestServeAdminWipesOnBadRequest(t *testing.T) {
	var seen []*Credential
	body := `{"credential":{"type":"passphrase","passphrase":"c2VjcmV0LXBhc3M=","salt":"c2FsdA=="},"bogus":1}`
	r := httptest.NewRequest(http.MethodPost, "/v1/mode", strings.NewReader(body))
	w := httptest.NewRecorder()
	ran := false
	probeSeen = &seen
	defer func() { probeSeen = nil }()
	serveAdmin(&Daemon{}, w, r, func(*wipeProbe) (any, error) { ran = true; return nil, nil })
	if ran || w.Code != http.StatusBadRequest {
		t.Fatalf("malformed request: ran %v, status %d", ran, w.Code)
	}
	if len(seen) != 1 || seen[0] == nil {
		t.Fatalf("the decoded credential was not handed over to be wiped (%d asks)", len(seen))
	}
	for _, b := range [][]byte{seen[0].Passphrase, seen[0].Salt} {
		if len(b) == 0 || strings.Trim(string(b), "\x00") != "" {
			t.Fatalf("credential left as %q after a malformed request", b)
		}
	}
}
