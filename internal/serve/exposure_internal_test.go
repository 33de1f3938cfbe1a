package serve

import (
	"strings"
	"testing"
)

func TestExposureWarnings(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "loopback", cfg: Config{Listen: "127.0.0.1:7070", MetricsListen: "127.0.0.1:9090"}},
		{name: "insecure gRPC", cfg: Config{Listen: "0.0.0.0:7070", Insecure: true},
			want: []string{"without authentication or TLS"}},
		{name: "keys without TLS", cfg: Config{Listen: "0.0.0.0:7070", ServiceKeyFile: "keys"},
			want: []string{"in plain text"}},
		{name: "keys with TLS", cfg: Config{Listen: "0.0.0.0:7070", ServiceKeyFile: "keys", TLSCert: "cert", TLSKey: "key"}},
		{name: "TLS alone", cfg: Config{Listen: "0.0.0.0:7070", TLSCert: "cert", TLSKey: "key"},
			want: []string{"no caller authenticates"}},
		{name: "mutual TLS", cfg: Config{Listen: "0.0.0.0:7070", TLSCert: "cert", TLSKey: "key", TLSClientCA: "ca"}},
		{name: "insecure metrics", cfg: Config{Listen: "127.0.0.1:7070", MetricsListen: "0.0.0.0:9090", Insecure: true},
			want: []string{"metrics endpoint"}},
		{name: "both", cfg: Config{Listen: ":7070", MetricsListen: ":9090", Insecure: true},
			want: []string{"without authentication or TLS", "metrics endpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exposureWarnings(tt.cfg)
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, expected %d", got, len(tt.want))
			}
			for i, want := range tt.want {
				if !strings.Contains(got[i], want) {
					t.Errorf("warning %d = %q, expected it to mention %q", i, got[i], want)
				}
			}
		})
	}
}
