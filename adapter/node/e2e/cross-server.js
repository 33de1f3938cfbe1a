'use strict';

// Drives the example socket.io 4.x server (example/server.js) and the Go chat
// demo, both on one sockauth authority, for the Go test in
// e2e/nodeadapter_test.go of the repository. It writes one JSON object per
// line; the last is {"step":"done"}, or {"step":"error"} with exit status 1.
//
// Environment: NODE_URL (the example server), CHAT_URL (the chat demo) and
// E2E_NODE_DIR (the folder whose node_modules contains socket.io-client
// 2.5.0, the client version of the chat demo).

const path = require('node:path');
const ioV4 = require('socket.io-client');
const ioV2 = require(path.join(process.env.E2E_NODE_DIR, 'node_modules', 'socket.io-client'));

const WAIT_MS = 5000;

function writeLine(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// next resolves with the arguments of the first of events that socket
// emits, as {event, args}, or rejects after WAIT_MS.
function next(socket, events) {
  return new Promise((resolve, reject) => {
    const handlers = {};
    const timer = setTimeout(() => {
      off();
      reject(new Error('no ' + events.join(' or ') + ' within ' + WAIT_MS + ' ms'));
    }, WAIT_MS);
    const off = () => {
      for (const event of events) {
        socket.off(event, handlers[event]);
      }
    };
    for (const event of events) {
      handlers[event] = (...args) => {
        clearTimeout(timer);
        off();
        resolve({ event: event, args: args });
      };
      socket.on(event, handlers[event]);
    }
  });
}

async function login(username, password) {
  const response = await fetch(process.env.CHAT_URL + '/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: username, password: password })
  });
  const body = await response.json();
  if (response.status !== 200 || typeof body.token !== 'string') {
    throw new Error('login failed with status ' + response.status);
  }
  return body.token;
}

function describe(outcome) {
  if (outcome.event === 'authenticated') {
    return { event: 'authenticated', has_token: outcome.args[0].length > 0, info: outcome.args[1] };
  }
  return { event: outcome.event, payload: outcome.args[0] };
}

async function run() {
  const sockets = [];
  const v4 = (options) => {
    const socket = ioV4(process.env.NODE_URL, Object.assign({ forceNew: true, reconnection: false, transports: ['websocket'] }, options));
    sockets.push(socket);
    return socket;
  };
  try {
    // A code from the Go chat demo connects to the Node server in the handshake.
    const code = await login('alice', 'alice-password');
    const node = v4({ auth: { token: code } });
    const first = await next(node, ['authenticated', 'unauthorized', 'connect_error']);
    writeLine(Object.assign({ step: 'node_handshake' }, describe(first)));
    first.args[2]();

    node.emit('message', 'hello from node');
    const message = await next(node, ['message']);
    writeLine({ step: 'node_message', message: message.args[0] });

    // The Node server's token rotates on the Go chat demo, with the 2.x client.
    const chat = ioV2(process.env.CHAT_URL, { forceNew: true, reconnection: false, transports: ['websocket'] });
    sockets.push(chat);
    await next(chat, ['connect']);
    chat.emit('authenticate', { token: first.args[0] });
    const second = await next(chat, ['authenticated', 'unauthorized']);
    writeLine(Object.assign({ step: 'chat_authenticate' }, describe(second)));
    if (second.event === 'authenticated') {
      second.args[2]();
    }

    // Logout on the Node server ends the session on the chat demo too.
    const chatEnd = next(chat, ['logged_out', 'unauthorized']);
    node.emit('logout');
    const nodeEnd = await next(node, ['logged_out', 'unauthorized']);
    writeLine({ step: 'node_logout', event: nodeEnd.event, payload: nodeEnd.args[0] });
    const chatEnded = await chatEnd;
    writeLine({ step: 'chat_after_logout', event: chatEnded.event, payload: chatEnded.args[0] });

    // The revoked session's newest token is rejected on the Node server.
    const late = v4({});
    await next(late, ['connect']);
    const disconnected = next(late, ['disconnect']);
    late.emit('authenticate', { token: second.args[0] });
    const rejected = await next(late, ['authenticated', 'unauthorized']);
    writeLine(Object.assign({ step: 'node_revoked' }, describe(rejected), { disconnect: (await disconnected).args[0] }));

    // A bad handshake token fails the connection.
    const bad = v4({ auth: { token: 'v2.local.not-a-token.e30' } });
    const failed = await next(bad, ['connect', 'connect_error']);
    writeLine({ step: 'node_bad_handshake', event: failed.event, message: failed.args[0].message, data: failed.args[0].data });

    writeLine({ step: 'done' });
  } finally {
    for (const socket of sockets) {
      socket.close();
    }
  }
}

run().catch((error) => {
  writeLine({ step: 'error', message: String(error && error.stack ? error.stack : error) });
  process.exitCode = 1;
});
