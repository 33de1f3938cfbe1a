// Package serve starts a complete authority: key file, Badger store, rotation
// service and gRPC server with health and reflection. Both `sockauth serve` and
// the chat demo's in-process authority use it.
package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
	"github.com/sockauth/sockauth/authority/callerauth"
	"github.com/sockauth/sockauth/authority/grpcserver"
	"github.com/sockauth/sockauth/authority/redisstore"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/logthrottle"
)

// Config sets up an authority. Zero durations take the defaults of
// authority.DefaultConfig.
type Config struct {
	// Listen is the gRPC listen address, such as 127.0.0.1:7070; port 0 picks a
	// free port.
	Listen string
	// DataDir is the folder holding the key file and the Badger database; it is
	// created with mode 0700 when missing.
	DataDir string
	// Store is "badger" (the default: a database in DataDir) or "redis".
	Store string
	// RedisURL is the redis:// URL of the Redis store.
	RedisURL       string
	CodeTTL        time.Duration
	TokenTTL       time.Duration
	SessionMaxAge  time.Duration
	RotationLeeway time.Duration
	// ServiceKeyFile is the file of service keys that callers must present;
	// empty lets every caller in.
	ServiceKeyFile string
	// TLSCert and TLSKey are the server's PEM certificate and key; setting
	// them turns TLS on.
	TLSCert string
	TLSKey  string
	// TLSClientCA is a PEM file of the CA that signs client certificates;
	// setting it requires mutual TLS.
	TLSClientCA string
	// Insecure allows a non-loopback Listen address without TLS or service
	// keys, and a non-loopback MetricsListen address.
	Insecure bool
	// MetricsListen is the HTTP address of the Prometheus metrics at
	// MetricsPath, such as 127.0.0.1:9090; empty serves no metrics.
	MetricsListen string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Limits of the gRPC server.
const (
	// MaxRequestBytes bounds a request message: tokens are at most 4 KiB and
	// IssueCode claims at most 16 × 320 bytes.
	MaxRequestBytes = 64 << 10
	// MaxConcurrentStreams bounds the calls in flight on one connection.
	MaxConcurrentStreams = 1024
	// MinKeepaliveInterval is the shortest keepalive ping interval a client may
	// use; pinging faster closes the connection.
	MinKeepaliveInterval = 10 * time.Second
	// StreamWorkers is the number of goroutines that the gRPC server keeps for
	// running calls. A call that finds none idle runs on a new goroutine,
	// whose stack then grows by copying while the call runs. A rotation holds
	// its worker until its write is synced, so the pool is sized for 128
	// concurrent calls rather than for the number of cores.
	StreamWorkers = 128
)

// storeCheckInterval is how often the authority checks whether its store
// has failed for good.
const storeCheckInterval = time.Second

// failingStore is a store that can fail for good, such as the Badger store
// after a failed sync.
type failingStore interface {
	// Err returns the error that the store failed with, or nil.
	Err() error
}

// watchStore reports NOT_SERVING on health once the store has failed for
// good, so that an orchestrator restarts the authority. It returns when ctx
// ends.
func (a *Authority) watchStore(ctx context.Context, store failingStore, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if err := store.Err(); err != nil {
			a.log.Error("store failed; health reports NOT_SERVING until the authority restarts", "error", err)
			a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
			a.health.SetServingStatus(sockauthv1.AuthorityService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
			return
		}
	}
}

// shutdownGrace bounds how long Close waits for running RPCs.
const shutdownGrace = 5 * time.Second

// Authority is a running authority.
type Authority struct {
	listener net.Listener
	server   *grpc.Server
	health   *health.Server
	store    authority.Store
	service  *authority.Service
	log      *slog.Logger
	served   chan error
	once     sync.Once
	// stopReload ends the key file reloader.
	stopReload context.CancelFunc
	// metrics is nil when Config.MetricsListen is empty.
	metrics *metricsServer
}

// Start opens the data folder and starts serving gRPC in the background. The
// context bounds only the start.
func Start(ctx context.Context, cfg Config) (*Authority, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("data folder is not set")
	}
	if err := checkStore(cfg); err != nil {
		return nil, err
	}
	// The authority mints tokens for any subject a caller names, so it must
	// not be reachable from other machines without protection by accident.
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("invalid listen address %q: %w", cfg.Listen, err)
	}
	if !IsLoopback(cfg.Listen) && !cfg.Insecure && cfg.ServiceKeyFile == "" && cfg.TLSCert == "" {
		return nil, fmt.Errorf("will not listen on %s without caller authentication: only loopback addresses are safe "+
			"without TLS or service keys; set a service key file or a TLS certificate, or pass --insecure", cfg.Listen)
	}
	if err := checkMetricsListen(cfg); err != nil {
		return nil, err
	}
	for _, warning := range exposureWarnings(cfg) {
		log.Warn(warning, "listen", cfg.Listen, "metrics_listen", cfg.MetricsListen)
	}
	var metrics *metricsServer
	var metricsOptions []grpc.ServerOption
	if cfg.MetricsListen != "" {
		m, err := newMetricsServer(log)
		if err != nil {
			return nil, err
		}
		metrics, metricsOptions = m, m.serverOptions()
	}
	serverOptions, err := grpcServerOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	serverOptions = append(metricsOptions, serverOptions...)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	if err := checkDataDirMode(cfg.DataDir); err != nil {
		return nil, err
	}

	// The key file records the token lifetime, so the lifetimes are checked
	// before anything is written.
	serviceCfg := authority.Config{
		CodeTTL:        cfg.CodeTTL,
		TokenTTL:       cfg.TokenTTL,
		SessionMaxAge:  cfg.SessionMaxAge,
		RotationLeeway: cfg.RotationLeeway,
		Logger:         log,
		Metrics:        metrics.serviceMetrics(),
	}
	if err := serviceCfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	keys, err := authority.LoadOrCreateKeySet(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	lifetime := serviceCfg.LongestTokenTTL()
	keys = recordTokenTTL(cfg.DataDir, keys, lifetime, log)
	reloader := &keyReloader{dir: cfg.DataDir, tokenTTL: lifetime, log: log, keys: keys, active: -1}
	initial, err := keys.Codec(time.Now(), lifetime)
	if err != nil {
		return nil, fmt.Errorf("key file in %q: %w", cfg.DataDir, err)
	}
	reloader.codec = authority.NewReloadableCodec(initial)
	if info, err := os.Stat(filepath.Join(cfg.DataDir, authority.KeyFileName)); err == nil {
		reloader.modTime = info.ModTime()
		reloader.active = len(initial.KeyIDs())
	}
	codec := reloader.codec

	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}

	service, err := authority.NewService(codec, store, serviceCfg)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}

	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}

	a := &Authority{
		listener: listener,
		server:   grpc.NewServer(serverOptions...),
		health:   health.NewServer(),
		store:    store,
		service:  service,
		log:      log,
		served:   make(chan error, 1),
		metrics:  metrics,
	}
	sockauthv1.RegisterAuthorityServiceServer(a.server, grpcserver.New(service, log))
	sockauthv1.RegisterAdminServiceServer(a.server, grpcserver.NewAdmin(service, log))
	healthpb.RegisterHealthServer(a.server, a.health)
	a.health.SetServingStatus(sockauthv1.AuthorityService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(a.server)
	if metrics != nil {
		if err := metrics.start(ctx, cfg.MetricsListen, a.server, store); err != nil {
			listener.Close()
			service.Close()
			store.Close()
			return nil, err
		}
	}

	reloadCtx, stopReload := context.WithCancel(context.Background())
	a.stopReload = stopReload
	go reloader.run(reloadCtx)
	if failing, ok := store.(failingStore); ok {
		go a.watchStore(reloadCtx, failing, storeCheckInterval)
	}
	go func() { a.served <- a.server.Serve(listener) }()
	log.Info("authority listening", "address", a.Addr(), "data", cfg.DataDir, "store", storeName(cfg),
		"signing_key_id", keys.SigningKeyID, "tls", cfg.TLSCert != "", "client_certificates", cfg.TLSClientCA != "",
		"service_keys", cfg.ServiceKeyFile != "")
	return a, nil
}

