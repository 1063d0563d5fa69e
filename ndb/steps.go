package ndb

import (
	"context"
	"fmt"
	"strings"

	"github.com/mysecure/mysecure/internal/plan"
)

// StopStep stops a running node after recording how it was started;
// Undo starts it again that way and waits until it is started.
type StopStep struct {
	Control *Control
	Node    *Node
	Launch  Launch
}

func (s *StopStep) ID() string { return fmt.Sprintf("ndb-stop:%d", s.Node.ID) }
func (s *StopStep) Describe() string {
	pid := 0
	if s.Node.Angel != nil {
		pid = s.Node.Angel.Pid
	}
	return fmt.Sprintf("stop %s node %d (pid %d), recording its command line", s.Node.Kind, s.Node.ID, pid)
}

// Check: done when the node's processes are gone.
func (s *StopStep) Check(context.Context) (bool, string, error) {
	if s.Node.Angel != nil && alive(s.Node.Angel.Pid) {
		return false, fmt.Sprintf("node %d runs (pid %d)", s.Node.ID, s.Node.Angel.Pid), nil
	}
	return true, "", nil
}

func (s *StopStep) Apply(ctx context.Context) error {
	if err := s.Control.Record(s.Launch); err != nil {
		return err
	}
	return s.Control.Stop(ctx, s.Node)
}

func (s *StopStep) Undo(ctx context.Context) error {
	return s.Control.Start(ctx, s.Launch)
}

// StartStep starts a node stopped by the StopStep before it, with its
// recorded command line minus --initial, and waits until the management
// server says it started. It is always to do when in a plan; Undo stops
// the node again.
type StartStep struct {
	Control *Control
	Node    *Node
	Launch  Launch
}

func (s *StartStep) ID() string { return fmt.Sprintf("ndb-start:%d", s.Node.ID) }
func (s *StartStep) Describe() string {
	args, _ := StripInitial(s.Launch.Args)
	return fmt.Sprintf("start node %d as before (%s) and wait until it is started", s.Node.ID, strings.Join(args, " "))
}

func (s *StartStep) Check(context.Context) (bool, string, error) {
	return false, fmt.Sprintf("node %d is restarted after the change", s.Node.ID), nil
}

func (s *StartStep) Apply(ctx context.Context) error { return s.Control.Start(ctx, s.Launch) }

func (s *StartStep) Undo(ctx context.Context) error {
	n, err := s.Control.find(s.Launch)
	if err != nil || n == nil {
		return err
	}
	return s.Control.Stop(ctx, n)
}

// find returns the running node of a launch record, or nil.
func (c *Control) find(l Launch) (*Node, error) {
	st, err := Discover(context.Background(), Options{NdbConfig: "-", Programs: map[string]string{l.Program: l.Kind}, LocalNames: []string{}})
	if err != nil {
		return nil, err
	}
	n := st.Node(l.NodeID)
	if n == nil || !n.Running {
		return nil, nil
	}
	n.DataDir = l.DataDir
	return n, nil
}

// Inverse turns a step around: Apply is the step's Undo, Undo its Apply,
// and it is done when the step is not. ndb disable is enable inverted.
type Inverse struct {
	Step plan.Step
	Desc string
}

func (s *Inverse) ID() string       { return "not:" + s.Step.ID() }
func (s *Inverse) Describe() string { return s.Desc }
func (s *Inverse) Check(ctx context.Context) (bool, string, error) {
	done, _, err := s.Step.Check(ctx)
	if err != nil {
		return false, "", err
	}
	if done {
		return false, "in place: " + s.Step.Describe(), nil
	}
	return true, "", nil
}
func (s *Inverse) Apply(ctx context.Context) error { return s.Step.Undo(ctx) }
func (s *Inverse) Undo(ctx context.Context) error  { return s.Step.Apply(ctx) }
