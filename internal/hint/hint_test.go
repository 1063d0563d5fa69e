package hint

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

func TestWrap(t *testing.T) {
	if Wrap(nil, "x") != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
	base := fmt.Errorf("open a: %w", os.ErrNotExist)
	if got := Wrap(base, ""); got != base {
		t.Fatalf("Wrap with an empty hint changed the error: %v", got)
	}
	err := fmt.Errorf("outer: %w", Wrap(base, "create it first"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the wrapped sentinel is not seen through the hint")
	}
	if err.Error() != "outer: open a: file does not exist" {
		t.Fatalf("the hint leaked into Error(): %q", err.Error())
	}
	h, ok := Of(err)
	if !ok || h != "create it first" {
		t.Fatalf("Of = %q, %v", h, ok)
	}
	if h, ok := Of(Wrap(Wrap(base, "inner"), "outer")); !ok || h != "outer" {
		t.Fatalf("Of of two hints = %q, %v; want the outer one", h, ok)
	}
	if _, ok := Of(base); ok {
		t.Fatal("Of found a hint in an error without one")
	}
}
