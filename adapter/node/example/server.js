'use strict';

// A socket.io 4.x chat server whose sockets authenticate with a sockauth
// authority. Clients get login codes elsewhere, such as from the chat demo's
// POST /login on the same authority, and authenticate with the authenticate
// event or the handshake's auth payload. Authenticated sockets may send
// message events, which every authenticated socket receives with the
// sender's subject.
//
// Run it with --help for its flags.
//
// It writes {"listening":"http://HOST:PORT"} on stdout once it serves, then
// {"metrics":"http://HOST:PORT/metrics"} with --metrics-listen, and JSON log
// lines on stderr.

const fs = require('node:fs');
const http = require('node:http');
const { parseArgs } = require('node:util');
const { Server } = require('socket.io');
const { isLoopback, sockauth } = require('../lib');

const USAGE = `Usage: node example/server.js [--authority HOST:PORT] [--key-file FILE] [--listen HOST:PORT]
                              [--trusted-proxies LIST] [--metrics-listen HOST:PORT [--insecure-metrics]]
  --authority        gRPC address of the authority (default 127.0.0.1:7070)
  --key-file         file holding the service key sent to the authority
  --listen           address to serve on (default 127.0.0.1:8090; port 0 picks one)
  --trusted-proxies  comma-separated networks of the reverse proxies whose
                     X-Forwarded-For names the client address (default
                     127.0.0.0/8,::1/128; an empty value trusts none)
  --metrics-listen   address of the Prometheus /metrics endpoint (default none)
  --insecure-metrics allow a non-loopback --metrics-listen address
`;

// fail writes message and the usage on stderr and exits with status 2.
function fail(message) {
  process.stderr.write('example/server.js: ' + message + '\n\n' + USAGE);
  process.exit(2);
}

let flags;
try {
  flags = parseArgs({
    options: {
      authority: { type: 'string', default: '127.0.0.1:7070' },
      'key-file': { type: 'string', default: '' },
      listen: { type: 'string', default: '127.0.0.1:8090' },
      'trusted-proxies': { type: 'string' },
      'metrics-listen': { type: 'string', default: '' },
      'insecure-metrics': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    }
  }).values;
} catch (error) {
  fail(error.message);
}
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

// splitHostPort returns [host, port] of a HOST:PORT flag value, or calls
// fail when the value has no valid port.
function splitHostPort(flag, value) {
  const match = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(value);
  if (!match || Number(match[2]) > 65535) {
    fail('invalid --' + flag + ' ' + JSON.stringify(value) + ': expected HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:8090');
  }
  return [match[1].replace(/^\[(.*)\]$/, '$1'), Number(match[2])];
}

const [host, port] = splitHostPort('listen', flags.listen);
if (flags['insecure-metrics'] && flags['metrics-listen'] === '') {
  fail('--insecure-metrics needs --metrics-listen');
}
let serviceKey = '';
if (flags['key-file']) {
  try {
    serviceKey = fs.readFileSync(flags['key-file'], 'utf8').trim();
  } catch (error) {
    fail('reading --key-file ' + flags['key-file'] + ' failed: ' + error.message);
  }
}
const trustedProxies = flags['trusted-proxies'] === undefined
  ? undefined
  : flags['trusted-proxies'].split(',').map((network) => network.trim()).filter((network) => network !== '');

function log(level) {
  return (message, attrs) => process.stderr.write(JSON.stringify(Object.assign({ level, msg: message }, attrs)) + '\n');
}

const metricsAddress = flags['metrics-listen'];
if (metricsAddress !== '') {
  splitHostPort('metrics-listen', metricsAddress);
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
