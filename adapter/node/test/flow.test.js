'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { startStack, assertAuthenticated, assertUnauthorized, sleep, eventually } = require('./helpers');

test('authenticate event exchanges a code and confirms on ack', async (t) => {
  const stack = await startStack(t);
  const code = stack.authority.issueCode('alice').code;
  const client = stack.client();
  await client.next('connect');

  const outcome = await client.authenticate(code);
  assertAuthenticated(outcome, 'alice');
  await eventually(() => stack.authority.callsOf('ConfirmRotation').length === 1, 3000, 'ConfirmRotation after the ack');
  assert.equal(stack.authority.callsOf('ConfirmRotation')[0].request.token, outcome.args[0]);
});

test('events before authentication never reach the application', async (t) => {
  const stack = await startStack(t);
  const client = stack.client();
  await client.next('connect');

  client.socket.emit('message', 'too early');
  assert.equal(await client.nextOrNull('echo', 300), null, 'an unauthenticated message reached the handler');
  assert.equal(stack.auth.dropped, 1);

  assertAuthenticated(await client.authenticate(stack.authority.issueCode('alice').code), 'alice');
  client.socket.emit('message', 'hello');
  const echo = await client.next('echo');
  assert.deepEqual(echo.args[0], { text: 'hello', subject: 'alice' });
});

test('rejected token gets unauthorized and a server disconnect', async (t) => {
  const stack = await startStack(t);
  const cases = [
    { name: 'unknown token', payload: { token: 'tok-unknown' }, code: 'invalid_token' },
    { name: 'bare number', payload: 42, code: 'invalid_token' },
    { name: 'empty token', payload: { token: '' }, code: 'invalid_token' },
    { name: 'missing token', payload: {}, code: 'invalid_token' },
    { name: 'oversized token', payload: { token: 'x'.repeat(5000) }, code: 'invalid_token' }
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const client = stack.client();
      await client.next('connect');
      client.socket.emit('authenticate', c.payload);
      assertUnauthorized(await client.next(['authenticated', 'unauthorized']), c.code);
      const disconnect = await client.next('disconnect');
      assert.equal(disconnect.args[0], 'io server disconnect');
    });
  }
  // Only the well-formed unknown token reached the authority.
  assert.equal(stack.authority.callsOf('Authenticate').length, 1);
});

test('bare string payload is accepted', async (t) => {
  const stack = await startStack(t);
  const client = stack.client();
  await client.next('connect');
  client.socket.emit('authenticate', stack.authority.issueCode('alice').code);
  assertAuthenticated(await client.outcome(), 'alice');
});

test('auth timeout disconnects a silent socket', async (t) => {
  const stack = await startStack(t, { authTimeoutMs: 200 });
  const client = stack.client();
  await client.next('connect');
  const started = Date.now();
  assertUnauthorized(await client.next('unauthorized', 2000), 'authentication_timeout');
  assert.ok(Date.now() - started >= 150, 'timed out after ' + (Date.now() - started) + ' ms, expected about 200');
  assert.equal((await client.next('disconnect')).args[0], 'io server disconnect');
});

test('expired token disconnects the socket unless refreshed', async (t) => {
  const stack = await startStack(t, {}, { tokenTtlMs: 1200 });
  const client = stack.client();
  await client.next('connect');
  const first = await client.authenticate(stack.authority.issueCode('alice').code);
  assertAuthenticated(first, 'alice');

  // A refresh before expiry returns the next token of the same session.
  await sleep(400);
  const refreshed = await client.authenticate(first.args[0]);
  assertAuthenticated(refreshed, 'alice');
  assert.notEqual(refreshed.args[0], first.args[0]);
  assert.equal(refreshed.args[1].session_id, first.args[1].session_id);

  // Without another refresh the new token expires.
  assertUnauthorized(await client.next('unauthorized', 3000), 'token_expired');
  assert.equal((await client.next('disconnect')).args[0], 'io server disconnect');
});

