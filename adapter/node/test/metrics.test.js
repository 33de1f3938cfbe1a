'use strict';

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');
const { Registry, register: globalRegistry } = require('prom-client');
const { Server } = require('socket.io');
const { sockauth, Codes } = require('../lib');
const { startStack, assertAuthenticated, assertUnauthorized, eventually, sleep } = require('./helpers');

const CONNECTED = 'sockauth_adapter_sockets_connected';
const AUTHENTICATED = 'sockauth_adapter_sockets_authenticated';
const DURATION = 'sockauth_adapter_authentication_duration_seconds';
const TIMEOUTS = 'sockauth_adapter_authentication_timeouts_total';
const REJECTIONS = 'sockauth_adapter_rejections_total';

// The types and help texts of the Go adapters' metrics (adapter/metrics.go).
const GO_METRICS = {
  [CONNECTED]: { type: 'gauge', help: 'Sockets connected to the adapter that it has not closed, authenticated or not.' },
  [AUTHENTICATED]: { type: 'gauge', help: 'Sockets whose last authentication succeeded and whose token has not expired.' },
  [DURATION]: {
    type: 'histogram',
    help: 'Time from an authenticate event or handshake to its outcome, for those that called the authority, by outcome: authenticated or rejected.'
  },
  [TIMEOUTS]: {
    type: 'counter',
    help: 'Sockets disconnected because they did not authenticate within the auth timeout. Equal to the authentication_timeout rejections, kept as its own series for alerts.'
  },
  [REJECTIONS]: { type: 'counter', help: 'Unauthorized events sent and rejected handshakes, by code.' }
};
const GO_BUCKETS = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '+Inf'];

