'use strict';

// A socket.io 4.x chat server whose sockets authenticate with a sockauth
// authority. Clients get login codes elsewhere, such as from the chat demo's
// POST /login on the same authority, and authenticate with the authenticate
// event or the handshake's auth payload. Authenticated sockets may send
// message events, which every authenticated socket receives with the
// sender's subject.
//
// Usage: node example/server.js [--authority HOST:PORT] [--key-file FILE] [--listen HOST:PORT]
//                                [--trusted-proxies LIST] [--metrics-listen HOST:PORT [--insecure-metrics]]
//   --authority        gRPC address of the authority (default 127.0.0.1:7070)
//   --key-file         file holding the service key sent to the authority (optional)
//   --listen           address to serve on (default 127.0.0.1:8090; port 0 picks one)
//   --trusted-proxies  comma-separated networks of the reverse proxies whose
//                      X-Forwarded-For names the client address (default
//                      127.0.0.0/8,::1/128; an empty value trusts none)
//   --metrics-listen   address of the Prometheus /metrics endpoint, such as
//                      127.0.0.1:9464 (default empty: no endpoint); it needs
//                      the prom-client package
//   --insecure-metrics allow a non-loopback --metrics-listen address; the
//                      endpoint has no authentication
//
// It writes {"listening":"http://HOST:PORT"} on stdout once it serves, then
// {"metrics":"http://HOST:PORT/metrics"} with --metrics-listen, and JSON log
// lines on stderr.

const fs = require('node:fs');
const http = require('node:http');
const { parseArgs } = require('node:util');
const { Server } = require('socket.io');
const { isLoopback, sockauth } = require('../lib');

const { values: flags } = parseArgs({
  options: {
    authority: { type: 'string', default: '127.0.0.1:7070' },
    'key-file': { type: 'string', default: '' },
    listen: { type: 'string', default: '127.0.0.1:8090' },
    'trusted-proxies': { type: 'string' },
    'metrics-listen': { type: 'string', default: '' },
    'insecure-metrics': { type: 'boolean', default: false }
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

const metricsAddress = flags['metrics-listen'];
if (metricsAddress !== '' && !/^(\[[^\]]*\]|[^:]*):\d+$/.test(metricsAddress)) {
  log('error')('invalid --metrics-listen ' + metricsAddress + ': expected HOST:PORT, such as 127.0.0.1:9464', {});
  process.exit(2);
}
if (metricsAddress !== '' && !isLoopback(metricsAddress) && !flags['insecure-metrics']) {
  log('error')('will not serve metrics on ' + metricsAddress + ', because the endpoint has no authentication: ' +
    'use a loopback address such as 127.0.0.1:9464, or pass --insecure-metrics', {});
  process.exit(2);
}
const metrics = metricsAddress === '' ? null : createMetricsServer();

// createMetricsServer returns a prom-client registry with the Node.js
// runtime and process metrics, and an HTTP server that serves it at GET
// /metrics. The server does not listen yet.
function createMetricsServer() {
  const { Registry, collectDefaultMetrics } = require('prom-client');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || new URL(req.url, 'http://localhost').pathname !== '/metrics') {
      res.writeHead(404);
      res.end();
      return;
    }
    registry.metrics().then((body) => {
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(body);
    }, (error) => {
      log('error')('collecting metrics failed', { error: String(error) });
      res.writeHead(500);
      res.end();
    });
  });
  return { registry, server };
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
  registry: metrics ? metrics.registry : undefined,
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
  if (metrics) {
    listenForMetrics();
  }
});

function listenForMetrics() {
  const [metricsHost, metricsPort] = metricsAddress.split(/:(?=\d+$)/);
  metrics.server.on('error', (error) => {
    log('error')('listening for metrics failed', { address: metricsAddress, error: String(error) });
    process.exit(1);
  });
  metrics.server.listen(Number(metricsPort), metricsHost.replace(/^\[(.*)\]$/, '$1'), () => {
    const address = metrics.server.address();
    const urlHost = address.family === 'IPv6' ? '[' + address.address + ']' : address.address;
    if (!isLoopback(urlHost + ':' + address.port)) {
      log('warn')('the metrics endpoint has no authentication and is reachable beyond loopback', { address: metricsAddress });
    }
    process.stdout.write(JSON.stringify({ metrics: 'http://' + urlHost + ':' + address.port + '/metrics' }) + '\n');
  });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    auth.close();
    if (metrics) {
      metrics.server.close();
    }
    io.close(() => process.exit(0));
  });
}
