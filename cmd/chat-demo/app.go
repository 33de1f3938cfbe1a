package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	clientjs "github.com/sockauth/sockauth/client/js"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/serve"
)

// static holds the page. static/socket.io-4.8.4.min.js and
// static/socket.io-2.5.0.js are the browser builds of the npm package
// socket.io-client (dist/socket.io.min.js of 4.8.4 and dist/socket.io.js of
// 2.5.0, MIT License), vendored unchanged so that the demo runs without npm.
// The page's client helper, /static/sockauth.js, comes from package
// clientjs.
//
//go:embed static
var static embed.FS

// shutdownTimeout bounds how long a stopping demo waits for open HTTP requests.
const shutdownTimeout = 10 * time.Second

// app is the running demo: the authority client, the socket.io server and the
// HTTP server in front of both.
type app struct {
	logger     *slog.Logger
	listen     string
	authority  *grpc.ClientConn
	chat       *chatServer
	httpServer *http.Server
	// metrics serves the adapters' metrics, or is nil without
	// --metrics-listen.
	metrics *metricsEndpoint
}

// authorityKeepalive makes the client ping an authority connection that was
// quiet for Time and close it when no reply comes within Timeout. Without
// it, the revocation stream to an authority host that vanished without
// closing its connections would look open, and revocations would be missed.
// The authority accepts pings every 10 s or slower.
var authorityKeepalive = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}

// newApp creates the client of the authority at authorityAddr, with the
// service key and TLS settings of cfg.AuthorityClient, which connects on its
// first call, and builds the HTTP handlers. It does not listen yet.
func newApp(ctx context.Context, cfg config, users *userStore, authorityAddr string, logger *slog.Logger) (*app, error) {
	clientOptions := cfg.AuthorityClient
	clientOptions.Address = authorityAddr
	encrypted := clientOptions.TLS || clientOptions.TLSCA != "" || clientOptions.TLSCert != ""
	if !encrypted && !serve.IsLoopback(authorityAddr) {
		logger.Warn("the connection to the authority is not encrypted: set --authority-tls or --authority-tls-ca", "authority", authorityAddr)
	}
	conn, err := authclient.Dial(clientOptions, grpc.WithKeepaliveParams(authorityKeepalive))
	if err != nil {
		return nil, fmt.Errorf("connect to the authority: %w", err)
	}
	client := sockauthv1.NewAuthorityServiceClient(conn)

	metrics := newMetricsEndpoint(cfg.MetricsListen, logger)
	chat, err := newChatServer(client, chatOptions{AuthTimeout: cfg.AuthTimeout, EIO3Polling: cfg.EIO3Polling,
		TrustedProxies: cfg.TrustedProxies, Metrics: metrics}, logger)
	if err != nil {
		conn.Close()
		return nil, err
	}

	staticFiles, err := fs.Sub(static, "static")
	if err != nil {
		conn.Close()
		chat.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", serveIndex(staticFiles))
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(staticFiles)))
	mux.Handle("GET /static/sockauth.js", serveModule(clientjs.Module))
	// Both socket.io servers' flows have the same trusted proxies, so either
	// one finds the client address of a login.
	flow := chat.eio4.binding.Flow()
	clientAddress := func(r *http.Request) string { return flow.ClientAddress(r.RemoteAddr, r.Header) }
	mux.Handle("/login", &loginHandler{users: users, authority: client, logger: logger, clientAddress: clientAddress})
	mux.Handle("/socket.io/", chat)

	a := &app{
		logger:    logger,
		listen:    cfg.Listen,
		authority: conn,
		chat:      chat,
		metrics:   metrics,
		httpServer: &http.Server{
			Handler:           withSecurityHeaders(mux),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}
	logger.Info("chat demo starting", "authority", authorityAddr, "users", len(users.passwordHashes), "auth_timeout", cfg.AuthTimeout,
		"trusted_proxies", flow.Config().TrustedProxies)
	return a, nil
}

// Serve listens on the configured address and serves until ctx is done or the
// server fails. When ctx is done it shuts the HTTP server down gracefully and
// returns nil.
func (a *app) Serve(ctx context.Context) error {
	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(ctx, "tcp", a.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.listen, err)
	}
	if err := a.metrics.start(ctx); err != nil {
		listener.Close()
		return err
	}
	a.logger.Info("chat demo listening", "address", listener.Addr().String(), "url", "http://"+listener.Addr().String()+"/")
	if !serve.IsLoopback(a.listen) {
		a.logger.Warn("the demo serves plain HTTP, so passwords and tokens cross the network unencrypted", "address", a.listen)
	}

	// A pending long-polling request lasts until the server has a packet
	// for it, so Shutdown would wait for each one until shutdownTimeout.
	a.httpServer.RegisterOnShutdown(a.chat.disconnectAll)

	served := make(chan error, 1)
	go func() { served <- a.httpServer.Serve(listener) }()

	select {
	case err := <-served:
		return fmt.Errorf("HTTP server failed: %w", err)
	case <-ctx.Done():
	}

	a.logger.Info("chat demo stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()

	// Shutdown does not wait for hijacked WebSocket connections. Close, which
	// run defers, closes them with the socket.io server.
	err = a.httpServer.Shutdown(shutdownCtx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		a.logger.Error("HTTP server failed during shutdown", "err", err)
	}
	if err != nil {
		return fmt.Errorf("shut down the HTTP server: %w", err)
	}
	return nil
}

// Close closes the metrics server, the socket.io server and the authority
// connection.
func (a *app) Close() {
	a.metrics.close()
	if err := a.chat.Close(); err != nil {
		a.logger.Error("closing the socket.io server failed", "err", err)
	}
	if err := a.authority.Close(); err != nil {
		a.logger.Error("closing the authority connection failed", "err", err)
	}
	a.logger.Info("chat demo stopped")
}

// serveModule serves the JavaScript module source.
func serveModule(source []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "sockauth.js", time.Time{}, bytes.NewReader(source))
	})
}

// serveIndex serves static/index.html for GET /.
func serveIndex(files fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "index.html")
	})
}

// withSecurityHeaders sets headers that confine the page to its own scripts and
// origin, so that injected markup cannot load scripts or frame the page.
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := w.Header()
		header.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		header.Set("X-Content-Type-Options", "nosniff")
		header.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
