'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');
const ioClient = require('socket.io-client');
const { FakeAuthority } = require('./fake-authority');

const SERVER = path.join(__dirname, '..', 'example', 'server.js');

// startExample runs example/server.js with args and resolves with the child
// process and its collected output. t.after kills the process.
function startExample(t, args) {
  const child = spawn(process.execPath, [SERVER].concat(args), { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => {
    output.stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output.stderr += chunk;
  });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
    }
    return exited;
  });
  return { child, output, exited };
}

// waitForLine resolves with the first JSON line on stdout that has key, or
// rejects when the process exits or after timeoutMs.
async function waitForLine(example, key, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const line of example.output.stdout.split('\n')) {
      if (line.startsWith('{')) {
        const value = JSON.parse(line)[key];
        if (value) {
          return value;
        }
      }
    }
    if (example.child.exitCode !== null) {
      throw new Error('example server exited with ' + example.child.exitCode + ': ' + example.output.stderr);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('no ' + key + ' line within ' + timeoutMs + ' ms; stderr: ' + example.output.stderr);
}

async function fetchMetrics(url) {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain/);
  return response.text();
}

test('example serves metrics with --metrics-listen', async (t) => {
  const authority = new FakeAuthority();
  await authority.start();
  t.after(() => authority.stop());

  const example = startExample(t, ['--authority', authority.address, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0']);
  const url = await waitForLine(example, 'listening');
  const metricsUrl = await waitForLine(example, 'metrics');
  assert.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

  const before = await fetchMetrics(metricsUrl);
  assert.match(before, /^# TYPE sockauth_adapter_sockets_connected gauge$/m);
  assert.match(before, /^sockauth_adapter_sockets_connected 0$/m);
  assert.match(before, /^sockauth_adapter_rejections_total\{code="invalid_token"\} 0$/m);
  assert.match(before, /^process_cpu_user_seconds_total /m, 'the process metrics of prom-client');

  const socket = ioClient(url, { forceNew: true, reconnection: false, transports: ['websocket'] });
  t.after(() => socket.close());
  await new Promise((resolve) => socket.on('connect', resolve));
  assert.match(await fetchMetrics(metricsUrl), /^sockauth_adapter_sockets_connected 1$/m);

  const notFound = await fetch(metricsUrl.replace(/\/metrics$/, '/other'));
  assert.equal(notFound.status, 404);
});

test('example rejects a non-loopback --metrics-listen', async (t) => {
  const cases = [
    { address: '0.0.0.0:9464', error: /will not serve metrics on 0\.0\.0\.0:9464.*--insecure-metrics/ },
    { address: ':9464', error: /will not serve metrics on :9464/ },
    { address: '127.0.0.1', error: /invalid --metrics-listen "127\.0\.0\.1": expected HOST:PORT/ },
    { address: '127.0.0.1:99999', error: /invalid --metrics-listen "127\.0\.0\.1:99999": expected HOST:PORT with a port from 0 to 65535/ }
  ];
  for (const c of cases) {
    await t.test(c.address, async (t) => {
      const example = startExample(t, ['--authority', '127.0.0.1:1', '--listen', '127.0.0.1:0', '--metrics-listen', c.address]);
      assert.equal(await example.exited, 2, 'exit code');
      assert.match(example.output.stderr, c.error);
      assert.equal(example.output.stdout, '', 'the server started');
    });
  }
});

test('example rejects bad flags with its usage', async (t) => {
  const cases = [
    { args: ['--bogus'], error: /Unknown option '--bogus'[\s\S]*Usage: node example\/server\.js/ },
    { args: ['--listen', '127.0.0.1:99999'], error: /invalid --listen "127\.0\.0\.1:99999"/ },
    { args: ['--listen', 'foo'], error: /invalid --listen "foo"/ },
    { args: ['--key-file', '/nonexistent/key'], error: /reading --key-file \/nonexistent\/key failed/ },
    { args: ['--insecure-metrics'], error: /--insecure-metrics needs --metrics-listen/ }
  ];
  for (const c of cases) {
    await t.test(c.args.join(' '), async (t) => {
      const example = startExample(t, ['--authority', '127.0.0.1:1'].concat(c.args));
      assert.equal(await example.exited, 2, 'exit code');
      assert.match(example.output.stderr, c.error);
      assert.equal(example.output.stdout, '', 'the server started');
    });
  }
});

test('example prints its usage with --help', async (t) => {
  const example = startExample(t, ['--help']);
  assert.equal(await example.exited, 0, 'exit code');
  assert.match(example.output.stdout, /^Usage: node example\/server\.js[\s\S]*--trusted-proxies/);
});
