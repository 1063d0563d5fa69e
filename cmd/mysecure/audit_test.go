package main

import (
	"reflect"
	"testing"
)

func TestBatchRows(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want [][]string
	}{
		{"", nil},
		{"\n", [][]string{{""}}}, // SELECT @@log_error when it is empty
		{"a\tb\n\tc\n", [][]string{{"a", "b"}, {"", "c"}}},
		{"x\n\n", [][]string{{"x"}, {""}}},
	} {
		if got := batchRows(tc.out); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("batchRows(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}
