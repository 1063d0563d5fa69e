package schedule

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// The jobs are "schedules:" entries of the configuration file. EditConfig
// changes them in place with yaml.v3's node API, so that comments and the
// order of everything else stay as the administrator wrote them.

func loadYAMLDoc(path string) (*yaml.Node, os.FileMode, error) {
	b, err := os.ReadFile(path)
	mode := os.FileMode(0o600)
	if errors.Is(err, os.ErrNotExist) {
		return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}, mode, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, 0, fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, 0, fmt.Errorf("config file %s: the top level is not a mapping", path)
	}
	return &doc, mode, nil
}

// schedulesNode returns the sequence under "schedules:", creating it.
func schedulesNode(doc *yaml.Node) (*yaml.Node, error) {
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "schedules" {
			seq := root.Content[i+1]
			if seq.Kind == yaml.ScalarNode && (seq.Tag == "!!null" || seq.Value == "") {
				*seq = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			}
			if seq.Kind != yaml.SequenceNode {
				return nil, errors.New("schedules: is not a list")
			}
			return seq, nil
		}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	root.Content = append(root.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "schedules", HeadComment: "Backup schedules (docs/schedules.md)"},
		seq)
	return seq, nil
}

// JobNameOf returns the name: of a job's node.
func JobNameOf(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// JobNode renders a job with only the fields that are set, durations as
// "10m" (yaml would write nanoseconds).
func JobNode(j Job) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
	}
	str := func(k, v string) {
		if v != "" {
			add(k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
		}
	}
	num := func(parent func(string, *yaml.Node), k string, v int) {
		if v != 0 {
			parent(k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)})
		}
	}
	dur := func(parent func(string, *yaml.Node), k string, d time.Duration) {
		if d != 0 {
			parent(k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: d.String()})
		}
	}
	boolean := func(k string, b bool) {
		if b {
			add(k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		}
	}
	str("name", j.Name)
	str("schedule", j.Schedule)
	str("type", j.Type)
	if len(j.Databases) > 0 {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, d := range j.Databases {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: d})
		}
		add("databases", seq)
	}
	str("credentials", j.Credentials)
	num(add, "level", j.Level)
	if _, ok := j.Retention.Policy(); ok {
		r := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		radd := func(k string, v *yaml.Node) {
			r.Content = append(r.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
		}
		num(radd, "keep-last", j.Retention.KeepLast)
		num(radd, "keep-daily", j.Retention.KeepDaily)
		num(radd, "keep-weekly", j.Retention.KeepWeekly)
		num(radd, "keep-monthly", j.Retention.KeepMonthly)
		num(radd, "keep-yearly", j.Retention.KeepYearly)
		dur(radd, "keep-within", j.Retention.KeepWithin)
		add("retention", r)
	}
	dur(add, "jitter", j.Jitter)
	str("timezone", j.Timezone)
	dur(add, "max-age", j.MaxAge)
	boolean("catch-up", j.CatchUp)
	str("overlap", j.Overlap)
	str("pre-hook", j.PreHook)
	str("post-hook", j.PostHook)
	str("webhook", j.Webhook)
	boolean("webhook-on-success", j.WebhookOnSuccess)
	str("ssh", j.SSH)
	boolean("remote-dump", j.RemoteDump)
	boolean("system", j.System)
	return m
}

// SetSystemFlag sets or clears "system: true" on the named jobs (all
// when names is empty).
func SetSystemFlag(seq *yaml.Node, names map[string]bool, on bool) {
	for _, n := range seq.Content {
		if n.Kind != yaml.MappingNode || (len(names) > 0 && !names[JobNameOf(n)]) {
			continue
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "system" {
				found = true
				if on {
					n.Content[i+1].Value, n.Content[i+1].Tag = "true", "!!bool"
				} else {
					n.Content = append(n.Content[:i], n.Content[i+2:]...)
				}
				break
			}
		}
		if on && !found {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "system"},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		}
	}
}

// EditConfig changes the schedules list of the config file atomically.
func EditConfig(path string, edit func(seq *yaml.Node) error) error {
	doc, mode, err := loadYAMLDoc(path)
	if err != nil {
		return err
	}
	seq, err := schedulesNode(doc)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := edit(seq); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	enc.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), mode); err != nil {
		return err
	}
	if f, err := os.Open(tmp); err == nil {
		f.Sync()
		f.Close()
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
