'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { Server } = require('socket.io');
const { sockauth, DEFAULTS } = require('../lib');
const { AddressLimiters, TokenBucket, payloadSize, ADDRESS_SWEEP_INTERVAL_MS } = require('../lib/limits');
const { startStack, assertAuthenticated, assertUnauthorized, eventually } = require('./helpers');

// SLOW_REFILL is a rate so slow that no token comes back during a test.
const SLOW_REFILL = 0.001;

// fromAddress returns client options whose X-Forwarded-For names address.
// The test clients connect from 127.0.0.1, a trusted proxy by default, so
// the server takes address as the client address.
function fromAddress(address, options = {}) {
  return Object.assign({ extraHeaders: { 'X-Forwarded-For': address } }, options);
}

// connectAndAuthenticate connects a client and authenticates it with a new
// login code of subject.
async function connectAndAuthenticate(stack, subject, options = {}) {
  const client = stack.client(options);
  await client.next('connect');
  return { client: client, outcome: await client.authenticate(stack.authority.issueCode(subject).code) };
}

test('socket authenticate limit rejects with rate_limited', async (t) => {
  const stack = await startStack(t, { socketAuthenticateLimit: { perSecond: SLOW_REFILL, burst: 2 } });
  const { client, outcome: first } = await connectAndAuthenticate(stack, 'alice');
  assertAuthenticated(first, 'alice');

  const second = await client.authenticate(first.args[0]);
  assertAuthenticated(second, 'alice');
  assertUnauthorized(await client.authenticate(second.args[0]), 'rate_limited');
  assert.equal((await client.next('disconnect')).args[0], 'io server disconnect');
  assert.equal(stack.authority.callsOf('Authenticate').length, 2, 'the limited event reached the authority');
  const rejection = stack.logs.find((line) => line.message === 'socket unauthorized' && line.attrs.reason === 'rate_limited');
  assert.ok(rejection, 'a log line of the rejection');
  assert.equal(rejection.attrs.address, '127.0.0.1', 'the log line names the client address');
});

test('default socket limit allows five events', async (t) => {
  const stack = await startStack(t);
  const { client, outcome } = await connectAndAuthenticate(stack, 'alice');
  assertAuthenticated(outcome, 'alice');

  let token = outcome.args[0];
  for (let i = 2; i <= 5; i++) {
    const refreshed = await client.authenticate(token);
    assertAuthenticated(refreshed, 'alice');
    token = refreshed.args[0];
  }
  assertUnauthorized(await client.authenticate(token), 'rate_limited');
});

test('address authenticate limit spans sockets', async (t) => {
  const stack = await startStack(t, { addressAuthenticateLimit: { perSecond: SLOW_REFILL, burst: 2 } });

  for (let i = 0; i < 2; i++) {
    assertAuthenticated((await connectAndAuthenticate(stack, 'alice', fromAddress('203.0.113.9'))).outcome, 'alice');
  }
  const over = await connectAndAuthenticate(stack, 'alice', fromAddress('203.0.113.9'));
  assertUnauthorized(over.outcome, 'rate_limited');
  assert.equal((await over.client.next('disconnect')).args[0], 'io server disconnect');

  const other = await connectAndAuthenticate(stack, 'bob', fromAddress('203.0.113.10'));
  assertAuthenticated(other.outcome, 'bob');
  assert.equal(stack.authority.callsOf('Authenticate').length, 3, 'the limited event reached the authority');
});

test('loopback address has no address limit', async (t) => {
  const stack = await startStack(t, { addressAuthenticateLimit: { perSecond: SLOW_REFILL, burst: 1 } });
  for (let i = 0; i < 3; i++) {
    const { outcome } = await connectAndAuthenticate(stack, 'alice');
    assertAuthenticated(outcome, 'alice');
  }
});

test('negative perSecond turns limits off', async (t) => {
  const off = { perSecond: -1 };
  const stack = await startStack(t, { socketAuthenticateLimit: off, addressAuthenticateLimit: off });
  const { client, outcome } = await connectAndAuthenticate(stack, 'alice', fromAddress('203.0.113.9'));
  assertAuthenticated(outcome, 'alice');

  let token = outcome.args[0];
  for (let i = 0; i < 10; i++) {
    const refreshed = await client.authenticate(token);
    assertAuthenticated(refreshed, 'alice');
    token = refreshed.args[0];
  }
});

