package volume

import "errors"

// Sentinel errors callers branch on (the CLI maps them to exit codes).
var (
	// ErrIncorrectCredentials: no key slot opens with the given credential.
	// A wrong passphrase and a wrong salt give the same error on purpose.
	ErrIncorrectCredentials = errors.New("incorrect credentials")

	// ErrNotInitialized: the store dir holds no volume config.
	ErrNotInitialized = errors.New("no mysecure volume")

	// ErrExists: init on a store dir that already holds a volume.
	ErrExists = errors.New("a mysecure volume already exists")

	// ErrCorruptConfig: the config file cannot be parsed or is inconsistent.
	ErrCorruptConfig = errors.New("volume config is corrupt")

	// ErrTampered: the config parses but its MAC does not match: it was
	// changed by something other than mysecure.
	ErrTampered = errors.New("volume config was modified outside mysecure (MAC mismatch)")

	// ErrUnsupported: a newer format version or an unknown feature flag.
	ErrUnsupported = errors.New("unsupported volume format")

	// ErrLastSlot: removing the only key slot would lock the data away.
	ErrLastSlot = errors.New("refusing to remove the last key slot")

	// ErrNoSuchSlot: no key slot has the given ID.
	ErrNoSuchSlot = errors.New("no such key slot")

	// ErrUnknownCategory: the volume has no category of that name.
	ErrUnknownCategory = errors.New("unknown category")

	// ErrBadCategoryName: not a lower-case letter then up to 31 of
	// a-z 0-9 _ -.
	ErrBadCategoryName = errors.New("bad category name")

	// ErrCategoryExists: AddCategory of a name the volume already has.
	ErrCategoryExists = errors.New("category exists already")

	// ErrCategoryInUse: RemoveCategory of a category that still holds
	// files in the store or that an access rule names.
	ErrCategoryInUse = errors.New("category is in use")

	// ErrLastCategory: removing the only category would leave a volume
	// with nowhere to put data (and one that no build opens).
	ErrLastCategory = errors.New("refusing to remove the last category")

	// ErrNotMasterCredential: the volume was unlocked with a credential
	// that may open it (mount, decrypt, verify) but not manage it: a key
	// file or a kms slot. Adding, changing or removing key slots (and, in the daemon,
	// changing rules, modes and moves, or accepting a rollback) needs a
	// master credential: passphrase and salt, or an RSA private key.
	ErrNotMasterCredential = errors.New("a key file is not a master credential")

	// ErrInsecureKeyFile: a key file others can read is refused.
	ErrInsecureKeyFile = errors.New("key file is readable by others")
)
