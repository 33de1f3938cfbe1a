'use strict';

// Test fixtures: a socket.io 4.x server with the adapter on a loopback port,
// in front of a FakeAuthority, socket.io-client 4.x clients that record
// every event in arrival order, and a reverse proxy for WebSocket upgrades.

const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { Server } = require('socket.io');
const ioClient = require('socket.io-client');
const { sockauth } = require('../lib');
const { FakeAuthority } = require('./fake-authority');

const RECORDED_EVENTS = ['connect', 'connect_error', 'disconnect', 'authenticated', 'unauthorized', 'logged_out', 'echo'];

// startStack starts a fake authority and a socket.io server that uses the
// adapter with options. The server echoes message events with the sender's
// subject. t.after stops everything.
async function startStack(t, options = {}, authorityOptions = {}) {
  const authority = new FakeAuthority(authorityOptions);
  await authority.start();

  const httpServer = http.createServer();
  const io = new Server(httpServer);
  const lines = [];
  const logger = {
    debug: (message, attrs) => lines.push({ level: 'debug', message, attrs }),
    info: (message, attrs) => lines.push({ level: 'info', message, attrs }),
    warn: (message, attrs) => lines.push({ level: 'warn', message, attrs }),
    error: (message, attrs) => lines.push({ level: 'error', message, attrs })
  };
  const auth = sockauth(io, Object.assign({ address: authority.address, logger: logger }, options));
  io.on('connection', (socket) => {
    socket.on('message', (text) => {
      const identity = auth.identity(socket);
      socket.emit('echo', { text: text, subject: identity ? identity.subject : null });
    });
  });
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const url = 'http://127.0.0.1:' + httpServer.address().port;

  const clients = [];
  t.after(async () => {
    for (const client of clients) {
      client.socket.close();
    }
    auth.close();
    await new Promise((resolve) => io.close(resolve));
    authority.stop();
  });

  return {
    authority: authority,
    auth: auth,
    io: io,
    url: url,
    logs: lines,
    // client connects a recording client with socket.io-client options, to
    // the server or to serverUrl, such as a proxy in front of it.
    client(clientOptions = {}, serverUrl = url) {
      const client = new RecordingClient(serverUrl, clientOptions);
      clients.push(client);
      return client;
    }
  };
}

// RecordingClient wraps one socket.io-client socket and queues its events.
class RecordingClient {
  constructor(url, options) {
    this.queue = [];
    this.waiters = [];
    this.socket = ioClient(url, Object.assign({ forceNew: true, reconnection: false, transports: ['websocket'] }, options));
    for (const event of RECORDED_EVENTS) {
      this.socket.on(event, (...args) => this.record(event, args));
    }
  }

  record(event, args) {
    const index = this.waiters.findIndex((waiter) => waiter.events.includes(event));
    if (index < 0) {
      this.queue.push({ event: event, args: args });
      return;
    }
    const waiter = this.waiters.splice(index, 1)[0];
    clearTimeout(waiter.timer);
    waiter.resolve({ event: event, args: args });
  }

  // next resolves with {event, args} of the next event named in events, or
  // rejects after timeoutMs.
  next(events, timeoutMs = 3000) {
    const names = Array.isArray(events) ? events : [events];
    const index = this.queue.findIndex((entry) => names.includes(entry.event));
    if (index >= 0) {
      return Promise.resolve(this.queue.splice(index, 1)[0]);
    }
    return new Promise((resolve, reject) => {
      const waiter = { events: names, resolve: resolve, timer: null };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error('no ' + names.join(' or ') + ' event within ' + timeoutMs + ' ms; queued: ' +
          JSON.stringify(this.queue.map((entry) => entry.event))));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  // nextOrNull resolves with the next such event, or null after timeoutMs.
  async nextOrNull(events, timeoutMs) {
    try {
      return await this.next(events, timeoutMs);
    } catch (e) {
      return null;
    }
  }

  // authenticate emits authenticate with token and resolves with the
  // outcome: authenticated (acknowledged unless ack is false) or
  // unauthorized.
  async authenticate(token, ack = true) {
    this.socket.emit('authenticate', { token: token });
    return this.outcome(ack);
  }

  async outcome(ack = true) {
    const entry = await this.next(['authenticated', 'unauthorized']);
    if (entry.event === 'authenticated' && ack) {
      entry.args[2]();
    }
    return entry;
  }
}

// startProxy starts a reverse proxy on 127.0.0.1 that forwards WebSocket
// upgrade requests to targetUrl and appends the address of its peer to
// X-Forwarded-For, as nginx does with $proxy_add_x_forwarded_for. Other
// requests get 502. localAddress is the source address of its connections
// to the target. It resolves with the proxy's URL, and t.after stops it.
async function startProxy(t, targetUrl, localAddress = undefined) {
  const target = new URL(targetUrl);
  const connections = new Set();
  const track = (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
  };

  const server = http.createServer((req, res) => {
    res.writeHead(502);
    res.end();
  });
  server.on('upgrade', (req, downstream, head) => {
    const upstream = net.connect({ host: target.hostname, port: Number(target.port), localAddress: localAddress });
    track(downstream);
    track(upstream);
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());

    const peer = req.socket.remoteAddress;
    const forwarded = req.headers['x-forwarded-for'] ? req.headers['x-forwarded-for'] + ', ' + peer : peer;
    const lines = [req.method + ' ' + req.url + ' HTTP/1.1'];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i].toLowerCase() !== 'x-forwarded-for') {
        lines.push(req.rawHeaders[i] + ': ' + req.rawHeaders[i + 1]);
      }
    }
    lines.push('X-Forwarded-For: ' + forwarded);
    upstream.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length > 0) {
      upstream.write(head);
    }
    upstream.pipe(downstream);
    downstream.pipe(upstream);
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of connections) {
      socket.destroy();
    }
    return new Promise((resolve) => server.close(resolve));
  });
  return 'http://127.0.0.1:' + server.address().port;
}

function assertUnauthorized(entry, code) {
  assert.equal(entry.event, 'unauthorized', 'expected unauthorized, got ' + entry.event + ' ' + JSON.stringify(entry.args));
  assert.deepEqual(entry.args[0], {
    message: entry.args[0].message,
    data: { message: entry.args[0].message, code: code, type: 'UnauthorizedError' }
  });
  assert.ok(entry.args[0].message.length > 0, 'unauthorized carries an empty message');
}

function assertAuthenticated(entry, subject) {
  assert.equal(entry.event, 'authenticated', 'expected authenticated, got ' + entry.event + ' ' + JSON.stringify(entry.args));
  const [token, info, ack] = entry.args;
  assert.equal(typeof token, 'string');
  assert.ok(token.length > 0, 'authenticated carries an empty token');
  assert.equal(info.subject, subject);
  assert.ok(info.session_id, 'authenticated carries no session_id');
  assert.match(info.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(typeof ack, 'function', 'authenticated carries no ack callback');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// eventually polls check until it returns true, or throws after timeoutMs.
async function eventually(check, timeoutMs = 3000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) {
      return;
    }
    await sleep(20);
  }
  throw new Error(what + ' not met within ' + timeoutMs + ' ms');
}

module.exports = { startStack, startProxy, assertAuthenticated, assertUnauthorized, sleep, eventually };
