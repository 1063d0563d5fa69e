// Package service runs a mounted daemon as a service: it serves the
// control API, starts the backup scheduler once the socket answers,
// reports readiness (to the caller and to systemd), reloads rules and
// schedules on SIGHUP, unmounts on SIGTERM/SIGINT (and keeps serving when
// files are still open), and returns when the mount is gone.
//
// It does the procedure of `mysecure mount --foreground`; building the
// daemon, unlocking the volume and the backup service are the caller's
// (denials.go adapts the daemon's denials for the backup tools' errors).
// It also starts that daemon detached and hands it the credential
// (StartDetached), runs the recovery child (RunRecovery), and unmounts
// (Unmount).
// It must not print (it logs to the Logger it is given), read
// credentials or exit the process.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/sdnotify"
)

// Config is what Run needs besides the mounted daemon.
type Config struct {
	// Socket is the daemon's control socket: Run waits until it answers.
	Socket string
	// Mount is the mount point, for the log.
	Mount  string
	Logger *slog.Logger
	// NotifySocket is $NOTIFY_SOCKET of a Type=notify service ("" none).
	NotifySocket string
	// Schedules is the backup scheduler's part; nil when backups are
	// disabled.
	Schedules *Schedules
	// Ready is called once the control socket answers and the scheduler
	// started, before systemd is told (nil: nothing).
	Ready func()
	// OwnSignals is called just before Run handles SIGTERM, SIGINT and
	// SIGHUP itself (nil: nothing).
	OwnSignals func()
	// Recover finishes, in a goroutine started once ready, the moves a
	// crash interrupted (nil: nothing).
	Recover func()

	// signals replaces signal.Notify in tests.
	signals chan os.Signal
}

// Schedules are the daemon's scheduled jobs.
type Schedules struct {
	// Runner runs one job; it reads the jobs in force from InForce.
	Runner *schedule.Runner
	// InForce holds the jobs in force: the caller stores those of the
	// start; reloads replace them while scheduler goroutines read them.
	InForce *schedule.JobList
	// Read reads the jobs again (SIGHUP, the job API's reload).
	Read func() ([]schedule.Job, error)

	sched *schedule.Scheduler
}

// Reload reads the jobs again and schedules them, returning how many
// there are. It is for the job API's reload (daemon.Jobs) and SIGHUP, and
// works once Run has started.
func (s *Schedules) Reload() (int, error) {
	if s.sched == nil {
		return 0, errors.New("the scheduler has not started")
	}
	js, err := s.Read()
	if err != nil {
		return 0, err
	}
	s.InForce.Store(js)
	return len(js), s.sched.Load(js)
}

// controlPoll is the pause between tries of the control socket (500
// tries at most).
const controlPoll = 20 * time.Millisecond

// Run serves the mounted daemon d until it is unmounted. It returns nil
// after an unmount it was asked for (SIGTERM, SIGINT, the control API),
// an error wrapping daemon.ErrDetached, hinted, when the mount was taken
// away from outside, and an error when the control socket does not come up (then
// it unmounts). The caller closes d.
func Run(ctx context.Context, d *daemon.Daemon, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := cfg.Schedules
	if sc != nil {
		sc.sched = schedule.NewScheduler(ctx, sc.Runner)
		defer sc.sched.Stop()
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeControl(ctx) }()
	// Wait until the socket answers, so that `mount` returning means
	// `status` works.
	client := daemon.NewClient(cfg.Socket)
	for i := 0; ; i++ {
		if _, err := client.Status(ctx); err == nil {
			break
		}
		select {
		case err := <-served:
			d.Unmount()
			return fmt.Errorf("control socket failed: %w", err)
		case <-time.After(controlPoll):
		}
		if i > 500 {
			d.Unmount()
			return errors.New("control socket did not come up")
		}
	}
	log.Info("ready", "pid", os.Getpid(), "mount", cfg.Mount, "socket", cfg.Socket)
	if sc != nil {
		if err := sc.sched.Start(sc.InForce.Load()); err != nil {
			log.Error("schedules not started", "error", err.Error())
		}
	}
	// Moves a crash interrupted are finished by a child process: the
	// daemon does not write into its own mount.
	if cfg.Recover != nil {
		go cfg.Recover()
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	if err := sdnotify.Send(cfg.NotifySocket, sdnotify.Ready); err != nil {
		log.Error("readiness notification failed", "error", err.Error())
	}

	// SIGTERM/SIGINT: unmount cleanly; if files are still open, say so
	// and keep serving them (stop mysqld first).
	if cfg.OwnSignals != nil {
		cfg.OwnSignals()
	}
	sigc := cfg.signals
	if sigc == nil {
		sigc = make(chan os.Signal, 1)
		signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(sigc)
	}
	stopSignals := make(chan struct{})
	defer close(stopSignals)
	go handleSignals(d, sc, log, sigc, stopSignals)
	werr := d.Wait()
	cancel()
	<-served
	if werr != nil {
		// Unmounted from outside (umount -l): the daemon logged and
		// audited the alarm; the caller exits non-zero so that a
		// service manager shows it.
		if errors.Is(werr, daemon.ErrDetached) {
			return hint.Wrap(werr, "unmount with 'mysecure umount'; see the audit log")
		}
		return werr
	}
	sdnotify.Send(cfg.NotifySocket, sdnotify.Stopping)
	log.Info("unmounted", "mount", cfg.Mount)
	return nil
}

// handleSignals answers signals until stop is closed: SIGHUP reloads the
// rules and the schedules, any other signal asks for an unmount.
func handleSignals(d *daemon.Daemon, sc *Schedules, log *slog.Logger, sigc <-chan os.Signal, stop <-chan struct{}) {
	for {
		var s os.Signal
		select {
		case s = <-sigc:
		case <-stop:
			return
		}
		if s == syscall.SIGHUP {
			// Reload the rules; never die on a hangup (a dead daemon
			// leaves a dead mount).
			if err := d.ReloadRules(); err != nil {
				log.Error("rule reload failed", "error", err.Error())
			} else {
				log.Info("rules reloaded (SIGHUP)")
			}
			if sc != nil {
				if _, err := sc.Reload(); err != nil {
					log.Error("schedule reload failed", "error", err.Error())
				}
			}
			continue
		}
		log.Info("signal: unmounting", "signal", s.String())
		if err := d.Unmount(); err != nil {
			log.Error("unmount refused; still serving", "error", err.Error())
		}
	}
}
