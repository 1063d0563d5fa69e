package backup

import (
	"encoding/json"
	"fmt"
	"time"
)

// ManifestVersion is the version of the manifest format.
const ManifestVersion = 1

// Backup types.
const (
	Logical  = "logical"
	Physical = "physical"
)

// Manifest describes one complete backup. It is stored encrypted and
// authenticated next to the data; DataFileID binds it to its data file.
type Manifest struct {
	FormatVersion int        `json:"format_version"`
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Job           string     `json:"job,omitempty"`
	Credentials   string     `json:"credentials"`
	Databases     []string   `json:"databases,omitempty"` // empty: all
	Tool          ToolInfo   `json:"tool"`
	Server        ServerInfo `json:"server"`
	Binlog        *Binlog    `json:"binlog,omitempty"`
	Started       time.Time  `json:"started"`
	Finished      time.Time  `json:"finished"`
	ExitStatus    int        `json:"exit_status"`

	PlainBytes  int64  `json:"plain_bytes"`  // tool output
	PackedBytes int64  `json:"packed_bytes"` // after zstd
	StoredBytes int64  `json:"stored_bytes"` // in the store (encrypted)
	PlainSHA256 string `json:"plain_sha256"` // of the tool output
	Compression string `json:"compression"`  // "zstd"
	Level       int    `json:"level"`
	DataFileID  string `json:"data_file_id"` // hex, from the data file's header

	// Trailer is the completion line of a logical dump.
	Trailer string `json:"trailer,omitempty"`
	// Stream summarizes a physical backup's xbstream.
	Stream *StreamInfo `json:"stream,omitempty"`
	// Remote is set for a backup of a server on another host (over SSH).
	Remote *RemoteInfo `json:"remote,omitempty"`
	// Targets are where the backup was written, when not only to the
	// local store ("local" and object store names).
	Targets []string `json:"targets,omitempty"`
}

// ToolInfo is the program that produced the stream.
type ToolInfo struct {
	Name    string   `json:"name"`
	Path    string   `json:"path"`
	Version string   `json:"version"`
	Args    []string `json:"args"` // without the credentials argument
}

// ServerInfo is what the server said about itself before the backup.
type ServerInfo struct {
	Version  string `json:"version"`
	Hostname string `json:"hostname,omitempty"`
	LogBin   bool   `json:"log_bin"`
}

// Binlog is the binary log position the backup is consistent with.
type Binlog struct {
	File     string `json:"file,omitempty"`
	Position uint64 `json:"position,omitempty"`
	GTID     string `json:"gtid,omitempty"`
}

// StreamInfo summarizes an xbstream.
type StreamInfo struct {
	Files  int   `json:"files"`
	Chunks int64 `json:"chunks"`
}

// Duration is how long the backup took.
func (m *Manifest) Duration() time.Duration { return m.Finished.Sub(m.Started) }

func parseManifest(b []byte, id string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, id, err)
	}
	if m.FormatVersion < 1 || m.FormatVersion > ManifestVersion {
		return nil, fmt.Errorf("%w: manifest of %s has format version %d (this mysecure reads up to %d)", ErrCorrupt, id, m.FormatVersion, ManifestVersion)
	}
	if m.ID != id {
		return nil, fmt.Errorf("%w: manifest in %s names backup %s", ErrCorrupt, id, m.ID)
	}
	if m.Type != Logical && m.Type != Physical {
		return nil, fmt.Errorf("%w: manifest of %s has type %q", ErrCorrupt, id, m.Type)
	}
	return &m, nil
}
