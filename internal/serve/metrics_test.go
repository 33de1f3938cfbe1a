package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/serve"
)

// scrape fetches the metrics of address and returns them by family name.
func scrape(t *testing.T, address string) map[string]*familyValues {
	t.Helper()

	resp, err := http.Get("http://" + address + serve.MetricsPath)
	if err != nil {
		t.Fatalf("GET %s: %v", serve.MetricsPath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s returned status %d", serve.MetricsPath, resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	result := map[string]*familyValues{}
	for name, family := range families {
		values := &familyValues{}
		for _, metric := range family.GetMetric() {
			labels := map[string]string{}
			for _, pair := range metric.GetLabel() {
				labels[pair.GetName()] = pair.GetValue()
			}
			var value float64
			switch {
			case metric.GetCounter() != nil:
				value = metric.GetCounter().GetValue()
			case metric.GetGauge() != nil:
				value = metric.GetGauge().GetValue()
			case metric.GetHistogram() != nil:
				value = float64(metric.GetHistogram().GetSampleCount())
			}
			values.samples = append(values.samples, sample{labels: labels, value: value})
		}
		result[name] = values
	}
	return result
}

type sample struct {
	labels map[string]string
	value  float64
}

type familyValues struct{ samples []sample }

// value returns the value of the sample whose labels include every pair of
// want, and false when there is none.
func (f *familyValues) value(want map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	for _, s := range f.samples {
		matches := true
		for name, value := range want {
			if s.labels[name] != value {
				matches = false
				break
			}
		}
		if matches {
			return s.value, true
		}
	}
	return 0, false
}

func TestMetricsEndpoint(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{MetricsListen: "127.0.0.1:0"})
	if a.MetricsAddr() == "" {
		t.Fatal("MetricsAddr is empty with MetricsListen set")
	}
	client := sockauthv1.NewAuthorityServiceClient(dial(t, a.Addr()))
	ctx := context.Background()

	issued, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "alice"})
	if err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
	first, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: issued.GetCode()})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, err := client.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: first.GetToken()}); err != nil {
		t.Fatalf("ConfirmRotation: %v", err)
	}
	if _, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: issued.GetCode()}); err == nil {
		t.Fatal("Authenticate with a confirmed predecessor succeeded, expected TOKEN_REUSED")
	}

	families := scrape(t, a.MetricsAddr())
	tests := []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Authenticate", "grpc_code": "OK"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Authenticate", "grpc_code": "PermissionDenied"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Logout", "grpc_code": "OK"}, 0},
		{"grpc_server_handling_seconds", map[string]string{"grpc_method": "IssueCode"}, 1},
		{"sockauth_codes_issued_total", nil, 1},
		{"sockauth_tokens_rotated_total", map[string]string{"presented": "code"}, 1},
		{"sockauth_rotations_confirmed_total", nil, 1},
		{"sockauth_token_reuse_detected_total", nil, 1},
		{"sockauth_tokens_rejected_total", map[string]string{"method": "Authenticate", "reason": "token_reused"}, 1},
		{"sockauth_sessions_revoked_total", map[string]string{"reason": "reused"}, 1},
		{"sockauth_sessions_stored", nil, 1},
		// IssueCode, Authenticate, ConfirmRotation and the revocation.
		{"sockauth_store_writes_total", nil, 4},
		{"sockauth_store_sync_failed", nil, 0},
	}
	for _, tt := range tests {
		got, ok := families[tt.family].value(tt.labels)
		if !ok {
			t.Errorf("%s%v is missing from the scrape", tt.family, tt.labels)
			continue
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, expected %v", tt.family, tt.labels, got, tt.want)
		}
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("go_goroutines is missing: the Go runtime collector is not registered")
	}
}

func TestMetricsOffByDefault(t *testing.T) {
	a := startAuthority(t, t.TempDir(), serve.Config{})
	if got := a.MetricsAddr(); got != "" {
		t.Fatalf("MetricsAddr = %q with metrics off, expected empty", got)
	}
}

func TestStartRejectsNonLoopbackMetrics(t *testing.T) {
	for _, address := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		t.Run(address, func(t *testing.T) {
			_, err := serve.Start(context.Background(), serve.Config{
				Listen:        "127.0.0.1:0",
				DataDir:       t.TempDir(),
				MetricsListen: address,
				Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err == nil || !strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), address) {
				t.Fatalf("Start = %v, expected a rejection naming %s and --insecure", err, address)
			}
		})
	}
}

func TestNewLoggerFormats(t *testing.T) {
	var text, structured bytes.Buffer
	textLogger, err := serve.NewLogger(&text, serve.LogFormatText, slog.LevelInfo)
	if err != nil {
		t.Fatalf("NewLogger(text): %v", err)
	}
	jsonLogger, err := serve.NewLogger(&structured, serve.LogFormatJSON, slog.LevelWarn)
	if err != nil {
		t.Fatalf("NewLogger(json): %v", err)
	}

	textLogger.Info("started", "sid", "s1")
	jsonLogger.Info("dropped below the level")
	jsonLogger.Warn("started", "sid", "s1")

	if !strings.Contains(text.String(), "msg=started sid=s1") {
		t.Errorf("text log = %q, expected logfmt with msg=started sid=s1", text.String())
	}
	var record map[string]any
	if err := json.Unmarshal(structured.Bytes(), &record); err != nil {
		t.Fatalf("JSON log is not one JSON object: %v: %q", err, structured.String())
	}
	if record["msg"] != "started" || record["sid"] != "s1" || record["level"] != "WARN" {
		t.Errorf("JSON record = %v, expected msg started, sid s1, level WARN", record)
	}

	if _, err := serve.NewLogger(io.Discard, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("NewLogger(xml) = %v, expected an error naming the format", err)
	}
}
