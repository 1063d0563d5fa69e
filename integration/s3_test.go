package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mysecure/mysecure/internal/testenv"
)

// s3Server is a versitygw gateway over a POSIX directory on loopback,
// with test credentials of its own.
type s3Server struct {
	endpoint string
	access   string
	secret   string
	dir      string
	client   *s3.Client
}

const versitygwVersion = "v1.8.0"

// versitygwBinary finds versitygw on PATH, or builds it into a cache
// directory (scripts/setup-deps.sh installs it into /usr/local/bin).
func versitygwBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "mysecure-test-bin")
	p := filepath.Join(bin, "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+versitygwVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("versitygw is not installed and could not be built (%v): %s; run scripts/setup-deps.sh", err, s3LastLines(string(out), 3))
		if testenv.Strict() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func s3LastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startS3 runs versitygw posix (with versioning, which object lock needs)
// on 127.0.0.1 and a random port.
func startS3(t *testing.T) *s3Server {
	t.Helper()
	bin := versitygwBinary(t)
	dir := t.TempDir()
	root, vers := filepath.Join(dir, "gw"), filepath.Join(dir, "versions")
	for _, d := range []string{root, vers} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var r [12]byte
	rand.Read(r[:])
	s := &s3Server{access: "test" + hex.EncodeToString(r[:4]), secret: hex.EncodeToString(r[4:]), dir: root}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.endpoint = "http://" + addr
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", "--versioning-dir", vers, root)
	// The gateway's own test credentials, in its environment (not in argv).
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.access, "ROOT_SECRET_ACCESS_KEY="+s.secret)
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s: %s", addr, logb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.client = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.access, s.secret, "")})
	return s
}

func (s *s3Server) bucket(t *testing.T, name string, lock bool) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := s.client.CreateBucket(context.Background(), in); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// credentialsFile writes an AWS shared credentials file for mysecure.
func (s *s3Server) credentialsFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "s3.credentials")
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s.access, s.secret)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *s3Server) keys(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	out, err := s.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var k []string
	for _, o := range out.Contents {
		k = append(k, aws.ToString(o.Key))
	}
	return k
}

func (s *s3Server) uploads(t *testing.T, bucket string) []types.MultipartUpload {
	t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Uploads
}

// s3Env is a backup environment whose config names object stores.
func newS3Env(t *testing.T, s *s3Server, targets string) *bkEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mysecure.yaml")
	creds := s.credentialsFile(t, dir)
	body := strings.NewReplacer("@ENDPOINT@", s.endpoint, "@CREDS@", creds).Replace(targets)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return newBackupEnv(t, "MYSECURE_CONFIG="+cfg)
}

