package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFilePrivRisk(t *testing.T) {
	dir := t.TempDir()
	mount := filepath.Join(dir, "mnt")
	os.MkdirAll(filepath.Join(mount, "mysql", "d"), 0o755)
	os.Symlink(filepath.Join(mount, "mysql", "d"), filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "files"), 0o750)
	for _, tc := range []struct {
		row  []string
		want string
	}{
		{[]string{"1", "", "10.11.19-MariaDB"}, "unset"},
		{[]string{"0", "", "10.11.19-MariaDB"}, "unset"},
		{[]string{"1", "", "8.4.3"}, ""},
		{[]string{"0", filepath.Join(mount, "mysql", "d") + "/", "10.11.19-MariaDB"}, "inside the mount"},
		{[]string{"0", filepath.Join(dir, "link") + "/", "10.11.19-MariaDB"}, "leads into the mount"},
		{[]string{"0", filepath.Join(dir, "files") + "/", "10.11.19-MariaDB"}, ""},
	} {
		q := func(ctx context.Context, sql string) ([][]string, error) { return [][]string{tc.row}, nil }
		got, err := FilePrivRisk(context.Background(), q, mount)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.row, got, tc.want)
		}
	}
}
