package adapter

import (
	"net/netip"
	"reflect"
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
	if cfg.DisableRevocationWatch {
		t.Error("DisableRevocationWatch is set, expected the watch on by default")
	}
	if cfg.RevocationRetryDelay != DefaultRevocationRetryDelay {
		t.Errorf("RevocationRetryDelay = %v, expected %v", cfg.RevocationRetryDelay, DefaultRevocationRetryDelay)
	}
	if cfg.MaxPayloadBytes != DefaultMaxPayloadBytes {
		t.Errorf("MaxPayloadBytes = %d, expected %d", cfg.MaxPayloadBytes, DefaultMaxPayloadBytes)
	}
	if cfg.MaxUnauthenticatedSockets != DefaultMaxUnauthenticatedSockets {
		t.Errorf("MaxUnauthenticatedSockets = %d, expected %d", cfg.MaxUnauthenticatedSockets, DefaultMaxUnauthenticatedSockets)
	}
	if cfg.SocketAuthenticateLimit != DefaultSocketAuthenticateLimit {
		t.Errorf("SocketAuthenticateLimit = %+v, expected %+v", cfg.SocketAuthenticateLimit, DefaultSocketAuthenticateLimit)
	}
	if cfg.AddressAuthenticateLimit != DefaultAddressAuthenticateLimit {
		t.Errorf("AddressAuthenticateLimit = %+v, expected %+v", cfg.AddressAuthenticateLimit, DefaultAddressAuthenticateLimit)
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
		{name: "negative revocation retry delay", cfg: Config{Authority: &fakeAuthority{}, RevocationRetryDelay: -time.Second}},
		{name: "payload limit below token limit", cfg: Config{Authority: &fakeAuthority{}, MaxTokenBytes: 4096, MaxPayloadBytes: 1024}},
		{name: "socket limit without rate", cfg: Config{Authority: &fakeAuthority{}, SocketAuthenticateLimit: RateLimit{Burst: 5}}},
		{name: "address limit without burst", cfg: Config{Authority: &fakeAuthority{}, AddressAuthenticateLimit: RateLimit{PerSecond: 5}}},
		{name: "zero trusted proxy network", cfg: Config{Authority: &fakeAuthority{}, TrustedProxies: []netip.Prefix{{}}}},
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
	if !reflect.DeepEqual(got, want) {
		t.Errorf("zero Config with defaults = %+v, expected DefaultConfig() = %+v", got, want)
	}
}