// Addr returns the address the gRPC server listens on.
func (a *Authority) Addr() string { return a.listener.Addr().String() }

// MetricsAddr returns the address of the metrics server, or "" when metrics
// are off.
func (a *Authority) MetricsAddr() string {
	if a.metrics == nil {
		return ""
	}
	return a.metrics.listener.Addr().String()
}

// SyncStats returns the sync counters of the authority's Badger store, and
// false when it stores sessions elsewhere.
func (a *Authority) SyncStats() (badgerstore.SyncStats, bool) {
	store, ok := a.store.(*badgerstore.Store)
	if !ok {
		return badgerstore.SyncStats{}, false
	}
	return store.Stats(), true
}

// Done returns a channel that receives the error that stopped the gRPC server,
// or nil after Close.
func (a *Authority) Done() <-chan error { return a.served }

// Close reports NOT_SERVING on health, waits up to five seconds for running
// RPCs, stops the gRPC server and closes the store. It is safe to call more
// than once.
func (a *Authority) Close() error {
	var err error
	a.once.Do(func() {
		a.health.Shutdown()
		// Revocation streams never end on their own; closing the watchers ends
		// them, so that the graceful stop below waits only for short calls.
		a.service.Close()

		stopped := make(chan struct{})
		go func() {
			a.server.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(shutdownGrace):
			a.log.Warn("RPCs still running after the shutdown grace period; stopping them", "grace", shutdownGrace)
			a.server.Stop()
			<-stopped
		}

		a.metrics.close()
		a.stopReload()
		err = a.store.Close()
		a.log.Info("authority stopped", "address", a.Addr())
	})
	return err
}