func (b *bkEnv) remoteCatalog(t *testing.T, target string) []catalogEntry {
	t.Helper()
	out, _ := b.ms(t, 0, "backup", "list", "--json", "--target", target)
	var res struct {
		Backups []catalogEntry    `json:"backups"`
		Broken  map[string]string `json:"broken"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("backup list --json --target %s: %v\n%s", target, err, out)
	}
	if len(res.Broken) > 0 {
		t.Fatalf("broken backups in %s: %v", target, res.Broken)
	}
	return res.Backups
}

const s3Targets = `backup-targets:
  offsite:
    url: s3://backups/db1
    endpoint: @ENDPOINT@
    region: us-east-1
    credentials-file: @CREDS@
    path-style: true
  locked:
    url: s3://vault/db1
    endpoint: @ENDPOINT@
    credentials-file: @CREDS@
    path-style: true
    object-lock-mode: governance
    object-lock-days: 1
`

// TestS3BigBackup: a ~300 MiB dump goes to the object store only, in
// parts, with bounded memory; a backup killed mid-upload leaves nothing
// visible and its upload is aborted by the next run; the backup restores
// with equal table checksums.
func TestS3BigBackup(t *testing.T) {
	testenv.RequireRoot(t)
	s := startS3(t)
	s.bucket(t, "backups", false)
	b := newS3Env(t, s, s3Targets)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// 38400 rows of 4 KiB random bytes: 150 MiB of data, a 300 MiB dump
	// (--hex-blob doubles it).
	const rows = 38400
	if out, err := b.srv.Client(ctx, fmt.Sprintf(`CREATE DATABASE big; USE big; CREATE TABLE big.t (id INT PRIMARY KEY, b MEDIUMBLOB) ENGINE=InnoDB;
INSERT INTO big.t SELECT seq, CONCAT(RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024)) FROM seq_1_to_%d;`, rows)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	// 1. Killed mid-upload.
	cmd := exec.Command(binary, append([]string{"backup", "--databases", "big", "--to", "offsite"}, b.creds...)...)
	cmd.Env = append(os.Environ(), b.vars...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ups := s.uploads(t, "backups")
		if len(ups) == 1 {
			parts, err := s.client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("backups"), Key: ups[0].Key, UploadId: ups[0].UploadId})
			if err == nil && len(parts.Parts) >= 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no multipart upload with 2 parts appeared; stderr: %s", errb.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if c := b.remoteCatalog(t, "offsite"); len(c) != 0 {
		t.Fatalf("a killed backup is in the catalog: %s", ids(c))
	}
	for _, k := range s.keys(t, "backups", "") {
		if strings.HasSuffix(k, "manifest.json") || strings.HasSuffix(k, "data.zst") {
			t.Fatalf("a killed backup left a visible object %s", k)
		}
	}
	if len(s.uploads(t, "backups")) != 1 {
		t.Fatal("the killed run should have left its incomplete upload (for the next run to abort)")
	}

	// 2. The full backup, to the object store only.
	cmd = exec.Command(binary, append([]string{"backup", "--databases", "big", "--to", "offsite", "--json"}, b.creds...)...)
	cmd.Env = append(os.Environ(), b.vars...)
	var out bytes.Buffer
	errb.Reset()
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The peak resident memory of mysecure itself, sampled from
	// /proc/PID/status while it runs (the child's rusage would add
	// mariadb-dump's and vary with it: 131 to 275 MiB in four runs).
	peak := make(chan int64, 1)
	go func() {
		var max int64
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			if err != nil {
				break
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
					if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb<<10 > max {
						max = kb << 10
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		peak <- max
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("backup: %v\n%s", err, errb.String())
	}
	var m catalogEntry
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if m.PlainBytes < 300<<20 {
		t.Fatalf("the dump has %d bytes, want at least 300 MiB", m.PlainBytes)
	}
	maxRSS := <-peak
	t.Logf("backup of %d MiB: peak RSS of mysecure %d MiB (last sample before exit)", m.PlainBytes>>20, maxRSS>>20)
	if maxRSS == 0 {
		t.Fatal("no memory sample of the backup process")
	}
	if maxRSS > 160<<20 {
		t.Errorf("peak RSS %d MiB: the upload is not streamed", maxRSS>>20)
	}
	if ups := s.uploads(t, "backups"); len(ups) != 0 {
		t.Errorf("the killed run's upload was not aborted: %d incomplete uploads", len(ups))
	}
	if c := b.catalog(t); len(c) != 0 {
		t.Fatalf("--to offsite wrote a local backup: %s", ids(c))
	}
	c := b.remoteCatalog(t, "offsite")
	if len(c) != 1 || c[0].ID != m.ID || c[0].PlainSHA256 != m.PlainSHA256 {
		t.Fatalf("catalog of offsite: %+v, want %s", c, m.ID)
	}
	dataKey := "db1/backups/" + m.ID + "/data.zst"
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("backups"), Key: aws.String(dataKey)})
	if err != nil {
		t.Fatal(err)
	}
	etag := strings.Trim(aws.ToString(head.ETag), `"`)
	if i := strings.LastIndexByte(etag, '-'); i < 0 || etag[i+1:] == "1" {
		t.Errorf("data object ETag %q: not a multipart upload of several parts", etag)
	}
	// Only ciphertext in the objects.
	for _, k := range []string{dataKey, "db1/backups/" + m.ID + "/manifest.json"} {
		obj, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("backups"), Key: aws.String(k), Range: aws.String("bytes=0-1048575")})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(obj.Body)
		obj.Body.Close()
		for _, plain := range []string{"plain_sha256", "CREATE TABLE", "INSERT INTO", m.ID + `"`} {
			if bytes.Contains(buf.Bytes(), []byte(plain)) {
				t.Errorf("object %s holds plaintext %q", k, plain)
			}
		}
	}

	// 3. Verify and restore from the object store.
	vout, _ := b.ms(t, 0, "backup", "verify", m.ID, "--target", "offsite")
	if !strings.Contains(vout, m.ID+" ok") {
		t.Fatalf("verify: %s", vout)
	}
	b.ms(t, 0, "restore", m.ID, "--from", "offsite", "--rename-to", "big_copy")
	sum := func(table string) string {
		out, err := b.srv.Client(ctx, "CHECKSUM TABLE "+table+" EXTENDED;")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		f := strings.Fields(strings.TrimSpace(out))
		return f[len(f)-1]
	}
	if a, c := sum("big.t"), sum("big_copy.t"); a != c || a == "NULL" {
		t.Fatalf("checksums differ after restore: %s vs %s", a, c)
	}
}

