package guard

import (
	"regexp"
	"strings"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// serverGroupRE matches the groups a server of any version reads, with
// any --defaults-group-suffix.
var serverGroupRE = regexp.MustCompile(`^(mysqld|server|mariadb|mariadbd|client-server|galera)(-[0-9]+\.[0-9]+)?`)

// readOptions returns the options of file (and what it includes) in
// groups, or in every server group when groups is nil. Unreadable files
// yield nothing: the server skips them too.
func readOptions(file string, groups []string) []mycnf.Option {
	l, err := mycnf.LoadAll(file)
	if err != nil || l == nil {
		return nil
	}
	if groups != nil {
		return mycnf.Select(l.Options, groups...)
	}
	var out []mycnf.Option
	for _, o := range l.Options {
		if serverGroupRE.MatchString(strings.ToLower(o.Group)) {
			out = append(out, o)
		}
	}
	return out
}