func storeName(cfg Config) string {
	if cfg.Store == "" {
		return "badger"
	}
	return cfg.Store
}

// checkStore rejects an unknown store name, or the Redis store without a
// URL, before Start creates the data folder or a key.
func checkStore(cfg Config) error {
	switch storeName(cfg) {
	case "badger":
		return nil
	case "redis":
		if cfg.RedisURL == "" {
			return errors.New("the redis store needs a Redis URL, such as redis://127.0.0.1:6379/0")
		}
		return nil
	}
	return fmt.Errorf("unknown store %q: use badger or redis", cfg.Store)
}

func openStore(ctx context.Context, cfg Config, log *slog.Logger) (authority.Store, error) {
	switch storeName(cfg) {
	case "badger":
		store, err := badgerstore.Open(filepath.Join(cfg.DataDir, "badger"), badgerstore.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("data folder %q: %w", cfg.DataDir, err)
		}
		return store, nil
	case "redis":
		return redisstore.Open(ctx, cfg.RedisURL, redisstore.Options{Logger: log})
	default:
		return nil, checkStore(cfg)
	}
}

// TransportServerOptions returns the message and stream limits, stream
// workers and keepalive policy of the authority's gRPC server. Benchmarks
// that compare another server with the authority use them too.
func TransportServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		// With 2 workers and 64 callers, most calls ran on new goroutines. In
		// the CPU profile of BenchmarkGRPCRotation, growing their stacks
		// (runtime.newstack) took a tenth of the CPU, and 2% with 128 workers.
		grpc.NumStreamWorkers(StreamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: MinKeepaliveInterval, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
	}
}

// grpcServerOptions returns the limits, credentials and interceptors of the
// gRPC server.
func grpcServerOptions(cfg Config, log *slog.Logger) ([]grpc.ServerOption, error) {
	options := TransportServerOptions()
	if cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.TLSClientCA != "" {
		config, err := serverTLSConfig(cfg)
		if err != nil {
			return nil, err
		}
		options = append(options, grpc.Creds(&handshakeLogger{TransportCredentials: credentials.NewTLS(config), log: log,
			throttle: logthrottle.New(handshakeLogBurst, time.Second)}))
	}

	if cfg.ServiceKeyFile != "" {
		auth, err := callerauth.NewAuthenticator(cfg.ServiceKeyFile, log)
		if err != nil {
			return nil, fmt.Errorf("--service-keys: %w", err)
		}
		options = append(options,
			grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()),
			grpc.ChainStreamInterceptor(auth.StreamInterceptor()))
	}
	return options, nil
}

