package mycnf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ClientGroups are the groups ParseClient reads: those of mariadb-dump
// (mysqldump, mariadb-dump, client, client-server, client-mariadb) and of
// the mariadb command-line client (mysql, mariadb-client).
var ClientGroups = []string{
	"client", "mysql", "mariadb-client", "mysqldump", "mariadb-dump",
	"client-server", "client-mariadb",
}

// Client holds client connection settings. Empty strings and a zero Port
// mean "not set".
type Client struct {
	User, Password, Host, Socket string
	Port                         int
}

// ParseClient extracts the connection settings from the options of
// ClientGroups; the last occurrence wins. Names compare as the tools
// compare them (case-insensitive, '_' as '-', an optional "loose-"
// prefix). A bare "user", "password", "host" or "socket" without '=' unsets
// it (for "password" the tools would then prompt). Other options are
// ignored, and so are abbreviations such as "pass" that the tools accept
// as unique prefixes. A port must be a decimal number from 0 to 65535 (the
// tools also take suffixes such as "3k": that is an error here).
func ParseClient(opts []Option) (Client, error) {
	var c Client
	for _, o := range Select(opts, ClientGroups...) {
		name := strings.TrimPrefix(o.Canonical(), "loose-")
		var dst *string
		switch name {
		case "user":
			dst = &c.User
		case "password":
			dst = &c.Password
		case "host":
			dst = &c.Host
		case "socket":
			dst = &c.Socket
		case "port":
			if !o.HasValue || o.Value == "" {
				c.Port = 0
				continue
			}
			p, err := strconv.ParseUint(o.Value, 10, 16)
			if err != nil {
				return Client{}, fmt.Errorf("%s:%d: port is not a number from 0 to 65535", o.File, o.Line)
			}
			c.Port = int(p)
			continue
		default:
			continue
		}
		*dst = o.Value // "" for a bare name
	}
	return c, nil
}

// ErrUnrenderable is returned by Render for a value no option file can
// carry: one holding a NUL byte, or so long that its line would be split.
var ErrUnrenderable = errors.New("value cannot be written to an option file")

// Render returns a file with one [client] group holding c's settings (the
// empty ones left out) that the tools read back exactly. Every string is
// written in double quotes with \ " newline and carriage return escaped,
// so blanks at either end, '#', ';', quotes, '=', bytes that end UTF-8
// characters in 0xA0, and newlines all survive. A value with a NUL byte, or
// whose line would exceed the server's 4094-byte read, is an error wrapping
// ErrUnrenderable that names the setting, never its value.
func (c Client) Render() ([]byte, error) {
	var b strings.Builder
	b.WriteString("[client]\n")
	for _, kv := range []struct{ name, value string }{
		{"user", c.User},
		{"password", c.Password},
		{"host", c.Host},
		{"socket", c.Socket},
	} {
		if kv.value == "" {
			continue
		}
		line, err := renderLine(kv.name, kv.value)
		if err != nil {
			return nil, err
		}
		b.WriteString(line)
	}
	if c.Port != 0 {
		if c.Port < 0 || c.Port > 65535 {
			return nil, fmt.Errorf("port: %w: out of range", ErrUnrenderable)
		}
		fmt.Fprintf(&b, "port=%d\n", c.Port)
	}
	return []byte(b.String()), nil
}

// renderLine returns `name="escaped value"` and a newline.
func renderLine(name, value string) (string, error) {
	if strings.IndexByte(value, 0) >= 0 {
		return "", fmt.Errorf("%s: %w: it holds a NUL byte", name, ErrUnrenderable)
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(`="`)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("\"")
	if b.Len() > MaxPiece {
		return "", fmt.Errorf("%s: %w: its line would be longer than %d bytes", name, ErrUnrenderable, MaxPiece)
	}
	b.WriteString("\n")
	return b.String(), nil
}
