package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MountInfoPath is this process's mount table.
const MountInfoPath = Root + "/self/mountinfo"

// Mount is one line of a mountinfo file (see proc(5)).
type Mount struct {
	ID, Parent int
	Dev        string // "major:minor" of the mounted filesystem
	Root       string // the directory of the filesystem mounted here
	Point      string // the mount point, unescaped
	Options    string // per-mount options
	FSType     string // after the " - " separator: "fuse.mysecure", "ext4" ...
	Source     string // unescaped
}

// Unescape undoes the kernel's octal escapes of a mountinfo field: a
// backslash and three octal digits is that byte (\040 space, \011 tab,
// \012 newline, \134 backslash). A backslash not followed by three octal
// digits stays as it is.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// ParseMountinfo parses the content of a mountinfo file. Lines with fewer
// than five fields are skipped; a line without the " - " separator has no
// FSType and Source.
func ParseMountinfo(data []byte) []Mount {
	var out []Mount
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		m := Mount{Dev: f[2], Root: Unescape(f[3]), Point: Unescape(f[4])}
		m.ID, _ = strconv.Atoi(f[0])
		m.Parent, _ = strconv.Atoi(f[1])
		if len(f) > 5 {
			m.Options = f[5]
		}
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				if i+1 < len(f) {
					m.FSType = f[i+1]
				}
				if i+2 < len(f) {
					m.Source = Unescape(f[i+2])
				}
				break
			}
		}
		out = append(out, m)
	}
	return out
}

// MountsFrom reads and parses a mountinfo file.
func MountsFrom(path string) ([]Mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the mount table: %w", err)
	}
	return ParseMountinfo(b), nil
}

// Mounts reads this process's mount table, /proc/self/mountinfo.
func Mounts() ([]Mount, error) { return MountsFrom(MountInfoPath) }

// MountAt returns the last mount listed at dir (the one on top) from
// mounts, comparing cleaned paths; ok is false when there is none.
func MountAt(mounts []Mount, dir string) (m Mount, ok bool) {
	clean := filepath.Clean(dir)
	for _, x := range mounts {
		if x.Point == clean {
			m, ok = x, true
		}
	}
	return m, ok
}
