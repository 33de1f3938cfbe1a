// Package proxytest serves a reverse proxy on loopback for tests of the
// socket.io bindings behind a proxy.
package proxytest

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// New starts a reverse proxy to target, an http:// URL, and stops it when
// the test ends. Like a proxy configured to keep the chain, it appends the
// address of its own peer to the X-Forwarded-For header that the request
// brought. It forwards WebSocket upgrades.
func New(tb testing.TB, target string) *httptest.Server {
	tb.Helper()
	upstream, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("invalid proxy target %q: %v", target, err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(upstream)
		r.Out.Header["X-Forwarded-For"] = r.In.Header["X-Forwarded-For"]
		r.SetXForwarded()
	}}
	server := httptest.NewServer(proxy)
	tb.Cleanup(server.Close)
	return server
}
