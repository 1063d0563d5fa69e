// Package volume implements the mysecure volume: its versioned, authenticated
// config file, the random master key wrapped in key slots (passphrase+salt
// with Argon2id, RSA-OAEP, key file, a KMIP key server) and the HKDF
// subkeys derived from it.
//
// It must not print, prompt or read terminals: callers hand it credentials
// as bytes. Only kms slots reach the network (their key server, through
// internal/kmip), and only when a kms credential is used. It knows categories as names (added and removed with the
// master credential) and looks into a category's store directory only to
// tell whether it is empty; what lives in them is the business of the
// mount and the modules above.
package volume

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mysecure/mysecure/internal/atomicfile"
	"github.com/mysecure/mysecure/internal/dirs"
)

const (
	// ConfigName is the volume config file's name inside the store dir.
	ConfigName = "mysecure.conf"

	// FormatName identifies a mysecure volume config.
	FormatName = "mysecure-volume"

	// ConfigVersion is the config format version this build writes and the
	// newest it reads. Version 2 added "generation"; a version 1 config
	// reads as generation 0 and is written back as version 2.
	ConfigVersion = 2
)

// Feature flags written into new volumes. A volume naming a feature this
// build does not know is refused (ErrUnsupported), so a newer volume is
// never misread by an older binary.
const (
	FeatureContentGCM4K = "content-aes256gcm-4k"
	FeatureNamesEME     = "names-eme"
	FeatureLongNames    = "names-long"
	FeatureHKDFSubkeys  = "hkdf-sha256-subkeys"
)

var knownFeatures = []string{FeatureContentGCM4K, FeatureNamesEME, FeatureLongNames, FeatureHKDFSubkeys}

// FeatureSlotKMS is written by the first kms key slot: a build that does
// not know kms slots then says "unsupported" (upgrade) rather than
// "corrupt". Optional features are not required of a volume.
const FeatureSlotKMS = "slot-kms"

var optionalFeatures = []string{FeatureSlotKMS}

// DefaultCategories are the categories a new volume gets unless told
// otherwise: the four of the product mysecure replaces.
var DefaultCategories = []string{"mysql", "mysqlbackup", "ndbdata", "protected"}

var categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// ValidCategory reports whether name (without the leading @) can be a
// category: a lower-case letter, then up to 31 of [a-z0-9_-].
func ValidCategory(name string) bool { return categoryRE.MatchString(name) }

// Config is the content of the volume config file, authenticated as a
// whole by an HMAC with a key derived from the master key.
type Config struct {
	Format   string `json:"format"`
	Version  int    `json:"version"`
	VolumeID string `json:"volume_id"`
	Created  string `json:"created"`
	// Generation counts the writes of the config (version 2; 0 when
	// absent). It is under the MAC, so an older copy put back into the
	// store shows a lower number than the last one seen (encfs/rollback).
	Generation uint64   `json:"generation,omitempty"`
	Features   []string `json:"features"`
	Categories []string `json:"categories"`
	Slots      []Slot   `json:"slots"`
}

// fileLayout is the JSON object stored on disk.
type fileLayout struct {
	Volume json.RawMessage `json:"volume"`
	MAC    string          `json:"mac"`
}

// Volume is a loaded (not necessarily unlocked) volume.
type Volume struct {
	Dir    string
	Config Config

	body []byte // compact JSON of Config as stored, what the MAC covers
	mac  []byte
}

// ConfigPath returns the path of the config file of the store dir.
func ConfigPath(dir string) string { return filepath.Join(dir, ConfigName) }

// Load reads and checks the config file of the store dir. It does not
// unlock anything, so it cannot yet tell whether the file was modified:
// Unlock checks the MAC.
func Load(dir string) (*Volume, error) {
	data, err := os.ReadFile(ConfigPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotInitialized, dir, ConfigName)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read volume config: %w", err)
	}
	return parse(dir, data)
}

