'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { startStack, eventually } = require('./helpers');

test('handshake token connects authenticated', async (t) => {
  const stack = await startStack(t);
  const ways = [
    { name: 'auth payload', options: (token) => ({ auth: { token: token } }) },
    { name: 'query parameter', options: (token) => ({ query: { token: token } }) },
    { name: 'Authorization header', options: (token) => ({ extraHeaders: { Authorization: 'Bearer ' + token } }) }
  ];
  for (const way of ways) {
    await t.test(way.name, async () => {
      const client = stack.client(way.options(stack.authority.issueCode('alice').code));
      await client.next('connect');
      const outcome = await client.outcome();
      assert.equal(outcome.event, 'authenticated');
      assert.equal(outcome.args[1].subject, 'alice');

      client.socket.emit('message', 'hi');
      assert.deepEqual((await client.next('echo')).args[0], { text: 'hi', subject: 'alice' });
    });
  }
  await eventually(() => stack.authority.callsOf('ConfirmRotation').length === ways.length, 3000, 'a ConfirmRotation per ack');
});

test('bad handshake token gets connect_error', async (t) => {
  const stack = await startStack(t);
  const cases = [
    { name: 'unknown token', options: { auth: { token: 'tok-unknown' } }, code: 'invalid_token' },
    { name: 'non-string token', options: { auth: { token: 7 } }, code: 'invalid_token' },
    { name: 'two Bearer tokens', options: { extraHeaders: { Authorization: 'Bearer a, Bearer b' } }, code: 'invalid_token' }
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const client = stack.client(c.options);
      const entry = await client.next(['connect', 'connect_error']);
      assert.equal(entry.event, 'connect_error');
      const error = entry.args[0];
      assert.equal(error.message, 'invalid token');
      assert.deepEqual(error.data, { message: 'invalid token', code: c.code, type: 'UnauthorizedError' });
    });
  }

  await t.test('reused code', async () => {
    const code = stack.authority.issueCode('alice').code;
    const first = stack.client({ auth: { token: code } });
    assert.equal((await first.outcome()).event, 'authenticated');
    await eventually(() => stack.authority.callsOf('ConfirmRotation').length >= 1);

    const second = stack.client({ auth: { token: code } });
    const entry = await second.next(['connect', 'connect_error']);
    assert.equal(entry.event, 'connect_error');
    assert.equal(entry.args[0].data.code, 'revoked_token');
  });
});

test('Basic Authorization header is no token', async (t) => {
  const stack = await startStack(t);
  const client = stack.client({ extraHeaders: { Authorization: 'Basic dXNlcjpwYXNz' } });
  await client.next('connect');
  assert.equal(await client.nextOrNull(['authenticated', 'unauthorized'], 200), null);
  assert.equal((await client.authenticate(stack.authority.issueCode('bob').code)).event, 'authenticated');
});
