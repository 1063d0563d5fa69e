package hardening

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/mycnf"
)

// Querier runs sql as the account of cnf, a client option file with the
// credentials (handed to the client through a pipe, never in argv or the
// environment). backup.Tools is one: the caller passes it, so that
// hardening and backup, both modules, do not import each other.
type Querier interface {
	Query(ctx context.Context, cnf []byte, sql string) ([][]string, error)
}

// Login proves a reset: the account logs in with its new password.
type Login struct {
	Client Querier
	// Refused is what Client's error matches (errors.Is) when the server
	// refused the credentials: no retry then.
	Refused error
	// Account, Host and Password are the account reset.
	Account, Host string
	Password      []byte
	// ServerArgs are the server's options: the socket (for localhost)
	// and the port (for a host) come from them.
	ServerArgs []string
	// Attempts and Wait pace the retries while the server starts
	// (default 60 attempts, 500 ms apart).
	Attempts int
	Wait     time.Duration
}

// client is how the login reaches the server: localhost over the
// server's socket, another host over TCP (a wildcard host through
// 127.0.0.1) on the server's port.
func (l Login) client() mycnf.Client {
	cl := mycnf.Client{User: l.Account, Password: string(l.Password)}
	if l.Host == "localhost" {
		cl.Socket = ArgValue(l.ServerArgs, "socket")
		return cl
	}
	cl.Host = l.Host
	if strings.ContainsAny(l.Host, "%_") {
		cl.Host = "127.0.0.1"
	}
	if p, err := strconv.Atoi(ArgValue(l.ServerArgs, "port")); err == nil {
		cl.Port = p
	}
	return cl
}

// Check logs in (SELECT 1) and retries while the server starts. A
// failure carries the client's message only (not its error, which would
// stand for the backup credentials' refusal) and a hint.
func (l Login) Check(ctx context.Context) error {
	err := l.try(ctx)
	if err == nil {
		return nil
	}
	return hint.Wrap(fmt.Errorf("the server is back, but %s@%s cannot log in with the new password: %w", l.Account, l.Host, err),
		"check that the account exists (SELECT user, host FROM mysql.user) and run the reset again")
}

func (l Login) try(ctx context.Context) error {
	cnf, err := l.client().Render()
	if err != nil {
		return err
	}
	defer clear(cnf)
	attempts, wait := l.Attempts, l.Wait
	if attempts <= 0 {
		attempts = 60
	}
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	var last error
	for i := 0; i < attempts; i++ {
		_, err := l.Client.Query(ctx, cnf, "SELECT 1")
		if err == nil {
			return nil
		}
		last = errors.New(err.Error())
		if l.Refused != nil && errors.Is(err, l.Refused) {
			return last
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(wait):
		}
	}
	return last
}
