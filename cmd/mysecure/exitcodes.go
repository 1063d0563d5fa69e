package main

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/inplace"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/engine"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/hardening/audit"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
	"github.com/mysecure/mysecure/ndb"
)

// Exit codes are an interface: cron jobs and monitoring read them. Keep
// docs/exit-codes.md in step with this table.
const (
	exitOK          = 0
	exitError       = 1  // unexpected failure
	exitUsage       = 2  // bad flags, arguments or configuration file
	exitCredentials = 3  // incorrect credentials
	exitVolume      = 4  // no volume, or its config is corrupt, modified or too new
	exitData        = 5  // ciphertext corrupt or tampered, or from another volume
	exitFile        = 6  // an input is missing or an output already exists
	exitPermission  = 7  // permission denied (insecure key file, not allowed)
	exitNotMounted  = 8  // the daemon is not running: not mounted
	exitInterrupted = 9  // stopped by a signal; partial output was removed
	exitTool        = 10 // a backup or restore tool (or the MySQL server) failed
	exitMySQLCreds  = 11 // the MySQL server refused the stored backup credentials
	exitBusy        = 12 // another run of the same job holds its lock
	exitStale       = 13 // schedule status: a job's last success is older than its max-age
	exitAudit       = 14 // harden audit: a check failed
	exitDrift       = 15 // policy check: the host drifted from a policy
	exitSSH         = 16 // an SSH host could not be reached, refused the keys, or its host key is not trusted
	exitRemote      = 17 // remote exec: the remote command failed
	exitNodeDown    = 18 // ndb enable/disable: a node did not stop or did not come back (rolled back)
	exitObjectStore = 19 // an object store (S3) backup target could not be reached or refused the request
)

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(msg string) error { return &usageError{msg} }

// withHint attaches a hint to an error (an empty one too: it then hides
// the hint classify would give the wrapped error).
func withHint(err error, h string) error { return &hint.Error{Err: err, Hint: h} }

var errInterrupted = errors.New("interrupted")

// hintNotMaster is the hint for a key file given where a master
// credential is needed.
const hintNotMaster = "a key file only mounts, verifies and decrypts copies of files ('file decrypt'): give the passphrase and salt (prompted, or --passphrase-file and --salt-file) or --rsa-private-key"

// hintMySQLPrivs is the hint for MySQL credentials that log in but lack
// a privilege.
const hintMySQLPrivs = "grant what is missing, or use an account that has it: 'mysecure backup credentials set --name restore --user restore' and '--credentials restore' (docs/backup.md lists the grants backups and restores need)"

