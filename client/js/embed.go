// Package clientjs embeds sockauth.js, the ES module that authenticates
// socket.io-client connections in browsers and Node, so that a Go server can
// serve it to its pages without npm. cmd/chat-demo serves it as
// /static/sockauth.js.
package clientjs

import _ "embed"

// Module is the source of sockauth.js, served with the media type
// text/javascript.
//
//go:embed sockauth.js
var Module []byte