test('replayed token is reuse and revokes the session', async (t) => {
  const stack = await startStack(t);
  const code = stack.authority.issueCode('alice').code;
  const first = stack.client();
  await first.next('connect');
  assertAuthenticated(await first.authenticate(code), 'alice');
  await eventually(() => stack.authority.callsOf('ConfirmRotation').length === 1);

  const thief = stack.client();
  await thief.next('connect');
  assertUnauthorized(await thief.authenticate(code), 'revoked_token');
  // The revocation event reaches the first socket too.
  assertUnauthorized(await first.next('unauthorized'), 'revoked_token');
});

test('logout disconnects every socket of the session', async (t) => {
  const stack = await startStack(t, { watchRevocations: false });
  const code = stack.authority.issueCode('alice').code;
  const first = stack.client();
  await first.next('connect');
  const outcome = await first.authenticate(code);
  assertAuthenticated(outcome, 'alice');
  await eventually(() => stack.authority.callsOf('ConfirmRotation').length === 1);

  const second = stack.client();
  await second.next('connect');
  const refreshed = await second.authenticate(outcome.args[0]);
  assertAuthenticated(refreshed, 'alice');

  const bystander = stack.client();
  await bystander.next('connect');
  assertAuthenticated(await bystander.authenticate(stack.authority.issueCode('bob').code), 'bob');

  first.socket.emit('logout', { token: outcome.args[0] });
  for (const client of [first, second]) {
    const loggedOut = await client.next('logged_out');
    assert.deepEqual(loggedOut.args[0], { reason: 'logout' });
    assert.equal((await client.next('disconnect')).args[0], 'io server disconnect');
  }
  assert.equal(await bystander.nextOrNull(['logged_out', 'disconnect'], 300), null, 'another session was disconnected');
});

test('logout without a token uses the current one', async (t) => {
  const stack = await startStack(t);
  const client = stack.client();
  await client.next('connect');
  assertAuthenticated(await client.authenticate(stack.authority.issueCode('alice').code), 'alice');
  client.socket.emit('logout');
  assert.deepEqual((await client.next('logged_out')).args[0], { reason: 'logout' });
});

test('unavailable authority gives authority_unavailable', async (t) => {
  const stack = await startStack(t);
  const code = stack.authority.issueCode('alice').code;
  stack.authority.unavailable = true;
  const client = stack.client();
  await client.next('connect');
  assertUnauthorized(await client.authenticate(code), 'authority_unavailable');
});

test('service key is sent on every call', async (t) => {
  const key = 'socket-key-0123456789abcdef';
  const stack = await startStack(t, { serviceKey: key }, { serviceKey: key });
  const client = stack.client();
  await client.next('connect');
  assertAuthenticated(await client.authenticate(stack.authority.issueCode('alice').code), 'alice');
  await eventually(() => stack.authority.callsOf('ConfirmRotation').length === 1);
  for (const call of stack.authority.calls) {
    assert.equal(call.authorization, 'Bearer ' + key, call.method + ' was sent without the service key');
  }
});

test('wrong service key gives authority_unavailable', async (t) => {
  const stack = await startStack(t, { serviceKey: 'wrong-key-0123456789abcdef' }, { serviceKey: 'right-key-0123456789abcdef' });
  const client = stack.client();
  await client.next('connect');
  assertUnauthorized(await client.authenticate(stack.authority.issueCode('alice').code), 'authority_unavailable');
  assert.ok(stack.logs.some((line) => line.level === 'error' && line.message.includes('service key')),
    'no error line names the rejected service key');
});

test('tokens never appear in the logs', async (t) => {
  const stack = await startStack(t);
  const code = stack.authority.issueCode('alice').code;
  const client = stack.client();
  await client.next('connect');
  const outcome = await client.authenticate(code);
  assertAuthenticated(outcome, 'alice');
  client.socket.emit('logout');
  await client.next('logged_out');

  const text = JSON.stringify(stack.logs);
  assert.ok(stack.logs.some((line) => line.message === 'socket authenticated'), 'no socket authenticated line');
  assert.ok(!text.includes(code), 'the logs contain the code');
  assert.ok(!text.includes(outcome.args[0]), 'the logs contain the session token');
});
