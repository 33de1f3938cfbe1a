'use strict';

// sockauth-socketio: socket.io 4.x middleware that authenticates sockets with
// a sockauth authority over gRPC.
//
//   const { sockauth } = require('sockauth-socketio');
//   const auth = sockauth(io, { address: '127.0.0.1:7070', serviceKey: process.env.SOCKAUTH_KEY });
//   io.on('connection', (socket) => {
//     socket.on('message', (text) => { const who = auth.identity(socket); ... });
//   });
//
// Call sockauth before registering the application's connection handlers.
// Events other than authenticate and logout from a socket that has not
// authenticated never reach the application's handlers.

const { createAuthorityClient, isLoopback } = require('./authority');
const { Codes, codeOf, errorInfo } = require('./errors');
const { Events, DEFAULTS, Sockauth } = require('./flow');
const { tokenFromHandshake, tokenFromPayload } = require('./payload');

// sockauth attaches the authentication flow to a socket.io Server (its main
// namespace) or to one Namespace, and returns the Sockauth instance.
//
// options:
//   address, serviceKey, credentials, allowInsecureKey, protoDir
//                         how to reach the authority (see createAuthorityClient),
//                         or authority: a client made by createAuthorityClient
//   authTimeoutMs         time to authenticate after connecting; default 5000
//   callTimeoutMs         deadline of each authority call; default 3000
//   maxTokenBytes         longer tokens are rejected unseen; default 4096
//   watchRevocations      keep a WatchRevocations stream; default true
//   revocationRetryMs, revocationMaxRetryMs
//                         backoff of the stream's reconnects; default 500, 30000
//   onAuthenticated(socket, identity)
//                         called when a socket authenticates into a session
//   logger                {debug, info, warn, error}(message, attrs)
function sockauth(ioOrNamespace, options) {
  const nsp = typeof ioOrNamespace.of === 'function' ? ioOrNamespace.of('/') : ioOrNamespace;
  return new Sockauth(nsp, options);
}

module.exports = {
  sockauth,
  Sockauth,
  createAuthorityClient,
  isLoopback,
  Codes,
  Events,
  DEFAULTS,
  codeOf,
  errorInfo,
  tokenFromHandshake,
  tokenFromPayload
};
