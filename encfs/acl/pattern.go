package acl

import "unicode/utf8"

// MatchPattern reports whether path matches a rule pattern. In a pattern,
// '*' matches any run of characters including '/', '?' matches one
// character other than '/', and every other byte matches itself: there are
// no character classes and no escapes. path is relative to the category,
// without a leading slash, for example "var/lib/mysql/ibdata1"; so "*"
// matches every file of the category, "*.cnf" every .cnf file at any depth
// and "dir/*" everything under dir.
//
// Matching is linear in the common case and O(len(pattern)*len(path)) at
// worst; it never allocates.
func MatchPattern(pattern, path string) bool {
	p, s := 0, 0
	starP, starS := -1, 0 // after the last '*': pattern index, path index it resumes from
	for s < len(path) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starS = p+1, s
				p++
				continue
			case '?':
				if path[s] != '/' {
					_, w := utf8.DecodeRuneInString(path[s:])
					p++
					s += w
					continue
				}
			default:
				if c == path[s] {
					p++
					s++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' take one more character and try again.
		_, w := utf8.DecodeRuneInString(path[starS:])
		starS += w
		p, s = starP, starS
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
