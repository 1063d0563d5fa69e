package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/fds"
	"github.com/mysecure/mysecure/service"
)

type mountOptions struct {
	Foreground bool
	ReadyFD    int
	CredFD     int
	KMS        bool
	Creds      credOptions
	// notifySocket is $NOTIFY_SOCKET of a Type=notify service.
	notifySocket string
}

func (o *mountOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Foreground, "foreground", false, "stay in the foreground (for systemd); log to stderr")
	f.String("audit-log", "", "access log `PATH` (default "+defaultAuditLog+")")
	f.Bool("audit-allows", false, "log allowed opens too, not only denials")
	f.String("log-file", "", "daemon log `PATH` when detached (default "+defaultLogFile+")")
	f.IntVar(&o.ReadyFD, "ready-fd", 0, "internal: report readiness on this fd")
	f.IntVar(&o.CredFD, "credential-fd", 0, "internal: read the credential from this fd")
	_ = f.MarkHidden("ready-fd")
	_ = f.MarkHidden("credential-fd")
	f.BoolVar(&o.KMS, "kms", false, "unlock through the volume's kms key slots (the default when it has some and no other credential is named); falls back to the passphrase (docs/fleet.md)")
	o.Creds.AddFlags(f)
}

func newMountCommand(g *globalOptions) *cobra.Command {
	var opts mountOptions
	cmd := &cobra.Command{
		Use:   "mount",
		Short: "Unlock the volume and serve the encrypted mount (the daemon)",
		Long: `Unlock the volume and mount its plaintext view (default ` + defaultMount + `).
Only programs named in access rules ('mysecure acl add') read plaintext
through it; every other process, root's cat included, gets "Permission
denied". The store keeps only ciphertext.

Without --foreground, mysecure starts the daemon in the background and
returns once the mount is ready (exit 0) or failed (its exit code).`,
		Example: `  mysecure mount                                   # asks for passphrase and salt
  mysecure mount --keyfile /etc/mysecure/boot.key  # unattended start
  mysecure mount --kms                             # through a KMIP key server (kms key slot)
  mysecure mount --foreground --keyfile ...        # under systemd (examples/mysecure.service)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only the daemon itself tells systemd it is ready: the
			// programs it starts (and a detached child) must not see
			// the socket.
			opts.notifySocket = os.Getenv("NOTIFY_SOCKET")
			os.Unsetenv("NOTIFY_SOCKET")
			if opts.Foreground {
				return runMountForeground(cmd.Context(), opts, g)
			}
			return runMountDetached(cmd.Context(), opts, g)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// runMountDetached collects the credential, starts `mysecure mount
// --foreground` in a new session and waits for its readiness report.
func runMountDetached(ctx context.Context, opts mountOptions, g *globalOptions) error {
	v, err := volume.Load(g.cfg.Store)
	if err != nil {
		return err
	}
	// Mounting what is mounted is done already (a boot script, a retry):
	// say so and succeed, before asking for a credential. A daemon with
	// another store or mount point on this socket is a conflict.
	if s, err := daemon.NewClient(g.cfg.Socket).Status(ctx); err == nil {
		if done, err := service.AlreadyMounted(s, g.cfg.Store, g.cfg.Mount, g.cfg.Socket); done || err != nil {
			if done {
				fmt.Fprintf(g.p.out, "already mounted: %s on %s (daemon pid %d); nothing to do\n", s.Store, s.Mount, s.Pid)
			}
			return err
		}
	}
	viaKMS, err := opts.mountKMSParent(ctx, g, v)
	if err != nil {
		return err
	}
	var cc service.Credential
	defer cc.Wipe()
	if opts.Creds.KeyFile == "" && (!viaKMS || opts.Creds.explicit()) {
		mc, err := opts.Creds.masterCredential()
		if err != nil {
			return err
		}
		cc = service.Credential{Passphrase: mc.Passphrase, Salt: mc.Salt, RSAPEM: mc.RSAPEM, RSAPassword: mc.RSAPassword}
	}
	args := []string{"mount", "--foreground",
		"--ready-fd=" + strconv.Itoa(service.ReadyFD), "--credential-fd=" + strconv.Itoa(service.CredentialFD),
		"--store", g.cfg.Store, "--mount", g.cfg.Mount, "--socket", g.cfg.Socket, "--state-dir", g.cfg.StateDir,
		"--audit-log", g.cfg.AuditLog, "--log-file", g.cfg.LogFile,
		"--audit-allows=" + strconv.FormatBool(g.cfg.AuditAllows)}
	if opts.Creds.KeyFile != "" {
		args = append(args, "--keyfile", opts.Creds.KeyFile)
	}
	if viaKMS {
		args = append(args, "--kms")
	}
	if g.ConfigFile != "" {
		args = append(args, "--config", g.ConfigFile)
	}
	pid, err := service.StartDetached(service.Detached{Args: args, LogFile: g.cfg.LogFile, Credential: &cc})
	var failed *service.Failed
	if errors.As(err, &failed) {
		return &childError{msg: failed.Report.Error, hint: failed.Report.Hint, code: failed.Report.Code}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "mounted %s on %s (daemon pid %d)\n", g.cfg.Store, g.cfg.Mount, pid)
	printReach(ctx, g, daemon.NewClient(g.cfg.Socket))
	return nil
}

// childError carries the detached daemon's error and exit code.
type childError struct {
	msg, hint string
	code      int
}

func (e *childError) Error() string { return e.msg }

func (o *credOptions) credentialFromFD(fd int) (volume.Credential, func(), error) {
	f := os.NewFile(uintptr(fd), "credential")
	defer f.Close()
	mc, err := service.ReceiveCredential(f)
	if err != nil {
		return nil, nil, err
	}
	if o.KeyFile != "" {
		mc.Wipe()
		return o.credential()
	}
	c, err := mc.VolumeCredential()
	return c, mc.Wipe, err
}

func runMountForeground(ctx context.Context, opts mountOptions, g *globalOptions) (err error) {
	// Before anything else: descriptors the starting shell or service
	// manager left open would reach every program the daemon starts.
	inherited, ferr := fds.CloseInherited(opts.ReadyFD, opts.CredFD)
	var ready *service.ReadyPipe
	if opts.ReadyFD > 0 {
		ready = service.NewReadyPipe(os.NewFile(uintptr(opts.ReadyFD), "ready"))
		defer func() {
			// Tell the parent how it went (unless Ready did); after
			// this the daemon's errors go to its log.
			msg := service.Report{OK: err == nil}
			if err != nil {
				msg.Code, msg.Hint = classify(err)
				msg.Error = oneLine(err)
			}
			ready.Send(msg)
		}()
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if ferr != nil {
		return ferr
	}
	if len(inherited) > 0 {
		log.Info("closed inherited descriptors", "fds", inherited)
	}
	// The kernel applies the caller's umask before a create reaches us;
	// ours must not apply a second time.
	syscall.Umask(0)
	v, err := volume.Load(g.cfg.Store)
	if err != nil {
		return err
	}
	keys, err := opts.unlockForMount(ctx, g, v)
	if err != nil {
		return err
	}
	if err := observeConfig(g, v); err != nil {
		keys.Wipe()
		return err
	}
	if !keys.ConfigAuthenticated() {
		log.Warn("unlocked with an RSA key slot: the volume config cannot be proven genuine by an RSA key alone", "slot", keys.SlotID())
	}
	var jobs daemon.Jobs
	var runner *backup.Jobs
	svc, err := backupService(g, v, keys, log.With("module", "backup"))
	if err == nil {
		runner = &backup.Jobs{Service: svc}
		jobs = runner
	} else {
		log.Warn("backups disabled", "err", err)
	}
	d, err := daemon.New(daemon.Config{
		Store: g.cfg.Store, Mount: g.cfg.Mount, Socket: g.cfg.Socket,
		AuditLog: g.cfg.AuditLog, AuditAllows: g.cfg.AuditAllows, Logger: log,
		Jobs: jobs, JobSocket: g.cfg.JobSocket, BackupGroup: g.cfg.BackupGroup,
		Rollback: rollbackDir(g),
	}, v, keys)
	if err != nil {
		keys.Wipe()
		return err
	}
	defer d.Close()
	if svc != nil {
		// A failed tool's error names what the rules denied it.
		svc.Tools.Denials = func(_ context.Context, since time.Time, pgid int) []backup.Denied {
			return service.DeniedOf(d.DenialGroups(d.Denials(daemon.DenialQuery{Since: since, Pgid: pgid})))
		}
	}
	// daemon.ErrAlreadyMounted: classify's hint points at 'mysecure status'.
	if err := d.Mount(); err != nil {
		return err
	}
	var sc *service.Schedules
	if runner != nil {
		// The jobs in force: replaced by reloads (SIGHUP, the job API)
		// while scheduler goroutines read them; g.cfg is not written
		// after start.
		var inForce schedule.JobList
		inForce.Store(g.cfg.Schedules)
		sc = &service.Schedules{
			Runner:  daemonJobRunner(g, svc, log, &inForce),
			InForce: &inForce,
			Read: func() ([]schedule.Job, error) {
				js, hosts, err := daemonSchedules(g)
				if err != nil {
					return nil, err
				}
				g.sshReloaded.Store(hosts)
				return js, nil
			},
		}
		runner.Reload = sc.Reload
	}
	err = service.Run(ctx, d, service.Config{
		Socket: g.cfg.Socket, Mount: g.cfg.Mount, Logger: log,
		NotifySocket: opts.notifySocket, Schedules: sc,
		Recover: func() {
			service.RunRecovery(service.Recovery{Logger: log, Token: d.NewRecoveryToken,
				Args: []string{"recover", "--store", g.cfg.Store, "--socket", g.cfg.Socket, "--token-fd=3"}})
		},
		Ready:      func() { ready.Send(service.Report{OK: true}) },
		OwnSignals: func() { g.ownSignals.Store(true) },
	})
	// Unmounted from outside (umount -l), the error says so: exit non-zero
	// so that a service manager shows it.
	return err
}

func newUmountCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "umount",
		Short: "Unmount the volume and stop its daemon",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := daemon.NewClient(g.cfg.Socket)
			// Say (and check) which mount this daemon serves: with
			// --socket, it need not be the configured one.
			mnt := g.cfg.Mount
			if st, err := c.Status(cmd.Context()); err == nil && st.Mount != "" {
				if cmd.Flags().Changed("mount") && filepath.Clean(st.Mount) != filepath.Clean(g.cfg.Mount) {
					return withHint(usagef(fmt.Sprintf("the daemon on %s serves %s, not %s", g.cfg.Socket, st.Mount, g.cfg.Mount)),
						"give the --socket of the daemon that serves "+g.cfg.Mount+", or leave out --mount")
				}
				mnt = st.Mount
			}
			done, err := service.Unmount(cmd.Context(), c, g.cfg.Mount)
			if err != nil {
				return err
			}
			if done == service.ClearedStale {
				fmt.Fprintf(g.p.out, "cleared the stale mount on %s (its daemon was gone)\n", g.cfg.Mount)
				return nil
			}
			fmt.Fprintf(g.p.out, "unmounted %s\n", mnt)
			return nil
		},
	}
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the volume is mounted, its mode, rules and denials",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := daemon.NewClient(g.cfg.Socket).Status(cmd.Context())
			if err != nil {
				if errors.Is(err, daemon.ErrNotRunning) {
					if asJSON {
						g.p.json(daemon.Status{Mounted: false, Store: g.cfg.Store, Mount: g.cfg.Mount})
					}
					return withHint(err, "mount it with 'mysecure mount'")
				}
				return err
			}
			if rl, err := daemon.NewClient(g.cfg.Socket).ACLList(cmd.Context()); err == nil {
				s.Warnings = append(s.Warnings, service.StatusWarnings(cmd.Context(), s.Mount, rl.Rules)...)
			}
			if asJSON {
				return g.p.json(s)
			}
			fmt.Fprintf(g.p.out, "mounted:    %s on %s (daemon pid %d, since %s)\n", s.Store, s.Mount, s.Pid, s.Started)
			fmt.Fprintf(g.p.out, "mode:       %s\n", s.Mode)
			fmt.Fprintf(g.p.out, "categories: @%s\n", strings.Join(s.Categories, ", @"))
			fmt.Fprintf(g.p.out, "rules:      %d\n", s.Rules)
			if s.DenyAll != "" {
				fmt.Fprintf(g.p.out, "DENY ALL:   %s\n", s.DenyAll)
			}
			fmt.Fprintf(g.p.out, "opens:      %d allowed by rules, %d denied (or would be, when not enforcing)\n", s.Allows, s.Denials)
			fmt.Fprintf(g.p.out, "binaries hashed: %d\n", s.Hashes)
			fmt.Fprintf(g.p.out, "audit log:  %s\n", s.AuditLog)
			if len(s.RecentDenials) > 0 {
				fmt.Fprintln(g.p.out, "recent denials, by program (newest first):")
				for _, d := range s.RecentDenials {
					prog := d.Program
					if prog == "" {
						prog = "(unidentified)"
					}
					fmt.Fprintf(g.p.out, "  %s  @%s  %d denied, last %s: %s\n", prog, d.Category, d.Count, d.Last.Local().Format(time.RFC3339), strings.Join(d.Files, ", "))
					if d.Rule != "" {
						fmt.Fprintf(g.p.out, "    to allow it: mysecure acl add '%s'\n", d.Rule)
					} else if d.Hint != "" {
						fmt.Fprintf(g.p.out, "    %s\n", d.Hint)
					}
				}
			}
			for _, w := range s.Warnings {
				fmt.Fprintf(g.p.err, "mysecure: warning: %s\n", w.Message)
				if w.Hint != "" {
					g.p.hintf("%s", w.Hint)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
