'use strict';

// Socket load generator. Each client logs in with POST /login, connects over
// WebSocket, sends authenticate with the code or token, acknowledges
// authenticated when the server requests an ack, and sends one "echo" event
// with an ack. It prints one JSON summary line: handshakes per second and latency
// percentiles of the whole sequence.
//
// Environment:
//   URL          base URL of the server
//   CLIENTS      number of clients in all
//   CONCURRENCY  clients in flight at once
//   PROTOCOL     2 or 4, the socket.io-client major version
//   HOLD         1 keeps every socket connected after the run until stdin
//                closes, so that the caller can measure the server's memory

const clients = {
  2: require('socket.io-client'),
  4: require('socket.io-client-v4')
};

const url = process.env.URL;
const total = Number.parseInt(process.env.CLIENTS || '1000', 10);
const concurrency = Number.parseInt(process.env.CONCURRENCY || '50', 10);
const protocol = Number.parseInt(process.env.PROTOCOL || '2', 10);
const hold = process.env.HOLD === '1';
const timeoutMs = 15000;
const io = clients[protocol];
if (!url || !io || !(total > 0) || !(concurrency > 0)) {
  process.stderr.write('set URL, CLIENTS, CONCURRENCY and PROTOCOL (2 or 4)\n');
  process.exit(2);
}

const users = [['alice', 'alice-password'], ['bob', 'bob-password']];
const held = [];

async function login(index) {
  const [username, password] = users[index % users.length];
  const response = await fetch(url + '/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: username, password: password })
  });
  if (response.status !== 200) {
    throw new Error('login failed with HTTP status ' + response.status);
  }
  return (await response.json()).token;
}

// One client's whole sequence; resolves with its latency in milliseconds.
async function runClient(index) {
  const started = process.hrtime.bigint();
  const token = await login(index);
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no authenticated within ' + timeoutMs + ' ms')), timeoutMs);
    socket.on('connect', () => socket.emit('authenticate', { token: token }));
    socket.on('authenticated', (...args) => {
      const ack = args[args.length - 1];
      if (typeof ack === 'function') {
        ack();
      }
      socket.emit('echo', { n: index }, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    socket.on('unauthorized', (error) => {
      clearTimeout(timer);
      reject(new Error('unauthorized: ' + JSON.stringify(error)));
    });
    socket.on('connect_error', (error) => {
      clearTimeout(timer);
      reject(new Error('connect_error: ' + error.message));
    });
  });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (hold) {
    held.push(socket);
  } else {
    socket.close();
  }
  return elapsed;
}

async function main() {
  const latencies = [];
  const errors = [];
  let next = 0;
  const started = process.hrtime.bigint();

  async function worker() {
    while (next < total) {
      const index = next++;
      try {
        latencies.push(await runClient(index));
      } catch (error) {
        errors.push(error.message);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  const at = (q) => (latencies.length ? latencies[Math.floor(q * (latencies.length - 1))] : 0);
  process.stdout.write(JSON.stringify({
    clients: total,
    completed: latencies.length,
    errors: errors.length,
    first_error: errors[0] || null,
    seconds: seconds,
    handshakes_per_second: latencies.length / seconds,
    p50_ms: at(0.5),
    p99_ms: at(0.99),
    held: held.length
  }) + '\n');

  if (hold) {
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
  } else {
    process.exit(0);
  }
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack || error) + '\n');
  process.exit(1);
});