func serverTLSConfig(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if now := time.Now(); pair.Leaf != nil && (now.After(pair.Leaf.NotAfter) || now.Before(pair.Leaf.NotBefore)) {
		return nil, fmt.Errorf("TLS certificate %q is valid from %s to %s, which does not include now; clients would "+
			"reject it", cfg.TLSCert, pair.Leaf.NotBefore.UTC().Format(time.RFC3339), pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}

	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS client CA file %q contains no PEM certificate", cfg.TLSClientCA)
		}
		config.ClientCAs = pool
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return config, nil
}

// checkDataDirMode rejects a data folder that other users may write to: they
// could replace the key file, which the authority re-reads while it runs.
func checkDataDirMode(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if mode := info.Mode().Perm(); mode&0o022 != 0 {
		return fmt.Errorf("data folder %q has mode %04o, which lets other users replace the key file; run chmod 700 on it", dir, mode)
	}
	return nil
}

// exposureWarnings returns what an operator should know about an address
// beyond loopback: gRPC without caller authentication, which only
// --insecure allows, TLS that authenticates no caller, service keys sent
// without TLS, and a metrics endpoint open to other machines.
func exposureWarnings(cfg Config) []string {
	var warnings []string
	if !IsLoopback(cfg.Listen) {
		switch {
		case cfg.ServiceKeyFile == "" && cfg.TLSCert == "":
			warnings = append(warnings, "the authority accepts callers beyond loopback without authentication or TLS, "+
				"because --insecure is set: any caller that reaches the address can mint tokens for any subject")
		case cfg.ServiceKeyFile != "" && cfg.TLSCert == "":
			warnings = append(warnings, "service keys reach the authority in plain text from beyond loopback; "+
				"set --tls-cert and --tls-key, because anyone on the network path can read and reuse them")
		case cfg.ServiceKeyFile == "" && cfg.TLSClientCA == "":
			warnings = append(warnings, "TLS encrypts the port, but no caller authenticates: any caller that "+
				"reaches the address can mint tokens for any subject; set --service-keys or --tls-client-ca")
		}
	}
	if cfg.MetricsListen != "" && !IsLoopback(cfg.MetricsListen) {
		warnings = append(warnings, "the metrics endpoint accepts requests from beyond loopback without "+
			"authentication, because --insecure is set")
	}
	return warnings
}

// handshakeLogBurst is how many failed TLS handshakes are logged at once,
// before the log falls to one line a second.
const handshakeLogBurst = 10

// handshakeLogger logs the TLS handshakes that fail on the server's side,
// such as a client certificate from an unknown CA. grpc-go logs them only at
// the info level of its own logger, which is off by default (v1.85.0,
// Server.newHTTP2Transport).
type handshakeLogger struct {
	credentials.TransportCredentials
	log      *slog.Logger
	throttle *logthrottle.Throttle
}

// ServerHandshake runs the TLS handshake and logs its failure.
func (c *handshakeLogger) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	secured, info, err := c.TransportCredentials.ServerHandshake(conn)
	// A connection closed before its first byte is a TCP probe, such as a
	// load balancer's health check, not a failed handshake.
	if err != nil && !errors.Is(err, io.EOF) {
		c.throttle.Log(func(suppressed int64) {
			c.log.Warn("TLS handshake failed", "peer", conn.RemoteAddr().String(), "error", err,
				"failures_not_logged", suppressed)
		})
	}
	return secured, info, err
}

// Clone returns a copy that logs to the same logger and throttle.
func (c *handshakeLogger) Clone() credentials.TransportCredentials {
	return &handshakeLogger{TransportCredentials: c.TransportCredentials.Clone(), log: c.log, throttle: c.throttle}
}
