package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/encfs/tree"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/mycnf"
)

func TestRenameFilter(t *testing.T) {
	long := strings.Repeat("x", 10000)
	in := "-- Current Database: `shop`\n" +
		"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n" +
		"USE `shop`;\n" +
		"INSERT INTO t VALUES ('USE `shop`;" + long + "');\n" +
		"/*!50003 ALTER DATABASE `shop` CHARACTER SET latin1 */ ;\n" +
		"CREATE VIEW v AS SELECT `shop`.`t`.`a` FROM `shop`.`t`;\n" +
		"USE `shop`;"
	want := "-- Current Database: `new``db`\n" +
		"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `new``db` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n" +
		"USE `new``db`;\n" +
		"INSERT INTO t VALUES ('USE `shop`;" + long + "');\n" +
		"/*!50003 ALTER DATABASE `new``db` CHARACTER SET latin1 */ ;\n" +
		"CREATE VIEW v AS SELECT `shop`.`t`.`a` FROM `shop`.`t`;\n" +
		"USE `new``db`;"
	for _, chunk := range []int{1, 7, 100, 4096, 1 << 20} {
		var out bytes.Buffer
		f := newRenameFilter(nopCloser{&out}, "shop", "new`db")
		for p := []byte(in); len(p) > 0; {
			n := min(chunk, len(p))
			if _, err := f.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("chunk %d: got\n%.300s\nwant\n%.300s", chunk, out.String(), want)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestDumpObserver(t *testing.T) {
	head := "-- MariaDB dump 10.19\n-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000042', MASTER_LOG_POS=4711;\n"
	body := strings.Repeat("INSERT INTO t VALUES (1);\n", 20000)
	tailPart := "-- SET GLOBAL gtid_slave_pos='0-1-99';\n/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2026-11-28 10:34:06\n"
	for _, chunk := range []int{1, 333, 1 << 20} {
		d := newDumpObserver()
		all := []byte(head + body + tailPart)
		for p := all; len(p) > 0; {
			n := min(chunk, len(p))
			d.Write(p[:n])
			p = p[n:]
		}
		var m Manifest
		if err := d.finish(&m); err != nil {
			t.Fatal(err)
		}
		if m.Binlog == nil || m.Binlog.File != "mysql-bin.000042" || m.Binlog.Position != 4711 || m.Binlog.GTID != "0-1-99" {
			t.Fatalf("chunk %d: binlog %+v", chunk, m.Binlog)
		}
		if m.Trailer != "-- Dump completed on 2026-11-28 10:34:06" {
			t.Fatalf("trailer %q", m.Trailer)
		}
	}
	d := newDumpObserver()
	d.Write([]byte(head + body))
	if err := d.finish(&Manifest{}); err == nil {
		t.Fatal("a dump without trailer passed")
	}
	// A trailer in the middle does not count.
	d = newDumpObserver()
	d.Write([]byte(head + "-- Dump completed on x\n" + body))
	if err := d.finish(&Manifest{}); err == nil {
		t.Fatal("a trailer followed by more data passed")
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 3}
	tl.Write([]byte("one\ntwo\n\nthree\nfo"))
	tl.Write([]byte("ur\nfive"))
	if got := strings.Join(tl.Lines(), "|"); got != "three|four|five" {
		t.Fatalf("tail: %q", got)
	}
	tl.Write(bytes.Repeat([]byte("z"), 10000))
	for _, l := range tl.Lines() {
		if len(l) > 600 {
			t.Fatalf("line of %d bytes kept", len(l))
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Type: "incremental"},
		{Type: Physical, Databases: []string{"a"}},
		{Databases: []string{"../x"}},
		{Databases: []string{"--all"}},
		{Level: 23},
		{ExtraArgs: []string{"--password=x"}},
		{ExtraArgs: []string{"--defaults-file=/etc/x"}},
	} {
		if err := o.normalize(); !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	o := Options{}
	if err := o.normalize(); err != nil || o.Type != Logical || o.Level != 1 || o.Credentials != DefaultCredentials {
		t.Fatalf("defaults: %+v %v", o, err)
	}
}

func TestIDs(t *testing.T) {
	id := newID(time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC))
	if !ValidID(id) || !strings.HasPrefix(id, "20261128T103000Z-") {
		t.Fatalf("newID: %s", id)
	}
	for _, bad := range []string{"", "x", "../20261128T103000Z-abcd", "20261128T103000Z-ABCD", ".partial-20261128T103000Z-abcd"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q)", bad)
		}
	}
}

func testService(t *testing.T) *Service {
	t.Helper()
	store := t.TempDir()
	vol, keys, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tree.Open(store, "mysqlbackup", vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	return &Service{Tree: tr, LockDir: store + "/ms.locks"}
}

func TestCredentialsStore(t *testing.T) {
	s := testService(t)
	c := mycnf.Client{User: "bk", Password: `p"a'ss#;\ 🔐`, Socket: "/run/mysqld/mysqld.sock"}
	if err := s.SetCredentials("nightly", c); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCredentials("../x", c); !errors.Is(err, ErrUsage) {
		t.Fatalf("bad name: %v", err)
	}
	info, err := s.ShowCredentials("nightly")
	if err != nil || info.User != "bk" || info.Password != "********" || !info.HasPassword || info.Socket != c.Socket {
		t.Fatalf("show: %+v %v", info, err)
	}
	b, _ := json.Marshal(info)
	if bytes.Contains(b, []byte("pass")) && bytes.Contains(b, []byte(`a'ss`)) {
		t.Fatal("password in the redacted view")
	}
	raw, err := s.credentials("nightly")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := mycnf.Parse(bytes.NewReader(raw), "x")
	got, _ := mycnf.ParseClient(f.Options)
	if got.Password != c.Password {
		t.Fatalf("stored password %q", got.Password)
	}
	l, err := s.ListCredentials()
	if err != nil || len(l) != 1 || l[0].Name != "nightly" {
		t.Fatalf("list: %+v %v", l, err)
	}
	if err := s.RemoveCredentials("nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ShowCredentials("nightly"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	// Nothing readable in the store.
	filepathWalk(t, s.Tree.Root(), c.Password, "nightly")
}

func filepathWalk(t *testing.T, root string, markers ...string) {
	t.Helper()
	var walk func(string)
	walk = func(dir string) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			p := dir + "/" + e.Name()
			for _, m := range markers {
				if strings.Contains(e.Name(), m) {
					t.Fatalf("plaintext name %s", p)
				}
			}
			if e.IsDir() {
				walk(p)
				continue
			}
			b, _ := os.ReadFile(p)
			for _, m := range markers {
				if bytes.Contains(b, []byte(m)) {
					t.Fatalf("plaintext in %s", p)
				}
			}
		}
	}
	walk(root)
}

func TestCatalogIgnoresPartialsAndBinds(t *testing.T) {
	s := testService(t)
	id := "20261128T103000Z-abcd"
	m := Manifest{FormatVersion: 1, ID: id, Type: Logical, DataFileID: "00", Started: time.Now().UTC()}
	mb, _ := json.Marshal(m)
	if err := s.Tree.MkdirAll(backupsDir+"/"+partialPrefix+id, 0o700); err != nil {
		t.Fatal(err)
	}
	s.Tree.WriteFile(backupsDir+"/"+partialPrefix+id+"/"+manifestName, mb, 0o600)
	if e, broken, err := s.List(); err != nil || len(e) != 0 || len(broken) != 0 {
		t.Fatalf("a partial backup is listed: %v %v %v", e, broken, err)
	}
	s.cleanPartials()
	if ents, _ := s.Tree.ReadDir(backupsDir); len(ents) != 0 {
		t.Fatalf("cleanPartials left %v", ents)
	}
	// A manifest that names another backup is refused.
	s.Tree.MkdirAll(backupsDir+"/20261128T103001Z-abcd", 0o700)
	s.Tree.WriteFile(backupsDir+"/20261128T103001Z-abcd/"+manifestName, mb, 0o600)
	if _, err := s.Get("20261128T103001Z-abcd"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved manifest: %v", err)
	}
	_, broken, _ := s.List()
	if len(broken) != 1 {
		t.Fatalf("broken: %v", broken)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format_version":1,"id":"20261128T103000Z-abcd","type":"logical"}`), "20261128T103000Z-abcd")
	f.Add([]byte(`{"format_version":2}`), "x")
	f.Fuzz(func(t *testing.T, b []byte, id string) {
		m, err := parseManifest(b, id)
		if err == nil && (m.ID != id || (m.Type != Logical && m.Type != Physical)) {
			t.Fatalf("accepted %+v for %q", m, id)
		}
	})
}

func FuzzDumpObserver(f *testing.F) {
	f.Add([]byte("-- CHANGE MASTER TO MASTER_LOG_FILE='a', MASTER_LOG_POS=1;\n-- Dump completed on x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newDumpObserver()
		d.Write(b)
		var m Manifest
		if d.finish(&m) == nil && !strings.HasPrefix(m.Trailer, "-- Dump completed") {
			t.Fatalf("trailer %q", m.Trailer)
		}
		if len(d.head) > dumpHeadSize || len(d.tail) > dumpTailSize {
			t.Fatal("unbounded buffers")
		}
	})
}

func TestGroupRestrictions(t *testing.T) {
	s := testService(t)
	for _, o := range []Options{{ExtraArgs: []string{"--result-file=/tmp/x"}}, {Job: "nightly"}, {Credentials: "admin"}} {
		if _, err := s.Do(context.Background(), Request{Op: OpBackup, Backup: &o}, false, nil); !errors.Is(err, ErrDenied) {
			t.Errorf("%+v as a group member: %v", o, err)
		}
	}
	for _, op := range []string{OpDelete, OpPrune, OpRestore, OpCredentialsSet, OpCredentialsShow, OpCredentialsList, OpCredentialsRemove} {
		if _, err := s.Do(context.Background(), Request{Op: op}, false, nil); !errors.Is(err, ErrDenied) {
			t.Errorf("%s as a group member: %v", op, err)
		}
	}
}

// FuzzDecodeRequest: a job request (sent by members of backup-group, who
// are not trusted) is refused or decoded without a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"op":"run","name":"nightly"}`, `{"op":"credentials-remove","name":"x"}`, `{"op":1}`, `{}`, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
	})
}
