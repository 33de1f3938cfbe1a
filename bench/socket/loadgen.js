'use strict';

// Socket load generator. Each client logs in with POST /login, connects over
// WebSocket, sends authenticate with the code or token, acknowledges
// authenticated when the server requests an ack, and sends one "echo" event
// with an ack. It prints one JSON summary line: handshakes per second, latency
// percentiles of the whole sequence, and the CPU time and event loop
// utilization of its processes during the run.
//
// The clients run in WORKERS child processes, so that the load generator can
// use more than one core. The parent only starts the workers and adds up their
// results. Logins go over a keep-alive HTTP agent of node:http, one per
// worker, because a fetch call costs several times the CPU of an http.request.
// Every socket is a socket.io-client socket of its own with the library's
// default options, except that it uses only the WebSocket transport and does
// not reconnect.
//
// Environment:
//   URL          base URL of the server
//   CLIENTS      number of clients in all
//   CONCURRENCY  clients in flight at once, over all workers
//   PROTOCOL     2 or 4, the socket.io-client major version
//   WORKERS      number of worker processes, 1 by default
//   RATE         clients started per second over all workers; 0 or unset
//                starts the next client as soon as one finishes
//   HOLD         1 keeps every socket connected after the run until stdin
//                closes, so that the caller can measure the server's memory

const { fork } = require('child_process');
const http = require('http');
const { performance } = require('perf_hooks');

const timeoutMs = 15000;
const users = [['alice', 'alice-password'], ['bob', 'bob-password']];

function readConfig() {
  const config = {
    url: process.env.URL,
    total: Number.parseInt(process.env.CLIENTS || '1000', 10),
    concurrency: Number.parseInt(process.env.CONCURRENCY || '50', 10),
    protocol: Number.parseInt(process.env.PROTOCOL || '2', 10),
    workers: Number.parseInt(process.env.WORKERS || '1', 10),
    rate: Number.parseFloat(process.env.RATE || '0'),
    hold: process.env.HOLD === '1'
  };
  const valid = config.url && (config.protocol === 2 || config.protocol === 4) &&
    config.total > 0 && config.concurrency > 0 && config.workers > 0 && config.rate >= 0;
  if (!valid) {
    process.stderr.write('set URL, CLIENTS, CONCURRENCY, PROTOCOL (2 or 4), and optionally WORKERS (at least 1) and RATE (per second)\n');
    process.exit(2);
  }
  return config;
}

// Splits count into parts that differ by at most one.
function split(count, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(count / parts) + (i < count % parts ? 1 : 0));
}

// The parent: forks the workers, gives each its share of clients and
// concurrency, and prints the summary of all of them.
async function runParent(config) {
  const workers = Math.min(config.workers, config.total, config.concurrency);
  const clients = split(config.total, workers);
  const concurrency = split(config.concurrency, workers);

  let firstIndex = 0;
  const children = [];
  for (let i = 0; i < workers; i++) {
    const child = fork(__filename, [], {
      env: Object.assign({}, process.env, {
        LOADGEN_ROLE: 'worker',
        LOADGEN_FIRST_INDEX: String(firstIndex),
        CLIENTS: String(clients[i]),
        CONCURRENCY: String(concurrency[i]),
        RATE: String(config.rate / workers)
      }),
      stdio: ['ignore', 'ignore', 'inherit', 'ipc']
    });
    firstIndex += clients[i];
    children.push(child);
  }

  // Workers report when ready, so the clock starts once all have loaded
  // the client libraries.
  await Promise.all(children.map((child) => message(child, 'ready')));
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  children.forEach((child) => child.send({ type: 'start' }));
  const results = await Promise.all(children.map((child) => message(child, 'result')));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  const latencies = [].concat(...results.map((r) => r.latencies)).sort((a, b) => a - b);
  const errors = [].concat(...results.map((r) => r.errors));
  const parentCPU = process.cpuUsage(cpuStarted);
  const cpuMs = results.reduce((sum, r) => sum + r.cpuMs, 0) + (parentCPU.user + parentCPU.system) / 1000;
  const at = (q) => (latencies.length ? latencies[Math.floor(q * (latencies.length - 1))] : 0);
  process.stdout.write(JSON.stringify({
    clients: config.total,
    completed: latencies.length,
    errors: errors.length,
    first_error: errors[0] || null,
    seconds: seconds,
    handshakes_per_second: latencies.length / seconds,
    p50_ms: at(0.5),
    p99_ms: at(0.99),
    cpu_ms: cpuMs,
    workers: workers,
    // The busiest worker's event loop: near 1, that worker was the limit.
    event_loop_utilization: Math.max(...results.map((r) => r.eventLoopUtilization)),
    held: results.reduce((sum, r) => sum + r.held, 0)
  }) + '\n');

  if (config.hold) {
    process.stdin.resume();
    process.stdin.on('end', () => {
      children.forEach((child) => child.kill());
      process.exit(0);
    });
  } else {
    children.forEach((child) => child.disconnect());
  }
}

