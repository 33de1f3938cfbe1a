'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { Server } = require('socket.io');
const { sockauth } = require('../lib');
const { startStack, assertAuthenticated } = require('./helpers');

test('invalid general options are rejected', () => {
  const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };
  const cases = [
    { options: { trustedProxy: ['10.0.0.0/8'] }, error: /unknown option 'trustedProxy', expected one of .*trustedProxies/ },
    { options: { logger: { info() {}, warn() {}, error() {} } }, error: /invalid option logger: missing the method debug/ },
    { options: { logger: {} }, error: /missing the method debug, info, warn, error/ },
    { options: { authTimeoutMs: '5000' }, error: /authTimeoutMs '5000': must be a positive number/ },
    { options: { maxTokenBytes: 1.5 }, error: /maxTokenBytes 1.5: must be a positive whole number/ },
    { options: { watchRevocations: 'no' }, error: /watchRevocations 'no': must be true or false/ },
    { options: { onAuthenticated: 'yes' }, error: /onAuthenticated 'yes': must be a function/ },
    { options: { address: 'localhost' }, error: /invalid option address 'localhost': expected host:port/ },
    { options: { address: 7070 }, error: /invalid option address 7070/ },
    { options: { credentials: 'tls' }, error: /invalid option credentials: expected @grpc\/grpc-js ChannelCredentials/ },
    { options: { serviceKey: 123 }, error: /invalid option serviceKey: expected a string/ }
  ];
  for (const c of cases) {
    const options = Object.assign({ address: '127.0.0.1:1', logger: quietLogger }, c.options);
    assert.throws(() => sockauth(new Server(), options), c.error, 'options ' + JSON.stringify(Object.keys(c.options)));
  }
});

test('failing onAuthenticated keeps the socket authenticated', async (t) => {
  const stack = await startStack(t, {
    onAuthenticated: () => {
      throw new Error('application bug');
    }
  });
  const client = stack.client();
  await client.next('connect');

  assertAuthenticated(await client.authenticate(stack.authority.issueCode('alice').code), 'alice');
  client.socket.emit('message', 'hello');
  const echo = await client.next('echo');
  assert.equal(echo.args[0].subject, 'alice', 'the socket still reaches the application');
  const failure = stack.logs.find((line) => line.level === 'error' && line.message === 'onAuthenticated callback failed');
  assert.ok(failure, 'the callback error is logged');
  assert.match(failure.attrs.error, /application bug/);
});