// TestS3ObjectLock: with object lock, deletion during retention is
// refused (by mysecure and by the store itself), prune keeps the locked
// backups; without it prune deletes what the policy does not keep.
func TestS3ObjectLock(t *testing.T) {
	testenv.RequireRoot(t)
	s := startS3(t)
	s.bucket(t, "backups", false)
	s.bucket(t, "vault", true)
	b := newS3Env(t, s, s3Targets)
	ctx := context.Background()

	var lockedIDs []string
	for range 2 {
		out, _ := b.ms(t, 0, "backup", "--databases", "shop", "--to", "local,offsite,locked", "--json")
		var m catalogEntry
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		lockedIDs = append(lockedIDs, m.ID)
		time.Sleep(1100 * time.Millisecond) // distinct start times
	}
	for _, target := range []string{"offsite", "locked"} {
		if c := b.remoteCatalog(t, target); len(c) != 2 {
			t.Fatalf("%s has %d backups, want 2", target, len(c))
		}
	}
	if c := b.catalog(t); len(c) != 2 {
		t.Fatalf("local has %d backups, want 2", len(c))
	}
	b.ms(t, 0, "backup", "verify", "--all", "--target", "locked")

	// The store itself refuses to delete a locked version.
	key := "db1/backups/" + lockedIDs[0] + "/data.zst"
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("vault"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if head.ObjectLockMode != types.ObjectLockModeGovernance || head.ObjectLockRetainUntilDate == nil || head.ObjectLockRetainUntilDate.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("object lock of %s: %s until %v", key, head.ObjectLockMode, head.ObjectLockRetainUntilDate)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("vault"), Key: aws.String(key), VersionId: head.VersionId}); err == nil {
		t.Fatal("the store deleted a locked object version")
	}
	_, stderr := b.ms(t, 6, "backup", "delete", lockedIDs[0], "--target", "locked")
	if !strings.Contains(stderr, "object lock") {
		t.Errorf("delete of a locked backup: %s", stderr)
	}
	pout, _ := b.ms(t, 0, "backup", "prune", "--keep-last", "1", "--target", "locked", "--json")
	var decs []struct {
		ID      string   `json:"id"`
		Keep    bool     `json:"keep"`
		Deleted bool     `json:"deleted"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(pout), &decs); err != nil {
		t.Fatal(err)
	}
	locked := 0
	for _, d := range decs {
		if d.Deleted || !d.Keep {
			t.Errorf("prune deleted a locked backup: %+v", d)
		}
		if strings.Contains(strings.Join(d.Reasons, ","), "object lock until") {
			locked++
		}
	}
	if locked != 1 {
		t.Errorf("prune decisions: %s", pout)
	}
	if c := b.remoteCatalog(t, "locked"); len(c) != 2 {
		t.Fatalf("locked has %d backups after prune, want 2", len(c))
	}

	// Without a lock, prune deletes what the policy does not keep, in
	// the object store (every version) and nowhere else.
	b.ms(t, 0, "backup", "prune", "--keep-last", "1", "--target", "offsite")
	c := b.remoteCatalog(t, "offsite")
	if len(c) != 1 || c[0].ID != lockedIDs[1] {
		t.Fatalf("offsite after prune: %s", ids(c))
	}
	vers, err := s.client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("backups"), Prefix: aws.String("db1/backups/" + lockedIDs[0])})
	if err == nil && len(vers.Versions) > 0 {
		t.Errorf("pruned backup left %d object versions", len(vers.Versions))
	}
	if c := b.catalog(t); len(c) != 2 {
		t.Fatalf("pruning offsite touched local: %d backups", len(c))
	}
}
