package adapter

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestClientAddress(t *testing.T) {
	proxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	tests := []struct {
		name         string
		remoteAddr   string
		forwardedFor []string
		trusted      []netip.Prefix
		want         string
	}{
		{name: "direct client", remoteAddr: "198.51.100.7:52000", want: "198.51.100.7"},
		{name: "direct client naming another address", remoteAddr: "198.51.100.7:52000",
			forwardedFor: []string{"203.0.113.9"}, want: "198.51.100.7"},
		{name: "proxy without the header", remoteAddr: "10.1.2.3:40000", want: "10.1.2.3"},
		{name: "one proxy", remoteAddr: "10.1.2.3:40000", forwardedFor: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "entries left of the client are the client's own", remoteAddr: "10.1.2.3:40000",
			forwardedFor: []string{"192.0.2.1, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "chain of trusted proxies", remoteAddr: "127.0.0.1:40000",
			forwardedFor: []string{"192.0.2.1, 203.0.113.9, 10.9.9.9"}, want: "203.0.113.9"},
		{name: "several headers read as one list", remoteAddr: "10.1.2.3:40000",
			forwardedFor: []string{"192.0.2.1", "203.0.113.9", "10.9.9.9"}, want: "203.0.113.9"},
		{name: "every entry trusted", remoteAddr: "10.1.2.3:40000",
			forwardedFor: []string{"10.4.4.4, 10.5.5.5"}, want: "10.4.4.4"},
		{name: "entry that is not an address", remoteAddr: "10.1.2.3:40000",
			forwardedFor: []string{"203.0.113.9, unknown"}, want: "10.1.2.3"},
		{name: "bad entry after a trusted hop", remoteAddr: "10.1.2.3:40000",
			forwardedFor: []string{"garbage, 10.5.5.5"}, want: "10.5.5.5"},
		{name: "empty entry", remoteAddr: "10.1.2.3:40000", forwardedFor: []string{"203.0.113.9, "}, want: "10.1.2.3"},
		{name: "entries with ports", remoteAddr: "10.1.2.3:40000",
			forwardedFor: []string{"[2001:db8::5]:1234, 10.5.5.5:80"}, want: "2001:db8::5"},
		{name: "IPv6 in brackets without a port", remoteAddr: "[fd00::1]:40000",
			forwardedFor: []string{"[2001:db8::5]"}, want: "2001:db8::5"},
		{name: "IPv4 mapped into IPv6", remoteAddr: "[::ffff:10.1.2.3]:40000",
			forwardedFor: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "zone dropped", remoteAddr: "[fe80::1%eth0]:40000", want: "fe80::1"},
		{name: "bare peer address", remoteAddr: "198.51.100.7", want: "198.51.100.7"},
		{name: "peer that is not an address", remoteAddr: "pipe", want: ""},
		{name: "no trusted proxies", remoteAddr: "10.1.2.3:40000", forwardedFor: []string{"203.0.113.9"},
			trusted: []netip.Prefix{}, want: "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			for _, value := range tt.forwardedFor {
				header.Add("X-Forwarded-For", value)
			}
			trusted := proxies
			if tt.trusted != nil {
				trusted = tt.trusted
			}
			if got := clientAddress(tt.remoteAddr, header, trusted); got != tt.want {
				t.Errorf("clientAddress(%q, X-Forwarded-For %q) = %q, expected %q", tt.remoteAddr, tt.forwardedFor, got, tt.want)
			}
		})
	}
}

func TestTrustedProxiesDefaults(t *testing.T) {
	cfg, err := Config{Authority: &fakeAuthority{}}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	header := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	if got := clientAddress("127.0.0.1:40000", header, cfg.TrustedProxies); got != "203.0.113.9" {
		t.Errorf("behind a loopback proxy by default: %q, expected 203.0.113.9", got)
	}
	if got := clientAddress("[::1]:40000", header, cfg.TrustedProxies); got != "203.0.113.9" {
		t.Errorf("behind an IPv6 loopback proxy by default: %q, expected 203.0.113.9", got)
	}
	if got := clientAddress("10.1.2.3:40000", header, cfg.TrustedProxies); got != "10.1.2.3" {
		t.Errorf("other peers by default: %q, expected 10.1.2.3", got)
	}

	cfg, err = Config{Authority: &fakeAuthority{}, TrustedProxies: []netip.Prefix{}}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if got := clientAddress("127.0.0.1:40000", header, cfg.TrustedProxies); got != "127.0.0.1" {
		t.Errorf("with an empty TrustedProxies: %q, expected 127.0.0.1", got)
	}
}

func TestTrustedProxiesMappedNetwork(t *testing.T) {
	cfg, err := Config{Authority: &fakeAuthority{}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.0/104")}}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if want := netip.MustParsePrefix("127.0.0.0/8"); cfg.TrustedProxies[0] != want {
		t.Errorf("TrustedProxies[0] = %v, expected %v", cfg.TrustedProxies[0], want)
	}
	header := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	if got := clientAddress("127.0.0.1:40000", header, cfg.TrustedProxies); got != "203.0.113.9" {
		t.Errorf("behind a proxy in the mapped network: %q, expected 203.0.113.9", got)
	}

	_, err = Config{Authority: &fakeAuthority{}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:0:0/80")}}.withDefaults()
	if err == nil {
		t.Error("withDefaults accepted a mapped network shorter than 96 bits")
	}
}

func TestTrustedProxiesWarnsOfEveryPeer(t *testing.T) {
	var logs logBuffer
	newTestFlow(t, &fakeAuthority{}, Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("0.0.0.0/0")},
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	}, Hooks{})

	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "network=0.0.0.0/0") {
		t.Errorf("logs %q, expected a warning naming 0.0.0.0/0", got)
	}
}

func TestTrustedProxiesMasked(t *testing.T) {
	cfg, err := Config{Authority: &fakeAuthority{}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if want := netip.MustParsePrefix("10.0.0.0/8"); cfg.TrustedProxies[0] != want {
		t.Errorf("TrustedProxies[0] = %v, expected %v", cfg.TrustedProxies[0], want)
	}
}
