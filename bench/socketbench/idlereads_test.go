package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseIdleReads(t *testing.T) {
	got, err := parseIdleReads("3s, 30s,1m")
	if err != nil {
		t.Fatalf("parseIdleReads: %v", err)
	}
	if want := []time.Duration{3 * time.Second, 30 * time.Second, time.Minute}; !slices.Equal(got, want) {
		t.Errorf("parseIdleReads = %v, want %v", got, want)
	}

	for _, list := range []string{"", "3s,", "soon", "0s", "-1s", "30s,3s", "3s,3s"} {
		if _, err := parseIdleReads(list); err == nil {
			t.Errorf("parseIdleReads(%q) returned no error", list)
		}
	}
}
