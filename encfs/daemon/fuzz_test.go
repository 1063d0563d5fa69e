package daemon

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/mysecure/mysecure/encfs/acl"
)

// FuzzControlRequest: every JSON body a control API handler decodes
// (acl, mode, categories, move begin) is refused or decoded without a
// panic; a decoded request encodes again and decodes to the same value
// (no field is half-read), and bodies over 1 MiB are refused.
func FuzzControlRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"add","rule":"ALLOW @mysql * /usr/bin/cat","credential":{"type":"passphrase","passphrase":"cA==","salt":"cw=="}}`,
		`{"op":"del","index":1}`,
		`{"mode":"permissive","credential":{"type":"rsa","rsa_pem":"LS0t","rsa_password":""}}`,
		`{"op":"add","name":"ndbdata"}`,
		`{"credential":{"type":"passphrase"},"token":"AAAA"}`,
		`{"op":"add","unknown":1}`,
		`{"op":"add"}{"op":"del"}`,
		`[]`, `null`, `{"index":1e400}`, `{"rule":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&ACLRequest{}, &ModeRequest{}, &CategoryRequest{}, &MoveBeginRequest{}} {
			r := httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body))
			err := decode(r, v)
			if err != nil {
				if _, ok := err.(*APIError); !ok {
					t.Fatalf("decode error is %T, not *APIError: %v", err, err)
				}
				continue
			}
			if len(body) > 1<<20 {
				t.Fatalf("decoded a %d-byte body", len(body))
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			r = httptest.NewRequest("POST", "/v1/x", bytes.NewReader(again))
			if err := decode(r, v); err != nil {
				t.Fatalf("%T does not decode its own encoding %s: %v", v, again, err)
			}
		}
	})
}

// FuzzDenialsQuery: GET /v1/denials with any query string answers 200 or
// 400, never panics.
func FuzzDenialsQuery(f *testing.F) {
	for _, s := range []string{"since=2026-01-02T03:04:05.123456789Z&pgid=12&limit=3", "limit=-1", "pgid=x", "since=yesterday", "limit=99999999999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if _, err := url.ParseQuery(q); err != nil {
			return
		}
		d := &Daemon{engine: acl.NewEngine(nil)}
		w := httptest.NewRecorder()
		d.handleDenials(w, httptest.NewRequest("GET", "/v1/denials?"+url.PathEscape(q), nil))
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("query %q: status %d", q, w.Code)
		}
	})
}

// FuzzParseMode: ParseMode accepts exactly the modes it prints.
func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"enforcing", "permissive", "admin", "ADMIN", " enforcing", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMode(s)
		if err != nil {
			return
		}
		if back, err := ParseMode(string(m)); err != nil || back != m {
			t.Fatalf("ParseMode(%q) = %q, which parses as %q %v", s, m, back, err)
		}
	})
}