// classify maps an error to its exit code and a hint for the user.
func classify(err error) (code int, hnt string) {
	var h *hint.Error
	if errors.As(err, &h) {
		code, _ = classify(h.Err)
		return code, h.Hint
	}
	var ce *childError
	if errors.As(err, &ce) {
		return ce.code, ce.hint
	}
	if code, hint, ok := classifySSH(err); ok {
		return code, hint
	}
	// An error the daemon reported unwraps to the sentinel it stands for
	// (encfs/daemon errors.go, backup wire.go): the cases below serve
	// both paths.
	switch {
	case errors.Is(err, backup.ErrMySQLCredentials):
		return exitMySQLCreds, "store working credentials with 'mysecure backup credentials set'"
	case errors.Is(err, backup.ErrMySQLPrivileges):
		return exitMySQLCreds, hintMySQLPrivs
	case errors.Is(err, backup.ErrToolFailed):
		if h := toolHint(err); h != "" {
			return exitTool, h
		}
		return exitTool, "the error ends with the tool's last messages; nothing was added to the catalog"
	}
	if code, hint, ok := classifyKMS(err); ok {
		return code, hint
	}
	if code, hint, ok := classifyRollback(err); ok {
		return code, hint
	}
	var ue *usageError
	var wu *wrappedUsage
	switch {
	case errors.Is(err, ndb.ErrNotStarted):
		return exitNodeDown, "the node's last lines are in ndb_<ID>_out.log in its DataDir (they say why it did not start); 'ndb_mgm -e SHOW' shows the cluster"
	case errors.Is(err, ndb.ErrMgmRefused):
		return exitNodeDown, "the management server refuses to stop the node (its node group would have no node left): start the other nodes of its group, wait until 'ndb_mgm -e SHOW' shows them started, then run again; nothing was changed"
	case errors.Is(err, ndb.ErrStopFailed):
		return exitNodeDown, "the node did not stop in time and nothing was moved: see its ndb_<ID>_out.log, stop it by hand ('ndb_mgm -e \"ID STOP\"') or give a longer --stop-timeout"
	case errors.Is(err, ndb.ErrRunning):
		return exitFile, "pass --stop to stop the node through the management server and start it again afterwards"
	case errors.Is(err, ndb.ErrNoNode):
		return exitUsage, "'mysecure ndb status' lists the nodes of this host"
	case errors.Is(err, ndb.ErrConfig):
		return exitUsage, "fix the file at the line named, or name the programs (--ndbd, --ndbmtd, --ndb-mgmd); docs/ndb.md"
	case errors.Is(err, ndb.ErrMgmMissing):
		return exitTool, "install the MySQL Cluster management client or name it with --ndb-mgm"
	case errors.As(err, &wu):
		return exitUsage, "see 'mysecure help ndb'"
	case errors.Is(err, hardening.ErrHardened):
		return exitFile, "'mysecure harden mysqld --undo' restores the plain setup"
	case errors.Is(err, plan.ErrDrift):
		return exitDrift, ""
	case errors.Is(err, admin.ErrFingerprintChanged):
		return exitDrift, "review the new binary; 'mysecure acl update' trusts it"
	case errors.Is(err, engine.ErrForeignRules):
		return exitUsage, ""
	case errors.Is(err, engine.ErrForeignFile):
		return exitFile, "move the file away if it is not needed, or pass other --cnf-dir"
	case errors.Is(err, hardening.ErrNotHardened):
		return exitDrift, "'mysecure harden mysqld' installs the guard"
	case errors.Is(err, audit.ErrFailed):
		return exitAudit, "the findings above say why each matters and how to fix it"
	case errors.Is(err, schedule.ErrStale):
		return exitStale, ""
	case errors.Is(err, schedule.ErrInvalid):
		return exitUsage, "a schedule is 5 cron fields or @hourly, @daily, @weekly, @monthly, @every 6h"
	case errors.Is(err, backup.ErrLocked):
		return exitFile, hintLocked
	case errors.Is(err, backup.ErrObjectStore):
		return exitObjectStore, hintObjectStore
	case errors.Is(err, backup.ErrNotFound):
		return exitFile, "'mysecure backup list' shows the backups; 'mysecure backup credentials list' the credentials"
	case errors.Is(err, backup.ErrCorrupt):
		return exitData, "the backup is damaged or was modified: restore from another one ('mysecure backup list')"
	case errors.Is(err, backup.ErrToolMissing):
		return exitTool, "install the tool (Debian: mariadb-client, mariadb-backup) or name it in the configuration"
	case errors.Is(err, backup.ErrBusy):
		return exitBusy, "another run holds the lock; wait for it"
	case errors.Is(err, backup.ErrDenied):
		return exitPermission, "run as root"
	case errors.Is(err, daemon.ErrDenied):
		return exitPermission, "run as root"
	case errors.Is(err, hardening.ErrInitDir):
		return exitPermission, "pass --init-dir with a directory of root's that the server user can enter"
	case errors.Is(err, backup.ErrUsage):
		return exitUsage, "see 'mysecure help backup'"
	case errors.Is(err, backup.ErrExists):
		return exitFile, "choose an empty or missing directory"
	case errors.As(err, &ue):
		return exitUsage, "see 'mysecure help' for usage"
	case errors.Is(err, daemon.ErrUsage):
		return exitUsage, "see 'mysecure help' for the syntax"
	case errors.Is(err, daemon.ErrConflict):
		return exitFile, ""
	case errors.Is(err, errInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted, ""
	case errors.Is(err, inplace.ErrAlreadyEncrypted):
		return exitFile, "'ls -l' shows where it points; 'mysecure decrypt' moves it back"
	case errors.Is(err, inplace.ErrNotEncrypted):
		return exitFile, "only a symlink left by 'mysecure encrypt' can be decrypted"
	case errors.Is(err, inplace.ErrInUse), errors.Is(err, daemon.ErrInUse):
		return exitFile, "stop the program using it (mysqld) first, or pass --force"
	case errors.Is(err, inplace.ErrBusy):
		return exitFile, "another encrypt or decrypt is running; wait for it"
	case errors.Is(err, inplace.ErrRefused):
		return exitUsage, ""
	case errors.Is(err, daemon.ErrAlreadyMounted):
		return exitFile, "it is mounted already: 'mysecure status'"
	case errors.Is(err, daemon.ErrNotRunning):
		return exitNotMounted, "mount the volume with 'mysecure mount'"
	case errors.Is(err, volume.ErrIncorrectCredentials):
		return exitCredentials, "check the passphrase and the salt (both are needed), or the key you gave"
	case errors.Is(err, volume.ErrNotInitialized):
		return exitVolume, "create a volume with 'mysecure init --store DIR', or point --store at an existing one"
	case errors.Is(err, volume.ErrTampered):
		return exitVolume, "the config file was changed outside mysecure: restore mysecure.conf from a backup copy"
	case errors.Is(err, volume.ErrUnsupported):
		return exitVolume, "this volume was made by a newer mysecure: upgrade mysecure to open it"
	case errors.Is(err, volume.ErrCorruptConfig):
		return exitVolume, "restore mysecure.conf from a backup copy; without it the data cannot be decrypted"
	case errors.Is(err, volume.ErrExists):
		return exitFile, "choose an empty directory, or use the volume that is there"
	case errors.Is(err, content.ErrWrongKey):
		return exitData, "the file was encrypted by another volume (or, with --category, another category): use the volume and category that encrypted it"
	case errors.Is(err, content.ErrCorrupt):
		return exitData, "the encrypted file is damaged or was modified; restore it from a copy"
	case errors.Is(err, volume.ErrUnknownCategory):
		return exitUsage, "'mysecure category list' shows the categories; 'mysecure category add NAME' makes one"
	case errors.Is(err, volume.ErrBadCategoryName):
		return exitUsage, "a category name is a lower-case letter, then up to 31 of a-z 0-9 _ -"
	case errors.Is(err, volume.ErrCategoryExists):
		return exitFile, "'mysecure category list' shows the categories"
	case errors.Is(err, volume.ErrCategoryInUse):
		return exitFile, "move its data out first ('mysecure decrypt') and delete the rules that name it ('mysecure acl del N')"
	case errors.Is(err, volume.ErrLastCategory):
		return exitUsage, "add another category first ('mysecure category add NAME')"
	case errors.Is(err, volume.ErrNotMasterCredential):
		return exitUsage, hintNotMaster
	case errors.Is(err, volume.ErrLastSlot):
		return exitUsage, "add another key slot first ('mysecure key add')"
	case errors.Is(err, volume.ErrNoSuchSlot):
		return exitUsage, "'mysecure key list' shows the slots"
	case errors.Is(err, daemon.ErrUnsafeSocketDir):
		return exitPermission, "make the directory root's (chown root, chmod go-w) or choose another --socket / job-socket"
	case errors.Is(err, volume.ErrInsecureKeyFile):
		return exitPermission, "chmod 0400 the key file and make sure the caller owns it"
	case errors.Is(err, syscall.ENOSPC):
		return exitError, "the output's filesystem is full: nothing was left behind; free space and run again"
	case errors.Is(err, os.ErrExist):
		return exitFile, "remove it first, or pass --force"
	case errors.Is(err, os.ErrNotExist):
		return exitFile, ""
	case errors.Is(err, os.ErrPermission):
		return exitPermission, ""
	}
	var ae *daemon.APIError
	if errors.As(err, &ae) {
		return exitError, "see the daemon log for details"
	}
	return exitError, "run again with --debug for details"
}

// toolHint is what a failed tool's error says to do: the rule to add
// for what the access rules denied it, here or in the daemon.
func toolHint(err error) string {
	var te *backup.ToolError
	if errors.As(err, &te) {
		return te.Hint()
	}
	var ae *daemon.APIError
	if errors.As(err, &ae) {
		return ae.Hint
	}
	return ""
}
