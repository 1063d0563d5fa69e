package audit

import (
	"context"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

func TestReportErr(t *testing.T) {
	for _, tc := range []struct {
		fs   []Result
		want string
	}{
		{[]Result{Pass, Warn, NotApplicable}, ""},
		{[]Result{Pass, Fail, Warn}, "audit checks failed: 1 failed, 0 could not run, of 3"},
		{[]Result{Error, Error, Pass}, "audit checks failed: 0 failed, 2 could not run, of 3"},
	} {
		r := &Report{}
		for _, res := range tc.fs {
			r.Findings = append(r.Findings, Finding{Result: res})
		}
		r.summarize()
		err := r.Err()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v, want nil", tc.fs, err)
			}
			continue
		}
		if !errors.Is(err, ErrFailed) || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.fs, err, tc.want)
		}
	}
}

func TestReportStamp(t *testing.T) {
	r := &Report{}
	before := time.Now().UTC()
	r.Stamp("mysecure", "1.2.3")
	host, _ := os.Hostname()
	if r.Tool != "mysecure" || r.ToolVersion != "1.2.3" || r.Host != host || r.Time.Before(before) || r.Time.Location() != time.UTC {
		t.Errorf("stamp %+v", r)
	}
}

func TestConfigApply(t *testing.T) {
	c := Config{Admins: []string{"'root'@'localhost'"}, Accounts: []string{"app@%"}, Plugins: []string{"server_audit"}, UDFs: []string{"f"}}
	tg := Target{Profile: "cis-level1"}
	c.Apply(&tg)
	want := Target{Profile: "cis-level1", Admins: c.Admins, InUse: c.Accounts, AllowedPlugins: c.Plugins, AllowedUDFs: c.UDFs}
	if !reflect.DeepEqual(tg, want) {
		t.Errorf("target %+v, want %+v", tg, want)
	}
}

func TestClientConnect(t *testing.T) {
	ctx := context.Background()
	if _, err := (Client{Program: "false"}).Connect(ctx); !errors.Is(err, ErrConnect) {
		t.Errorf("a client that cannot log in: %v, want ErrConnect", err)
	}
	if q, err := (Client{Program: "true"}).Connect(ctx); err != nil || q == nil {
		t.Errorf("a client that logs in: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := (Client{}).Connect(ctx); !errors.Is(err, ErrNoClient) {
		t.Errorf("no client: %v, want ErrNoClient", err)
	}
}
