'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { tokenFromPayload, tokenFromHandshake } = require('../lib');
const { isLoopback } = require('../lib/authority');

test('tokenFromPayload accepts and rejects', () => {
  assert.equal(tokenFromPayload('abc'), 'abc');
  assert.equal(tokenFromPayload({ token: 'abc' }), 'abc');
  assert.equal(tokenFromPayload(undefined), null);
  assert.equal(tokenFromPayload(null), null);
  assert.equal(tokenFromPayload({}), null);
  assert.equal(tokenFromPayload({ token: null }), null);
  for (const bad of [42, true, ['abc'], { token: 7 }, '', { token: '' }, 'x'.repeat(11)]) {
    assert.throws(() => tokenFromPayload(bad, 10), { name: 'Error' }, 'accepted ' + JSON.stringify(bad));
  }
});

test('tokenFromPayload errors omit the token', () => {
  const secret = 'v2.local.secret-token-value';
  assert.throws(() => tokenFromPayload(secret, 5), (error) => !error.message.includes(secret));
});

test('tokenFromHandshake order and forms', () => {
  const handshake = (auth, query, authorization) => ({ auth: auth, query: query, headers: authorization ? { authorization } : {} });
  assert.equal(tokenFromHandshake(handshake({ token: 'a' }, { token: 'b' }, 'Bearer c')), 'a');
  assert.equal(tokenFromHandshake(handshake({}, { token: 'b' }, 'Bearer c')), 'b');
  assert.equal(tokenFromHandshake(handshake({}, {}, 'Bearer c')), 'c');
  assert.equal(tokenFromHandshake(handshake({}, {}, 'bearer c')), 'c');
  assert.equal(tokenFromHandshake(handshake({}, {}, 'Basic dXNlcjpwYXNz')), null);
  assert.equal(tokenFromHandshake(handshake({}, {}, undefined)), null);
  assert.throws(() => tokenFromHandshake(handshake({}, { token: ['a', 'b'] })), /more than once/);
  assert.throws(() => tokenFromHandshake(handshake({}, {}, 'Bearer a, Bearer b')), /more than one Bearer/);
  assert.throws(() => tokenFromHandshake(handshake({ token: 5 }, {})), /expected a token string/);
});

test('isLoopback', () => {
  for (const address of ['127.0.0.1:7070', '127.1.2.3:1', 'localhost:7070', '[::1]:7070']) {
    assert.equal(isLoopback(address), true, address);
  }
  for (const address of ['10.0.0.1:7070', 'example.com:7070', ':7070', '[::]:7070', '127.0.0.1']) {
    assert.equal(isLoopback(address), false, address);
  }
});