test('handshake token counts against the address limit', async (t) => {
  const stack = await startStack(t, { addressAuthenticateLimit: { perSecond: SLOW_REFILL, burst: 2 } });
  const handshakeFrom = (address) => fromAddress(address, { auth: { token: stack.authority.issueCode('alice').code } });

  for (let i = 0; i < 2; i++) {
    const client = stack.client(handshakeFrom('203.0.113.9'));
    assertAuthenticated(await client.outcome(), 'alice');
  }

  const over = stack.client(handshakeFrom('203.0.113.9'));
  const entry = await over.next(['connect', 'connect_error']);
  assert.equal(entry.event, 'connect_error');
  assert.equal(entry.args[0].message, 'too many authentication attempts, retry later');
  assert.deepEqual(entry.args[0].data, {
    message: 'too many authentication attempts, retry later',
    code: 'rate_limited',
    type: 'UnauthorizedError'
  });
  assert.equal(stack.authority.callsOf('Authenticate').length, 2, 'the limited handshake reached the authority');

  // The event path shares the bucket of the address.
  const { outcome } = await connectAndAuthenticate(stack, 'alice', fromAddress('203.0.113.9'));
  assertUnauthorized(outcome, 'rate_limited');

  const other = stack.client(handshakeFrom('203.0.113.10'));
  assertAuthenticated(await other.outcome(), 'alice');
});

test('malformed handshake token takes no address token', async (t) => {
  const stack = await startStack(t, { addressAuthenticateLimit: { perSecond: SLOW_REFILL, burst: 1 } });
  const bad = stack.client(fromAddress('203.0.113.9', { auth: { token: 7 } }));
  assert.equal((await bad.next(['connect', 'connect_error'])).args[0].data.code, 'invalid_token');

  const good = stack.client(fromAddress('203.0.113.9', { auth: { token: stack.authority.issueCode('alice').code } }));
  assertAuthenticated(await good.outcome(), 'alice');
});

test('oversized payload gets payload_too_large', async (t) => {
  const stack = await startStack(t);

  await t.test('authenticate', async () => {
    const client = stack.client();
    await client.next('connect');
    client.socket.emit('authenticate', { token: stack.authority.issueCode('alice').code, padding: 'x'.repeat(8 * 1024) });
    assertUnauthorized(await client.next(['authenticated', 'unauthorized']), 'payload_too_large');
    assert.equal((await client.next('disconnect')).args[0], 'io server disconnect');
    assert.equal(stack.authority.callsOf('Authenticate').length, 0, 'the oversized payload reached the authority');
  });

  await t.test('bare string', async () => {
    const client = stack.client();
    await client.next('connect');
    client.socket.emit('authenticate', 'x'.repeat(9000));
    assertUnauthorized(await client.next(['authenticated', 'unauthorized']), 'payload_too_large');
  });

  await t.test('logout', async () => {
    const { client, outcome } = await connectAndAuthenticate(stack, 'alice');
    assertAuthenticated(outcome, 'alice');
    client.socket.emit('logout', { token: outcome.args[0], padding: 'x'.repeat(8 * 1024) });
    assertUnauthorized(await client.next(['logged_out', 'unauthorized']), 'payload_too_large');
    assert.equal(stack.authority.callsOf('Logout').length, 0, 'the oversized payload reached the authority');
  });
});

test('payload at maxPayloadBytes is accepted', async (t) => {
  const stack = await startStack(t, { maxTokenBytes: 64, maxPayloadBytes: 100 });
  const payloadOfSize = (size) => {
    const payload = { token: stack.authority.issueCode('alice').code, padding: '' };
    payload.padding = 'x'.repeat(size - JSON.stringify(payload).length);
    assert.equal(payloadSize(payload), size);
    return payload;
  };

  const within = stack.client();
  await within.next('connect');
  within.socket.emit('authenticate', payloadOfSize(100));
  assertAuthenticated(await within.outcome(), 'alice');

  const over = stack.client();
  await over.next('connect');
  over.socket.emit('authenticate', payloadOfSize(101));
  assertUnauthorized(await over.outcome(), 'payload_too_large');
});