// scrape returns the text exposition of registry, parsed into the types and
// help texts by metric name and the samples as {name, labels, value}.
async function scrape(registry) {
  const result = { types: {}, help: {}, samples: [] };
  for (const line of (await registry.metrics()).split('\n')) {
    const comment = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (comment) {
      result[comment[1] === 'HELP' ? 'help' : 'types'][comment[2]] = comment[3];
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) {
      continue;
    }
    const labels = {};
    for (const match of (sample[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[match[1]] = match[2];
    }
    result.samples.push({ name: sample[1], labels: labels, value: Number(sample[3]) });
  }
  return result;
}

// valueOf returns the value of the sample of name whose labels are exactly
// labels, or undefined when there is none.
function valueOf(scraped, name, labels = {}) {
  const sample = scraped.samples.find((s) => s.name === name && sameLabels(s.labels, labels));
  return sample ? sample.value : undefined;
}

function sameLabels(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

// waitForValue polls registry until the sample of name with labels has
// value, or fails after timeoutMs.
async function waitForValue(registry, name, labels, value, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = valueOf(await scrape(registry), name, labels);
    if (last === value) {
      return;
    }
    await sleep(20);
  }
  assert.fail(name + JSON.stringify(labels) + ' = ' + last + ' after ' + timeoutMs + ' ms, expected ' + value);
}

// standalone builds an instance that never connects to its authority.
function standalone(t, options) {
  const auth = sockauth(new Server(), Object.assign({ address: '127.0.0.1:1', watchRevocations: false }, options));
  t.after(() => auth.close());
  return auth;
}

test('metrics exist with zero values before any socket', async (t) => {
  const registry = new Registry();
  standalone(t, { registry: registry });
  const scraped = await scrape(registry);

  for (const [name, expected] of Object.entries(GO_METRICS)) {
    assert.equal(scraped.types[name], expected.type, 'type of ' + name);
    assert.equal(scraped.help[name], expected.help, 'help of ' + name);
  }
  assert.equal(valueOf(scraped, CONNECTED), 0);
  assert.equal(valueOf(scraped, AUTHENTICATED), 0);
  assert.equal(valueOf(scraped, TIMEOUTS), 0);

  const codes = scraped.samples.filter((s) => s.name === REJECTIONS);
  assert.deepEqual(codes.map((s) => s.labels.code).sort(), Object.values(Codes).sort(), 'rejection series by code');
  for (const sample of codes) {
    assert.equal(sample.value, 0, 'rejections ' + JSON.stringify(sample.labels));
    assert.deepEqual(Object.keys(sample.labels), ['code']);
  }
});

test('duration histogram has the outcome labels and Go buckets', async (t) => {
  const registry = new Registry();
  standalone(t, { registry: registry });
  const scraped = await scrape(registry);

  const counts = scraped.samples.filter((s) => s.name === DURATION + '_count');
  assert.deepEqual(counts.map((s) => s.labels), [{ outcome: 'authenticated' }, { outcome: 'rejected' }]);
  for (const outcome of ['authenticated', 'rejected']) {
    assert.equal(valueOf(scraped, DURATION + '_count', { outcome }), 0, outcome + ' count');
    assert.equal(valueOf(scraped, DURATION + '_sum', { outcome }), 0, outcome + ' sum');
    const buckets = scraped.samples.filter((s) => s.name === DURATION + '_bucket' && s.labels.outcome === outcome);
    assert.deepEqual(buckets.map((s) => s.labels.le), GO_BUCKETS, outcome + ' bucket bounds');
    for (const bucket of buckets) {
      assert.deepEqual(Object.keys(bucket.labels).sort(), ['le', 'outcome']);
    }
  }
});

test('metrics follow a real socket flow', async (t) => {
  const registry = new Registry();
  const authTimeoutMs = 800;
  const stack = await startStack(t, { registry: registry, authTimeoutMs: authTimeoutMs });

  const event = stack.client();
  await event.next('connect');
  assertAuthenticated(await event.authenticate(stack.authority.issueCode('alice').code), 'alice');

  const forged = stack.client();
  await forged.next('connect');
  assertUnauthorized(await forged.authenticate('tok-unknown'), 'invalid_token');

  const handshake = stack.client({ auth: { token: stack.authority.issueCode('bob').code } });
  assertAuthenticated(await handshake.outcome(), 'bob');

  const badHandshake = stack.client({ auth: { token: 'tok-unknown' } });
  const connectError = await badHandshake.next(['connect', 'connect_error']);
  assert.equal(connectError.event, 'connect_error');
  assert.equal(connectError.args[0].data.code, 'invalid_token');

  // The idle socket connects last, so that its auth timeout comes after the
  // checks of the gauges below.
  const idle = stack.client();
  await idle.next('connect');
  const idleConnected = Date.now();

  // The forged socket is disconnected, so the event, handshake and idle
  // sockets count as connected, and the first two as authenticated.
  await waitForValue(registry, CONNECTED, {}, 3);
  let scraped = await scrape(registry);
  assert.equal(valueOf(scraped, AUTHENTICATED), 2);
  assert.ok(Date.now() - idleConnected < authTimeoutMs, 'the gauges were checked after the auth timeout');
  assert.equal(valueOf(scraped, TIMEOUTS), 0);

  assertUnauthorized(await idle.next('unauthorized'), 'authentication_timeout');
  await waitForValue(registry, CONNECTED, {}, 2);

  event.socket.disconnect();
  await waitForValue(registry, CONNECTED, {}, 1);
  scraped = await scrape(registry);
  assert.equal(valueOf(scraped, AUTHENTICATED), 1, 'authenticated sockets after a client disconnect');
  assert.equal(valueOf(scraped, TIMEOUTS), 1);

  const rejections = { invalid_token: 2, authentication_timeout: 1, revoked_token: 0, rate_limited: 0 };
  for (const [code, expected] of Object.entries(rejections)) {
    assert.equal(valueOf(scraped, REJECTIONS, { code }), expected, 'rejections{code="' + code + '"}');
  }

  // Both authenticated and both rejected tokens called the authority. The
  // timeout did not.
  for (const outcome of ['authenticated', 'rejected']) {
    assert.equal(valueOf(scraped, DURATION + '_count', { outcome }), 2, outcome + ' count');
    assert.ok(valueOf(scraped, DURATION + '_sum', { outcome }) > 0, outcome + ' sum');
    assert.equal(valueOf(scraped, DURATION + '_bucket', { outcome, le: '+Inf' }), 2, outcome + ' +Inf bucket');
  }
});

test('revocation event counts revoked_token', async (t) => {
  const registry = new Registry();
  const stack = await startStack(t, { registry: registry });
  await eventually(() => stack.authority.watchers.size === 1, 3000, 'an open revocation stream');
  const client = stack.client();
  await client.next('connect');
  const outcome = await client.authenticate(stack.authority.issueCode('alice').code);
  assertAuthenticated(outcome, 'alice');
  await waitForValue(registry, AUTHENTICATED, {}, 1);

  stack.authority.revoke(outcome.args[1].session_id, 'REVOCATION_REASON_ADMIN');
  assertUnauthorized(await client.next('unauthorized'), 'revoked_token');
  await waitForValue(registry, CONNECTED, {}, 0);
  const scraped = await scrape(registry);
  assert.equal(valueOf(scraped, AUTHENTICATED), 0);
  assert.equal(valueOf(scraped, REJECTIONS, { code: 'revoked_token' }), 1);
});

test('socket over the cap counts too_many_connections', async (t) => {
  const registry = new Registry();
  const stack = await startStack(t, { registry: registry, maxUnauthenticatedSockets: 1 });
  const waiting = stack.client();
  await waiting.next('connect');

  const over = stack.client();
  assertUnauthorized(await over.next('unauthorized'), 'too_many_connections');
  const scraped = await scrape(registry);
  assert.equal(valueOf(scraped, REJECTIONS, { code: 'too_many_connections' }), 1);
  assert.equal(valueOf(scraped, CONNECTED), 1, 'the rejected socket counts as connected');
  assert.equal(stack.auth.rejectedOverCap, 1);
});

test('metricLabels separate instances on one registry', async (t) => {
  const registry = new Registry();
  const a = await startStack(t, { registry: registry, metricLabels: { server: 'a' } });
  const b = await startStack(t, { registry: registry, metricLabels: { server: 'b' } });
  await a.client().next('connect');
  await b.client().next('connect');
  await b.client().next('connect');

  let scraped = await scrape(registry);
  assert.equal(valueOf(scraped, CONNECTED, { server: 'a' }), 1);
  assert.equal(valueOf(scraped, CONNECTED, { server: 'b' }), 2);
  assert.equal(valueOf(scraped, REJECTIONS, { server: 'a', code: 'invalid_token' }), 0);
  assert.equal(valueOf(scraped, DURATION + '_count', { server: 'b', outcome: 'rejected' }), 0);

  assert.throws(() => standalone(t, { registry: registry, metricLabels: { server: 'a' } }),
    /another open instance already exports its metrics to this registry with the labels \{"server":"a"\}/);
  assert.throws(() => standalone(t, { registry: registry, metricLabels: { instance: 'c' } }),
    /label names \[instance\] differ from \[server\]/);
  assert.throws(() => standalone(t, { registry: registry }), /label names \[\] differ from \[server\]/);

  a.auth.close();
  scraped = await scrape(registry);
  assert.equal(valueOf(scraped, CONNECTED, { server: 'a' }), undefined, 'series of the closed instance');
  assert.equal(valueOf(scraped, REJECTIONS, { server: 'a', code: 'invalid_token' }), undefined);
  assert.equal(valueOf(scraped, DURATION + '_count', { server: 'a', outcome: 'rejected' }), undefined);
  assert.equal(valueOf(scraped, TIMEOUTS, { server: 'a' }), undefined);
  assert.equal(valueOf(scraped, CONNECTED, { server: 'b' }), 2);

  const again = standalone(t, { registry: registry, metricLabels: { server: 'a' } });
  assert.equal(valueOf(await scrape(registry), CONNECTED, { server: 'a' }), 0);
  again.close();
  b.auth.close();
  assert.deepEqual(registry.getMetricsAsArray(), [], 'metrics left after every instance closed');
});

test('close removes metrics and stops the timers', async (t) => {
  const registry = new Registry();
  const stack = await startStack(t, { registry: registry, authTimeoutMs: 200 });
  const client = stack.client();
  await client.next('connect');
  await waitForValue(registry, CONNECTED, {}, 1);

  stack.auth.close();
  assert.deepEqual(registry.getMetricsAsArray(), [], 'metrics left after close');
  assert.equal(await client.nextOrNull('unauthorized', 400), null, 'the auth timeout fired after close');

  const next = standalone(t, { registry: registry });
  assert.equal(valueOf(await scrape(registry), CONNECTED), 0, 'a new instance counts the sockets of the closed one');
  client.socket.disconnect();
  await sleep(50);
  const scraped = await scrape(registry);
  assert.equal(valueOf(scraped, CONNECTED), 0);
  assert.equal(valueOf(scraped, REJECTIONS, { code: 'authentication_timeout' }), 0);
  next.close();
});

test('no metrics without the registry option', async (t) => {
  const stack = await startStack(t);
  const client = stack.client();
  await client.next('connect');
  assertAuthenticated(await client.authenticate(stack.authority.issueCode('alice').code), 'alice');
  const forged = stack.client();
  await forged.next('connect');
  assertUnauthorized(await forged.authenticate('tok-unknown'), 'invalid_token');

  const names = globalRegistry.getMetricsAsArray().map((metric) => metric.name);
  assert.deepEqual(names.filter((name) => name.startsWith('sockauth_')), [], 'sockauth metrics in the global registry');
});

test('adapter loads prom-client only with a registry', () => {
  // The child process makes require('prom-client') fail as if the package
  // were not installed, so the adapter must work without it, and a registry
  // option must name the missing package.
  const script = `
    const Module = require('node:module');
    const load = Module._load;
    Module._load = function (request, ...rest) {
      if (request === 'prom-client') {
        throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
      }
      return load.call(this, request, ...rest);
    };
    const { Server } = require('socket.io');
    const { sockauth } = require('./lib');
    const options = { address: '127.0.0.1:1', watchRevocations: false };
    sockauth(new Server(), options).close();
    const registry = { registerMetric() {}, getSingleMetric() {}, removeSingleMetric() {} };
    let message = '';
    try {
      sockauth(new Server(), Object.assign({ registry }, options)).close();
    } catch (error) {
      message = error.message;
    }
    const loaded = Object.keys(require.cache).some((file) => file.includes('prom-client'));
    process.stdout.write(JSON.stringify({ loaded, message }));
  `;
  const output = execFileSync(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..'), timeout: 10000 });
  const result = JSON.parse(output);
  assert.equal(result.loaded, false, 'prom-client was loaded');
  assert.match(result.message, /registry option needs the prom-client package: run npm install prom-client/);
});

test('invalid metrics options are rejected', async (t) => {
  const registry = new Registry();
  const cases = [
    { options: { registry: {} }, error: /invalid option registry: expected a prom-client Registry.*got an object without the methods/ },
    { options: { registry: 'default' }, error: /invalid option registry: expected a prom-client Registry.*got string default/ },
    { options: { registry: true }, error: /invalid option registry/ },
    { options: { metricLabels: { server: 'a' } }, error: /invalid option metricLabels: it needs the registry option/ },
    { options: { registry, metricLabels: ['a'] }, error: /invalid option metricLabels: expected an object.*got an array/ },
    { options: { registry, metricLabels: 'server=a' }, error: /invalid option metricLabels: expected an object/ },
    { options: { registry, metricLabels: { '1x': 'a' } }, error: /invalid label name "1x"/ },
    { options: { registry, metricLabels: { 'a-b': 'a' } }, error: /invalid label name "a-b"/ },
    { options: { registry, metricLabels: { __name: 'a' } }, error: /invalid label name "__name": .*not start with __/ },
    { options: { registry, metricLabels: { outcome: 'a' } }, error: /label name "outcome" is used by the metrics themselves/ },
    { options: { registry, metricLabels: { code: 'a' } }, error: /label name "code" is used by the metrics themselves/ },
    { options: { registry, metricLabels: { le: 'a' } }, error: /label name "le" is used by the metrics themselves/ },
    { options: { registry, metricLabels: { server: 1 } }, error: /value of label server must be a string, got number 1/ }
  ];
  for (const c of cases) {
    assert.throws(() => standalone(t, c.options), c.error, 'options ' + JSON.stringify(c.options));
  }

  // A failure after the metrics were registered leaves none behind.
  assert.throws(() => sockauth(new Server(), { registry }), /missing authority address/);
  assert.deepEqual(registry.getMetricsAsArray(), [], 'metrics left by failed constructions');

  const accepted = standalone(t, { registry, metricLabels: { server: 'a', zone: 'b' } });
  assert.equal(valueOf(await scrape(registry), CONNECTED, { server: 'a', zone: 'b' }), 0);
  accepted.close();
});
