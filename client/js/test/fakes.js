// Fakes of socket.io-client and of the browser APIs for the unit tests.

// FakeSocket records what the helper emits and lets a test play the server.
export class FakeSocket {
  constructor(url, options) {
    this.url = url;
    this.options = options || {};
    this.handlers = new Map();
    this.connected = false;
    this.closed = false;
    // sent contains {event, args} of every emit by the helper.
    this.sent = [];
    // handshakes contains the auth payload of every connection attempt.
    this.handshakes = [];
    this.waiters = [];
  }

  on(event, handler) {
    if (!this.handlers.has(event)) {
      this.handlers.set(event, []);
    }
    this.handlers.get(event).push(handler);
    return this;
  }

  off(event, handler) {
    const list = this.handlers.get(event) || [];
    const index = list.indexOf(handler);
    if (index >= 0) {
      list.splice(index, 1);
    }
    return this;
  }

  emit(event, ...args) {
    this.sent.push({ event: event, args: args });
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) {
      waiter();
    }
    return this;
  }

  close() {
    this.closed = true;
    this.connected = false;
  }

  // Run the handlers of event as the server sending it would.
  fire(event, ...args) {
    for (const handler of (this.handlers.get(event) || []).slice()) {
      handler(...args);
    }
  }

  // Connect as socket.io-client does: with an auth function, call it and
  // connect once it returns the payload.
  open() {
    const auth = this.options.auth;
    if (typeof auth === 'function') {
      auth((payload) => {
        this.handshakes.push(payload);
        this.connected = true;
        this.fire('connect');
      });
      return;
    }
    this.connected = true;
    this.fire('connect');
  }

  drop(reason = 'transport close') {
    this.connected = false;
    this.fire('disconnect', reason);
  }

  // Resolve with the nth emit of event (1-based) once the helper made it.
  async emitted(event, n = 1, timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.sent.filter((entry) => entry.event === event);
      if (found.length >= n) {
        return found[n - 1];
      }
      if (Date.now() > deadline) {
        throw new Error('no emit ' + n + ' of ' + event + ' within ' + timeoutMs + ' ms; sent: ' + JSON.stringify(this.sent));
      }
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  // Resolve with the nth handshake payload (1-based).
  async handshake(n = 1, timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    while (this.handshakes.length < n) {
      if (Date.now() > deadline) {
        throw new Error('no handshake ' + n + ' within ' + timeoutMs + ' ms');
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.handshakes[n - 1];
  }
}

// createFakeIo returns an io function that creates FakeSockets, which open
// on the next tick. protocol is the exported protocol: 4 for socket.io-client
// 2.x, 5 for 3.x, undefined for 4.x.
export function createFakeIo(protocol) {
  const sockets = [];
  const io = (url, options) => {
    const socket = new FakeSocket(url, options);
    sockets.push(socket);
    setTimeout(() => socket.open(), 0);
    return socket;
  };
  if (protocol !== undefined) {
    io.protocol = protocol;
  }
  io.sockets = sockets;
  return io;
}

// info returns the second argument of authenticated for a token that expires
// in ms.
export function info(ms = 3600000, sessionID = 'sid-1') {
  return {
    expires_at: new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, 'Z'),
    session_id: sessionID,
    subject: 'alice'
  };
}

// createRecordingLocks returns a fake of the Web Locks API that runs the
// callbacks one at a time and records the lock names.
export function createRecordingLocks() {
  let tail = Promise.resolve();
  const names = [];
  return {
    names: names,
    request(name, options, callback) {
      names.push(name);
      const run = tail.then(() => callback());
      tail = run.catch(() => {});
      return run;
    }
  };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
