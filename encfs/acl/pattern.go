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
// A character is what utf8.DecodeRuneInString takes: a valid UTF-8
// sequence, or one byte of an invalid one.
//
// Matching is linear in the common case and O(len(pattern)*len(path)) at
// worst; it does not allocate for a pattern that is valid UTF-8 (every
// pattern ParseRule accepts from text written by a user). A pattern that
// is not valid UTF-8 is matched by matchMemo: there a literal byte can
// match part of a path's character, which the single-backtrack loop below
// does not handle (the fuzz target FuzzMatchPattern found one such pattern
// in a 10-minute run).
func MatchPattern(pattern, path string) bool {
	if !utf8.ValidString(pattern) {
		return matchMemo(pattern, path)
	}
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

// matchMemo is MatchPattern's definition, memoized: for every pattern,
// valid UTF-8 or not, in O(len(pattern)*len(path)) time and space.
func matchMemo(pattern, path string) bool {
	const unknown, no, yes = 0, 1, 2
	memo := make([]byte, (len(pattern)+1)*(len(path)+1))
	var match func(p, s int) bool
	match = func(p, s int) bool {
		m := &memo[p*(len(path)+1)+s]
		if *m != unknown {
			return *m == yes
		}
		var ok bool
		switch {
		case p == len(pattern):
			ok = s == len(path)
		case pattern[p] == '*':
			ok = match(p+1, s)
			if !ok && s < len(path) {
				_, w := utf8.DecodeRuneInString(path[s:])
				ok = match(p, s+w)
			}
		case s == len(path):
			ok = false
		case pattern[p] == '?':
			_, w := utf8.DecodeRuneInString(path[s:])
			ok = path[s] != '/' && match(p+1, s+w)
		default:
			ok = pattern[p] == path[s] && match(p+1, s+1)
		}
		*m = no
		if ok {
			*m = yes
		}
		return ok
	}
	return match(0, 0)
}
