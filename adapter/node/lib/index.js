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
const { TrustedProxies, clientAddress } = require('./clientaddress');
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
//   socketAuthenticateLimit, addressAuthenticateLimit
//                         {perSecond, burst} token buckets of authenticate
//                         events per socket and per client address; default
//                         {perSecond: 0.2, burst: 5} and {perSecond: 20,
//                         burst: 100}; a negative perSecond turns one off
//   trustedProxies        networks of the reverse proxies whose
//                         X-Forwarded-For names the client address; default
//                         ['127.0.0.0/8', '::1/128'], [] trusts none
//   maxPayloadBytes       larger authenticate and logout payloads, measured
//                         as JSON, are rejected; default 8192
//   maxUnauthenticatedSockets
//                         cap of sockets waiting for authentication; default
//                         10000, negative turns it off
//   onAuthenticated(socket, identity)
//                         called when a socket authenticates into a session
//   logger                {debug, info, warn, error}(message, attrs)
//   registry              prom-client Registry that receives the Prometheus
//                         metrics of the Go adapters; default none, and
//                         prom-client is then not loaded
//   metricLabels          {name: value} constant labels of this instance's
//                         series, distinct for each instance on one registry
function sockauth(ioOrNamespace, options) {
  const nsp = typeof ioOrNamespace.of === 'function' ? ioOrNamespace.of('/') : ioOrNamespace;
  return new Sockauth(nsp, options);
}

module.exports = {
  sockauth,
  Sockauth,
  TrustedProxies,
  clientAddress,
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