// parse decodes a config file's bytes: version and features first, so that
// a newer format is reported as such rather than as corrupt.
func parse(dir string, data []byte) (*Volume, error) {
	var fl fileLayout
	if err := json.Unmarshal(data, &fl); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptConfig, err)
	}
	if len(fl.Volume) == 0 {
		return nil, fmt.Errorf("%w: no \"volume\" object", ErrCorruptConfig)
	}
	var head struct {
		Format   string   `json:"format"`
		Version  int      `json:"version"`
		Features []string `json:"features"`
	}
	if err := json.Unmarshal(fl.Volume, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptConfig, err)
	}
	if head.Format != FormatName {
		return nil, fmt.Errorf("%w: format is %q, want %q", ErrCorruptConfig, head.Format, FormatName)
	}
	if head.Version > ConfigVersion || head.Version < 1 {
		return nil, fmt.Errorf("%w: volume format version %d (this mysecure reads 1 to %d)", ErrUnsupported, head.Version, ConfigVersion)
	}
	for _, f := range head.Features {
		if !slices.Contains(knownFeatures, f) && !slices.Contains(optionalFeatures, f) {
			return nil, fmt.Errorf("%w: volume uses feature %q, unknown to this mysecure", ErrUnsupported, f)
		}
	}
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(fl.Volume))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptConfig, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptConfig, err)
	}
	mac, err := base64.StdEncoding.DecodeString(fl.MAC)
	if err != nil || len(mac) != sha256.Size {
		return nil, fmt.Errorf("%w: bad mac field", ErrCorruptConfig)
	}
	var body bytes.Buffer
	if err := json.Compact(&body, fl.Volume); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptConfig, err)
	}
	return &Volume{Dir: dir, Config: cfg, body: body.Bytes(), mac: mac}, nil
}

// validate checks what the structure can tell without the master key.
func (c *Config) validate() error {
	id, err := hex.DecodeString(c.VolumeID)
	if err != nil || len(id) != 16 {
		return errors.New("bad volume_id")
	}
	for _, f := range knownFeatures {
		if !slices.Contains(c.Features, f) {
			return fmt.Errorf("feature %q missing", f)
		}
	}
	if len(c.Categories) == 0 {
		return errors.New("no categories")
	}
	for _, cat := range c.Categories {
		if !ValidCategory(cat) {
			return fmt.Errorf("bad category name %q", cat)
		}
	}
	if len(c.Slots) == 0 {
		return errors.New("no key slots")
	}
	if len(c.Slots) > MaxSlots {
		return fmt.Errorf("%d key slots, more than %d", len(c.Slots), MaxSlots)
	}
	seen := map[int]bool{}
	for i := range c.Slots {
		s := &c.Slots[i]
		if seen[s.ID] {
			return fmt.Errorf("key slot %d appears twice", s.ID)
		}
		seen[s.ID] = true
		if err := s.validate(c); err != nil {
			return fmt.Errorf("key slot %d: %v", s.ID, err)
		}
	}
	return nil
}

func (c *Config) volumeID() []byte {
	id, _ := hex.DecodeString(c.VolumeID)
	return id
}

// HasCategory reports whether the volume has category name.
func (c *Config) HasCategory(name string) bool { return slices.Contains(c.Categories, name) }

// CheckCategory returns nil when name is one of have (a volume's
// categories), else ErrUnknownCategory naming the categories it has.
func CheckCategory(name string, have []string) error {
	if slices.Contains(have, name) {
		return nil
	}
	return fmt.Errorf("%w @%s (the volume has @%s)", ErrUnknownCategory, name, strings.Join(have, ", @"))
}

// CreateOptions are the settings of a new volume.
type CreateOptions struct {
	// Categories of the volume; DefaultCategories when empty.
	Categories []string
	// Now, for tests; time.Now when zero.
	Now time.Time
}