test('waiting sockets over the cap are rejected', async (t) => {
  const stack = await startStack(t, { maxUnauthenticatedSockets: 2 });
  const waiting = [stack.client(), stack.client()];
  for (const client of waiting) {
    await client.next('connect');
  }
  await eventually(() => stack.auth.waiting === 2, 3000, 'two waiting sockets');

  const over = stack.client();
  await over.next('connect');
  assertUnauthorized(await over.next(['authenticated', 'unauthorized']), 'too_many_connections');
  assert.equal((await over.next('disconnect')).args[0], 'io server disconnect');
  assert.equal(stack.auth.rejectedOverCap, 1);
  const warnings = stack.logs.filter((line) => line.level === 'warn' && line.message.startsWith('too many unauthenticated sockets'));
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].attrs.rejected_total, 1);

  // A handshake token admits a socket beyond the cap.
  const handshake = stack.client({ auth: { token: stack.authority.issueCode('bob').code } });
  assertAuthenticated(await handshake.outcome(), 'bob');

  // An authenticated socket no longer waits, so its place is free.
  assertAuthenticated(await waiting[0].authenticate(stack.authority.issueCode('alice').code), 'alice');
  const next = stack.client();
  await next.next('connect');
  assert.equal(await next.nextOrNull(['unauthorized', 'disconnect'], 200), null, 'the socket after a freed place was rejected');
  assertAuthenticated(await next.authenticate(stack.authority.issueCode('carol').code), 'carol');
  assert.equal(stack.auth.rejectedOverCap, 1);
});

test('disconnected waiting socket frees its place', async (t) => {
  const stack = await startStack(t, { maxUnauthenticatedSockets: 1 });
  const first = stack.client();
  await first.next('connect');
  first.socket.close();
  await eventually(() => stack.auth.waiting === 0, 3000, 'no waiting socket after the disconnect');

  const second = stack.client();
  await second.next('connect');
  assertAuthenticated(await second.authenticate(stack.authority.issueCode('alice').code), 'alice');
});

test('invalid limit options are rejected', () => {
  const cases = [
    { options: { socketAuthenticateLimit: { perSecond: 0, burst: 5 } }, error: /socketAuthenticateLimit .*perSecond must be a positive/ },
    { options: { socketAuthenticateLimit: { perSecond: 1, burst: 0 } }, error: /socketAuthenticateLimit .*burst must be a positive integer/ },
    { options: { socketAuthenticateLimit: { perSecond: 1, burst: 1.5 } }, error: /burst must be a positive integer/ },
    { options: { socketAuthenticateLimit: { perSecond: 1 } }, error: /burst must be a positive integer/ },
    { options: { socketAuthenticateLimit: 5 }, error: /socketAuthenticateLimit 5: expected \{perSecond, burst\}/ },
    { options: { socketAuthenticateLimit: { rate: 1, burst: 1 } }, error: /unknown member rate/ },
    { options: { addressAuthenticateLimit: { perSecond: NaN, burst: 1 } }, error: /addressAuthenticateLimit .*perSecond must be a number/ },
    { options: { addressAuthenticateLimit: { perSecond: Infinity, burst: 1 } }, error: /addressAuthenticateLimit .*positive finite/ },
    { options: { trustedProxies: '10.0.0.0/8' }, error: /trustedProxies '10.0.0.0\/8': expected an array/ },
    { options: { trustedProxies: ['10.0.0.0/8', '10.0.0.0/33'] }, error: /trustedProxies\[1\] '10.0.0.0\/33'/ },
    { options: { trustedProxies: ['proxy.internal/8'] }, error: /trustedProxies\[0\] .*expected a network such as 10.0.0.0\/8/ },
    { options: { trustedProxies: ['fe80::/64%eth0'] }, error: /trustedProxies\[0\]/ },
    { options: { trustedProxies: ['fe80::%eth0/64'] }, error: /trustedProxies\[0\]/ },
    { options: { trustedProxies: [8] }, error: /trustedProxies\[0\] 8/ },
    { options: { maxPayloadBytes: 0 }, error: /maxPayloadBytes 0: must be an integer of at least maxTokenBytes \(4096\)/ },
    { options: { maxPayloadBytes: 4095 }, error: /maxPayloadBytes 4095/ },
    { options: { maxPayloadBytes: 9000.5 }, error: /maxPayloadBytes 9000.5/ },
    { options: { maxUnauthenticatedSockets: 0 }, error: /maxUnauthenticatedSockets 0: must be a positive integer, or negative to turn the cap off/ },
    { options: { maxUnauthenticatedSockets: 'many' }, error: /maxUnauthenticatedSockets 'many'/ }
  ];
  for (const c of cases) {
    assert.throws(() => sockauth(new Server(), Object.assign({ address: '127.0.0.1:1' }, c.options)), c.error,
      'options ' + JSON.stringify(c.options));
  }
});

