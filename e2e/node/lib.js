'use strict';

// Shared helpers of the scenario scripts. Each script drives the chat demo as a
// socket.io client and writes one JSON object per line to stdout, which the
// Go tests in package e2e read. The last line is {"step":"done"} on success or
// {"step":"error","message":...} on failure, with exit status 1.
//
// SOCKETIO_CLIENT names the npm package of the client: socket.io-client
// (2.5.0, the default), socket.io-client-v3 (3.1.3) or socket.io-client-v4
// (4.8.4), as package.json installs them.

const io = require(process.env.SOCKETIO_CLIENT || 'socket.io-client');

// Events of the sockauth wire contract and of the chat demo, recorded on every
// client.
const RECORDED_EVENTS = [
  'connect', 'connect_error', 'disconnect', 'error',
  'authenticated', 'unauthorized', 'logged_out', 'message'
];

const DEFAULT_WAIT_MS = 5000;

function env(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback !== undefined) {
      return fallback;
    }
    throw new Error('missing environment variable ' + name);
  }
  return value;
}

function envInt(name, fallback) {
  const value = Number.parseInt(env(name, String(fallback)), 10);
  if (!Number.isFinite(value)) {
    throw new Error('invalid environment variable ' + name + ': expected an integer');
  }
  return value;
}

function writeLine(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// POST /login and return {status, body}. The body is parsed JSON, or the raw
// text when it is not JSON.
async function login(baseURL, username, password) {
  const response = await fetch(baseURL + '/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: username, password: password })
  });
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch (e) {
    // Keep the raw text, so that the test can show it.
  }
  return { status: response.status, body: body };
}

// Log in and return the login code, or throw when the login fails.
async function loginCode(baseURL, username, password) {
  const result = await login(baseURL, username, password);
  if (result.status !== 200 || typeof result.body.token !== 'string') {
    throw new Error('login as ' + username + ' failed with status ' + result.status + ': ' + JSON.stringify(result.body));
  }
  return result.body.token;
}

// Client wraps one socket.io connection and queues every recorded event in
// arrival order, so that a scenario can wait for the next event of some names.
class Client {
  // options are added to the io() options, such as auth for a handshake
  // token. options.io, when set, is the io function of another client
  // package.
  constructor(baseURL, name, options = {}) {
    const { io: connect = io, ...ioOptions } = options;
    this.name = name;
    // queue contains {event, args} entries that no waiter has taken yet.
    this.queue = [];
    // waiters contains {events, resolve, timer} entries of pending nextOf calls.
    this.waiters = [];
    this.socket = connect(baseURL, Object.assign({
      forceNew: true,
      reconnection: false,
      transports: env('SOCKET_TRANSPORTS', 'websocket').split(',')
    }, ioOptions));
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

  // Resolve with {event, args} of the next event whose name is in events, or
  // reject after timeoutMs.
  nextOf(events, timeoutMs = DEFAULT_WAIT_MS) {
    const index = this.queue.findIndex((entry) => events.includes(entry.event));
    if (index >= 0) {
      return Promise.resolve(this.queue.splice(index, 1)[0]);
    }
    return new Promise((resolve, reject) => {
      const waiter = { events: events, resolve: resolve, timer: null };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(this.name + ': no ' + events.join(' or ') + ' event within ' + timeoutMs + ' ms'));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  // Resolve with the arguments of the next event of this name, or reject after
  // timeoutMs.
  async next(event, timeoutMs = DEFAULT_WAIT_MS) {
    const entry = await this.nextOf([event], timeoutMs);
    return entry.args;
  }

  // Resolve with the arguments of the next event of this name, or with null
  // when none arrives within timeoutMs.
  async nextOrNull(event, timeoutMs) {
    try {
      return await this.next(event, timeoutMs);
    } catch (e) {
      return null;
    }
  }

  // Resolve with the next chat message whose text is text, skipping the
  // messages of other clients of the same chat, or reject after timeoutMs.
  async nextMessage(text, timeoutMs = DEFAULT_WAIT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(this.name + ': no message ' + JSON.stringify(text) + ' within ' + timeoutMs + ' ms');
      }
      const [message] = await this.next('message', remaining);
      if (message && message.text === text) {
        return message;
      }
    }
  }

  // Remove and return the arguments of every queued event of this name.
  drain(event) {
    const removed = this.queue.filter((entry) => entry.event === event).map((entry) => entry.args);
    this.queue = this.queue.filter((entry) => entry.event !== event);
    return removed;
  }

  async connected() {
    if (!this.socket.connected) {
      await this.next('connect');
    }
  }

  // Return the name of the Engine.IO transport in use: polling or websocket.
  transportName() {
    const engine = this.socket.io.engine;
    return engine && engine.transport ? engine.transport.name : '';
  }

  // Resolve once the transport is name, or after timeoutMs, with the name of
  // the transport then in use.
  async settleTransport(name, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (this.transportName() !== name && Date.now() < deadline) {
      await sleep(50);
    }
    return this.transportName();
  }

  emit(event, ...args) {
    this.socket.emit(event, ...args);
  }

  // Emit authenticate and return the outcome: {event: 'authenticated', token,
  // info, ack} or {event: 'unauthorized', error}. The ack is not called.
  async authenticate(payload, timeoutMs = DEFAULT_WAIT_MS) {
    this.socket.emit('authenticate', payload);
    const entry = await this.nextOf(['authenticated', 'unauthorized'], timeoutMs);
    if (entry.event === 'authenticated') {
      const [token, info, ack] = entry.args;
      return { event: 'authenticated', token: token, info: info, ack: ack };
    }
    return { event: 'unauthorized', error: entry.args[0] };
  }

  close() {
    this.socket.close();
  }
}

// Connect a new client, authenticate with payload and return the outcome as
// authenticate does, with the client.
async function connectAndAuthenticate(baseURL, name, payload) {
  const client = new Client(baseURL, name);
  await client.connected();
  const outcome = await client.authenticate(payload);
  return Object.assign({ client: client }, outcome);
}

// Describe an authenticate outcome as a JSON-friendly object, without the ack
// function and the client.
function describe(outcome) {
  if (outcome.event === 'authenticated') {
    return {
      event: 'authenticated',
      token: outcome.token,
      info: outcome.info,
      has_ack: typeof outcome.ack === 'function'
    };
  }
  return { event: 'unauthorized', error: outcome.error };
}

// Return text with a random suffix, so that a client can tell its own chat
// message from those of scenarios that share the chat demo.
function uniqueText(text) {
  return text + ' ' + Math.random().toString(36).slice(2, 10);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Run a scenario: print its lines, then done, and exit. Any error, or the
// scenario taking longer than SCENARIO_TIMEOUT_MS, prints an error line and
// exits with status 1.
function run(scenario) {
  const timeoutMs = envInt('SCENARIO_TIMEOUT_MS', 30000);
  const timer = setTimeout(() => {
    writeLine({ step: 'error', message: 'scenario timed out after ' + timeoutMs + ' ms' });
    process.exit(1);
  }, timeoutMs);

  scenario().then(() => {
    clearTimeout(timer);
    writeLine({ step: 'done' });
    process.exit(0);
  }, (err) => {
    clearTimeout(timer);
    writeLine({ step: 'error', message: String(err && err.stack ? err.stack : err) });
    process.exit(1);
  });
}

module.exports = {
  Client,
  connectAndAuthenticate,
  describe,
  env,
  envInt,
  login,
  loginCode,
  run,
  sleep,
  uniqueText,
  writeLine
};
