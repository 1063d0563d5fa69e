package acl

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"*", "ibdata1", true},
		{"*", "var/lib/mysql/ibdata1", true},
		{"*", "", true},
		{"*.cnf", "my.cnf", true},
		{"*.cnf", "etc/mysql/my.cnf", true},
		{"*.cnf", "my.cnf.bak", false},
		{"*.cnf", "my.cn", false},
		{"dir/*", "dir/a", true},
		{"dir/*", "dir/a/b/c", true},
		{"dir/*", "dir", false},
		{"dir/*", "other/dir/a", false},
		{"ib*", "ibdata1", true},
		{"ib*", "xibdata1", false},
		{"?", "a", true},
		{"?", "", false},
		{"?", "ab", false},
		{"?", "/", false},
		{"a?c", "abc", true},
		{"a?c", "a/c", false},
		{"?", "é", true},   // one character of two bytes
		{"??", "é", false}, // not two
		{"*?", "é", true},
		{"*??", "é", false},
		{"*??", "éa", true},
		{"a*b*c", "a/x/b/y/c", true},
		{"a*b*c", "abcabc", true},
		{"a*b*c", "acb", false},
		{"**", "x/y", true},
		{"*a*a*a*a*b", strings.Repeat("a", 40), false},
		{"ibdata1", "ibdata1", true},
		{"ibdata1", "ibdata2", false},
		{"[abc]", "a", false}, // no character classes
		{"[abc]", "[abc]", true},
		{`\*`, `\x`, true}, // no escapes: '\' is literal, '*' still a wildcard
		{"", "", true},
		{"", "a", false},
		{"a/", "a", false},
		// Not valid UTF-8: the first '*' takes the lone \xf1, the literal
		// \xf1 the first byte of U+40484, the second '*' two more bytes
		// (one character each when decoded from there). Found by
		// FuzzMatchPattern.
		{"*\xf1*\x84", "\xf1\U00040484", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.path, func(t *testing.T) {
			if got := MatchPattern(tt.pattern, tt.path); got != tt.want {
				t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

// FuzzMatchPattern compares MatchPattern with a slow recursive definition.
func FuzzMatchPattern(f *testing.F) {
	f.Add("*.cnf", "a/b.cnf")
	f.Add("a?c*", "abcdef")
	f.Add("*??", "é")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		if len(pattern) > 12 || len(path) > 24 {
			return
		}
		want := slowMatch(pattern, path)
		if got := MatchPattern(pattern, path); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, want %v", pattern, path, got, want)
		}
		if got := matchMemo(pattern, path); got != want {
			t.Fatalf("matchMemo(%q, %q) = %v, want %v", pattern, path, got, want)
		}
	})
}

func slowMatch(pattern, path string) bool {
	if pattern == "" {
		return path == ""
	}
	switch pattern[0] {
	case '*':
		// '*' takes whole characters, like '?'. "**" is "*" (and keeps
		// this reference from going exponential).
		pattern = strings.TrimLeft(pattern, "*")
		for i := 0; ; {
			if slowMatch(pattern, path[i:]) {
				return true
			}
			if i == len(path) {
				return false
			}
			_, w := utf8.DecodeRuneInString(path[i:])
			i += w
		}
	case '?':
		if path == "" || path[0] == '/' {
			return false
		}
		_, w := utf8.DecodeRuneInString(path)
		return slowMatch(pattern[1:], path[w:])
	}
	return path != "" && path[0] == pattern[0] && slowMatch(pattern[1:], path[1:])
}