// message resolves with the first message of type from child, and rejects
// when the child exits before sending it.
function message(child, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m.type === type) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code) => reject(new Error('load generator worker exited with code ' + code + ' before ' + type));
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

// A worker: runs its clients when the parent sends start, and sends back the
// latencies, errors and its CPU time.
function runWorker(config) {
  const io = config.protocol === 2 ? require('socket.io-client') : require('socket.io-client-v4');
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.concurrency });
  const firstIndex = Number.parseInt(process.env.LOADGEN_FIRST_INDEX || '0', 10);
  const held = [];

  function login(index) {
    const [username, password] = users[index % users.length];
    const body = JSON.stringify({ username: username, password: password });
    return new Promise((resolve, reject) => {
      const request = http.request(config.url + '/login', {
        method: 'POST',
        agent: agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }
      }, (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          if (response.statusCode !== 200) {
            reject(new Error('login failed with HTTP status ' + response.statusCode));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString()).token);
          } catch (error) {
            reject(error);
          }
        });
        response.on('error', reject);
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  // One client's whole sequence; resolves with its latency in milliseconds.
  async function runClient(index) {
    const started = process.hrtime.bigint();
    const token = await login(index);
    const socket = io(config.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    await new Promise((resolve, reject) => {
      const fail = (error) => {
        clearTimeout(timer);
        socket.close();
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error('no authenticated within ' + timeoutMs + ' ms')), timeoutMs);
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
      socket.on('unauthorized', (error) => fail(new Error('unauthorized: ' + JSON.stringify(error))));
      socket.on('connect_error', (error) => fail(new Error('connect_error: ' + error.message)));
    });
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    if (config.hold) {
      held.push(socket);
    } else {
      socket.close();
    }
    return elapsed;
  }

  async function run() {
    const latencies = [];
    const errors = [];
    let next = 0;
    const runStarted = process.hrtime.bigint();
    const cpuStarted = process.cpuUsage();
    const loopStarted = performance.eventLoopUtilization();

    // With a rate, client n starts n / rate seconds after the run began, or
    // later when all lanes are busy then.
    async function lane() {
      while (next < config.total) {
        const n = next++;
        const index = firstIndex + n;
        if (config.rate > 0) {
          const wait = n * 1000 / config.rate - Number(process.hrtime.bigint() - runStarted) / 1e6;
          if (wait > 0) {
            await new Promise((resolve) => setTimeout(resolve, wait));
          }
        }
        try {
          latencies.push(await runClient(index));
        } catch (error) {
          errors.push(error.message);
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(config.concurrency, config.total) }, lane));

    const cpu = process.cpuUsage(cpuStarted);
    process.send({
      type: 'result',
      latencies: latencies,
      errors: errors,
      cpuMs: (cpu.user + cpu.system) / 1000,
      eventLoopUtilization: performance.eventLoopUtilization(loopStarted).utilization,
      held: held.length
    });
    if (!config.hold) {
      agent.destroy();
    }
  }

  process.on('message', (m) => {
    if (m.type === 'start') {
      run().catch((error) => {
        process.stderr.write(String(error && error.stack || error) + '\n');
        process.exit(1);
      });
    }
  });
  process.on('disconnect', () => {
    if (!config.hold) {
      process.exit(0);
    }
  });
  process.send({ type: 'ready' });
}

const config = readConfig();
if (process.env.LOADGEN_ROLE === 'worker') {
  runWorker(config);
} else {
  runParent(config).catch((error) => {
    process.stderr.write(String(error && error.stack || error) + '\n');
    process.exit(1);
  });
}