// Create makes a new volume in dir (created 0700 if missing) with a fresh
// random master key wrapped into one key slot per credential. It refuses a
// dir that already holds a volume. When it fails, the key files of
// NewKeyFile credentials are removed: a key file that opens nothing would
// only confuse a retry.
func Create(dir string, opts CreateOptions, creds ...NewCredential) (*Volume, *Keys, error) {
	v, k, err := create(dir, opts, creds)
	if err != nil {
		discardKeyFiles(creds...)
	}
	return v, k, err
}

// CheckNew returns an error wrapping ErrExists when dir holds a volume
// already: Create refuses it; callers check before asking for secrets.
func CheckNew(dir string) error {
	if _, err := os.Lstat(ConfigPath(dir)); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, ConfigPath(dir))
	}
	return nil
}

func create(dir string, opts CreateOptions, creds []NewCredential) (*Volume, *Keys, error) {
	if len(creds) == 0 {
		return nil, nil, errors.New("at least one credential is needed")
	}
	if err := CheckNew(dir); err != nil {
		return nil, nil, err
	}
	cats := opts.Categories
	if len(cats) == 0 {
		cats = DefaultCategories
	}
	for _, c := range cats {
		if !ValidCategory(c) {
			return nil, nil, fmt.Errorf("bad category name %q: want a lower-case letter then up to 31 of a-z 0-9 _ -", c)
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, fmt.Errorf("failed to generate volume ID: %w", err)
	}
	v := &Volume{Dir: dir, Config: Config{
		Format:     FormatName,
		Version:    ConfigVersion,
		VolumeID:   hex.EncodeToString(id),
		Created:    now.UTC().Format(time.RFC3339),
		Features:   slices.Clone(knownFeatures),
		Categories: slices.Clone(cats),
	}}
	master := make([]byte, masterKeySize)
	if _, err := rand.Read(master); err != nil {
		return nil, nil, fmt.Errorf("failed to generate master key: %w", err)
	}
	keys := newKeys(master, &v.Config, 0)
	// The creator made the master key: whatever slots it wraps it into,
	// these keys manage the volume.
	keys.masterCred = true
	for _, c := range creds {
		if _, err := v.addSlot(keys, c, now); err != nil {
			keys.Wipe()
			return nil, nil, err
		}
	}
	keys.slotID = v.Config.Slots[0].ID
	keys.slotType = v.Config.Slots[0].Type
	// The store is 0700; its parents must stay searchable (0755), or the
	// default mount point beside it is out of reach of the database server.
	if err := dirs.MkdirAll(dir, 0o755, 0o700); err != nil {
		keys.Wipe()
		return nil, nil, fmt.Errorf("failed to create store dir: %w", err)
	}
	if err := v.save(keys); err != nil {
		keys.Wipe()
		return nil, nil, err
	}
	return v, keys, nil
}

// save writes the config with a fresh MAC, atomically: a temp file in the
// same dir, fsync, rename, fsync of the dir. A crash leaves the old or the
// new config, never a mix.
//
// Every save bumps the generation and writes the current format version.
func (v *Volume) save(k *Keys) (err error) {
	oldGen, oldVersion := v.Config.Generation, v.Config.Version
	v.Config.Generation++
	v.Config.Version = ConfigVersion
	defer func() {
		if err != nil {
			v.Config.Generation, v.Config.Version = oldGen, oldVersion
		}
	}()
	body, err := json.Marshal(&v.Config)
	if err != nil {
		return fmt.Errorf("failed to encode volume config: %w", err)
	}
	mac := k.configMAC(body)
	out, err := json.MarshalIndent(fileLayout{Volume: body, MAC: base64.StdEncoding.EncodeToString(mac)}, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode volume config: %w", err)
	}
	out = append(out, '\n')
	if err := atomicfile.Write(ConfigPath(v.Dir), out, 0o600); err != nil {
		return fmt.Errorf("failed to write volume config: %w", err)
	}
	v.body, v.mac = body, mac
	return nil
}

// verifyMAC checks the stored MAC with the unlocked keys.
func (v *Volume) verifyMAC(k *Keys) error {
	if !hmac.Equal(k.configMAC(v.body), v.mac) {
		return ErrTampered
	}
	return nil
}
