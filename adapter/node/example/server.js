'use strict';

// A socket.io 4.x chat server whose sockets authenticate with a sockauth
// authority. Clients get login codes elsewhere, such as from the chat demo's
// POST /login on the same authority, and authenticate with the authenticate
// event or the handshake's auth payload. Authenticated sockets may send
// message events, which every authenticated socket receives with the
// sender's subject.
//
// Usage: node example/server.js [--authority HOST:PORT] [--key-file FILE] [--listen HOST:PORT]
//                                [--trusted-proxies LIST]
//   --authority        gRPC address of the authority (default 127.0.0.1:7070)
//   --key-file         file holding the service key sent to the authority (optional)
//   --listen           address to serve on (default 127.0.0.1:8090; port 0 picks one)
//   --trusted-proxies  comma-separated networks of the reverse proxies whose
//                      X-Forwarded-For names the client address (default
//                      127.0.0.0/8,::1/128; an empty value trusts none)
//
// It writes {"listening":"http://HOST:PORT"} on stdout once it serves, and
// JSON log lines on stderr.

const fs = require('node:fs');
const http = require('node:http');
const { parseArgs } = require('node:util');
const { Server } = require('socket.io');
const { sockauth } = require('../lib');

const { values: flags } = parseArgs({
  options: {
    authority: { type: 'string', default: '127.0.0.1:7070' },
    'key-file': { type: 'string', default: '' },
    listen: { type: 'string', default: '127.0.0.1:8090' },
    'trusted-proxies': { type: 'string' }
  }
});
const [host, port] = flags.listen.split(/:(?=\d+$)/);
const serviceKey = flags['key-file'] ? fs.readFileSync(flags['key-file'], 'utf8').trim() : '';
const trustedProxies = flags['trusted-proxies'] === undefined
  ? undefined
  : flags['trusted-proxies'].split(',').map((network) => network.trim()).filter((network) => network !== '');

function log(level) {
  return (message, attrs) => process.stderr.write(JSON.stringify(Object.assign({ level, msg: message }, attrs)) + '\n');
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer);
const auth = sockauth(io, {
  address: flags.authority,
  serviceKey: serviceKey,
  trustedProxies: trustedProxies,
  logger: { debug() {}, info: log('info'), warn: log('warn'), error: log('error') },
  onAuthenticated: (socket) => socket.join('chat')
});

io.on('connection', (socket) => {
  socket.on('message', (text) => {
    const identity = auth.identity(socket);
    if (typeof text !== 'string' || !identity) {
      return;
    }
    io.to('chat').emit('message', { from: identity.subject, text: text.slice(0, 1000), at: new Date().toISOString() });
  });
});

httpServer.listen(Number(port), host, () => {
  const address = httpServer.address();
  process.stdout.write(JSON.stringify({ listening: 'http://' + address.address + ':' + address.port }) + '\n');
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    auth.close();
    io.close(() => process.exit(0));
  });
}
