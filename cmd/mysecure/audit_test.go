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

func TestClientError(t *testing.T) {
	for in, want := range map[string]string{
		"--------------\nSELECT 1 FROM mysql.user\n--------------\n\nERROR 1142 (42000) at line 1: SELECT command denied\n": "ERROR 1142 (42000) at line 1: SELECT command denied",
		"ERROR 2002 (HY000): Can't connect\n": "ERROR 2002 (HY000): Can't connect",
		"  something else\n":                  "something else",
	} {
		if got := clientError(in); got != want {
			t.Errorf("clientError(%q) = %q, want %q", in, got, want)
		}
	}
}
