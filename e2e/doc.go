// Package e2e holds the end-to-end tests of sockauth. They build the sockauth
// and chat-demo binaries, run them as separate processes on loopback, and
// drive the chat demo with the npm package socket.io-client (2.5.0, 3.1.3 and
// 4.8.4) from the Node scripts in e2e/node/scenarios, and with headless
// Chromium from e2e/browser/chat.mjs.
//
// The tests need Node.js and e2e/node/node_modules. Run `npm ci` in e2e/node
// (make test does) before go test. Without them, or with -short, the tests
// are skipped. The browser test also needs /usr/bin/chromium and
// e2e/browser/node_modules (make browser installs both), and is skipped
// without them unless SOCKAUTH_REQUIRE_BROWSER is set.
package e2e
