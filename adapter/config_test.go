package adapter

import (
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{Authority: &fakeAuthority{}}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if cfg.AuthTimeout != DefaultAuthTimeout {
		t.Errorf("AuthTimeout = %v, expected %v", cfg.AuthTimeout, DefaultAuthTimeout)
	}
	if cfg.CallTimeout != DefaultCallTimeout {
		t.Errorf("CallTimeout = %v, expected %v", cfg.CallTimeout, DefaultCallTimeout)
	}
	if cfg.MaxTokenBytes != DefaultMaxTokenBytes {
		t.Errorf("MaxTokenBytes = %d, expected %d", cfg.MaxTokenBytes, DefaultMaxTokenBytes)
	}
	if cfg.SessionCheckInterval != 0 {
		t.Errorf("SessionCheckInterval = %v, expected 0 (disabled)", cfg.SessionCheckInterval)
	}
	if cfg.Logger == nil {
		t.Error("Logger is nil, expected slog.Default()")
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "missing authority", cfg: Config{}},
		{name: "negative auth timeout", cfg: Config{Authority: &fakeAuthority{}, AuthTimeout: -time.Second}},
		{name: "negative call timeout", cfg: Config{Authority: &fakeAuthority{}, CallTimeout: -time.Second}},
		{name: "negative max token bytes", cfg: Config{Authority: &fakeAuthority{}, MaxTokenBytes: -1}},
		{name: "negative session check interval", cfg: Config{Authority: &fakeAuthority{}, SessionCheckInterval: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewFlow(tt.cfg, Hooks{}); err == nil {
				t.Error("NewFlow succeeded, expected an error")
			}
		})
	}
}

func TestDefaultConfigMatchesZeroValues(t *testing.T) {
	want := DefaultConfig()
	want.Authority = &fakeAuthority{}
	got, err := Config{Authority: want.Authority, Logger: want.Logger}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if got != want {
		t.Errorf("zero Config with defaults = %+v, expected DefaultConfig() = %+v", got, want)
	}
}
