// Package e2e holds the end-to-end tests of sockauth. They build the sockauth
// and chat-demo binaries, run them as separate processes on loopback, and
// drive the chat demo with the npm package socket.io-client 2.5.0 from the
// Node scripts in e2e/node/scenarios.
//
// The tests need Node.js and e2e/node/node_modules. Run `npm ci` in e2e/node
// (make test does) before go test. Without them, or with -short, the tests
// are skipped.
package e2e