test('valid limit options are accepted', (t) => {
  const build = (options) => {
    const auth = sockauth(new Server(), Object.assign({ address: '127.0.0.1:1', watchRevocations: false }, options));
    t.after(() => auth.close());
    return auth;
  };

  const defaults = build({ trustedProxies: undefined });
  assert.deepEqual(defaults.options.socketAuthenticateLimit, { perSecond: 0.2, burst: 5 });
  assert.deepEqual(defaults.options.addressAuthenticateLimit, { perSecond: 20, burst: 100 });
  assert.deepEqual(defaults.options.trustedProxies, ['127.0.0.0/8', '::1/128']);
  assert.equal(defaults.options.maxPayloadBytes, 8192);
  assert.equal(defaults.options.maxUnauthenticatedSockets, 10000);
  assert.deepEqual(DEFAULTS.socketAuthenticateLimit, { perSecond: 0.2, burst: 5 });

  const custom = build({
    socketAuthenticateLimit: { perSecond: -1 },
    addressAuthenticateLimit: { perSecond: 0.5, burst: 3 },
    trustedProxies: ['10.1.2.3/8', '192.0.2.7', 'fd00::/8'],
    maxTokenBytes: 64,
    maxPayloadBytes: 64,
    maxUnauthenticatedSockets: -1
  });
  assert.equal(custom.options.socketAuthenticateLimit.perSecond < 0, true);
  assert.deepEqual(custom.options.addressAuthenticateLimit, { perSecond: 0.5, burst: 3 });
  assert.equal(custom.trustedProxies.contains('10.9.9.9'), true);
  assert.equal(custom.trustedProxies.contains('192.0.2.7'), true);
  assert.equal(custom.trustedProxies.contains('192.0.2.8'), false);

  const none = build({ trustedProxies: [] });
  assert.equal(none.trustedProxies.contains('127.0.0.1'), false);
});

test('token bucket refills at perSecond', () => {
  const bucket = new TokenBucket({ perSecond: 2, burst: 3 }, 0);
  for (let i = 0; i < 3; i++) {
    assert.equal(bucket.take(0), true, 'take ' + i + ' within the burst');
  }
  assert.equal(bucket.take(0), false, 'take beyond the burst');
  assert.equal(bucket.take(499), false, 'take before a token is back');
  assert.equal(bucket.take(500), true, 'take after 500 ms at 2 per second');
  assert.equal(bucket.tokensAt(60000), 3, 'tokens after a long pause are capped at the burst');
});

test('address limiters drop quiet addresses', () => {
  const limiters = new AddressLimiters({ perSecond: 1, burst: 2 });
  for (let i = 0; i < 50; i++) {
    assert.equal(limiters.allow('192.0.2.' + i, 0), true);
  }
  assert.equal(limiters.allow('203.0.113.9', 0), true);
  assert.equal(limiters.allow('203.0.113.9', 0), true);
  assert.equal(limiters.allow('203.0.113.9', 0), false);
  assert.equal(limiters.size, 51);

  // After the sweep interval every bucket is full again, so all are dropped
  // but the one just used.
  assert.equal(limiters.allow('203.0.113.9', ADDRESS_SWEEP_INTERVAL_MS), true);
  assert.equal(limiters.size, 1);

  assert.equal(limiters.allow('', 0), true, 'an unknown address is not limited');
  assert.equal(limiters.allow('127.0.0.1', 0), true, 'a loopback address is not limited');
  assert.equal(limiters.allow('::1', 0), true, 'the IPv6 loopback address is not limited');
  assert.equal(limiters.size, 1);
});
