'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { startStack, eventually, sleep } = require('./helpers');

async function authenticated(stack, subject) {
  const client = stack.client();
  await client.next('connect');
  const outcome = await client.authenticate(stack.authority.issueCode(subject).code);
  assert.equal(outcome.event, 'authenticated');
  return { client: client, sessionId: outcome.args[1].session_id };
}

test('revocation events disconnect the session sockets', async (t) => {
  const stack = await startStack(t);
  await eventually(() => stack.authority.watchers.size === 1, 3000, 'a revocation watcher');

  const admin = await authenticated(stack, 'alice');
  const loggedOut = await authenticated(stack, 'bob');
  const bystander = await authenticated(stack, 'carol');

  stack.authority.revoke(admin.sessionId, 'REVOCATION_REASON_ADMIN');
  const unauthorized = await admin.client.next('unauthorized');
  assert.equal(unauthorized.args[0].data.code, 'revoked_token');

  stack.authority.revoke(loggedOut.sessionId, 'REVOCATION_REASON_LOGOUT');
  assert.deepEqual((await loggedOut.client.next('logged_out')).args[0], { reason: 'logout' });

  assert.equal(await bystander.client.nextOrNull(['unauthorized', 'logged_out'], 200), null);
});

test('broken stream reconnects and verifies sessions', async (t) => {
  const stack = await startStack(t, { revocationRetryMs: 100, revocationMaxRetryMs: 400 });
  await eventually(() => stack.authority.watchers.size === 1, 3000, 'a revocation watcher');
  const alice = await authenticated(stack, 'alice');
  const bob = await authenticated(stack, 'bob');

  // While no stream is open, a revocation is missed.
  stack.authority.refuseWatch = true;
  stack.authority.breakWatchers();
  stack.authority.revoke(alice.sessionId, 'REVOCATION_REASON_ADMIN', true);
  await sleep(300);
  stack.authority.refuseWatch = false;

  // Once a stream opens again, Verify finds the revoked session.
  const unauthorized = await alice.client.next('unauthorized', 5000);
  assert.equal(unauthorized.args[0].data.code, 'revoked_token');
  assert.equal(await bob.client.nextOrNull(['unauthorized', 'logged_out'], 200), null);
  await eventually(() => stack.authority.watchers.size === 1, 3000, 'a new revocation watcher');
  assert.ok(stack.logs.some((line) => line.message.startsWith('revocation stream broke')), 'the broken stream was not logged');
});

test('watch can be turned off', async (t) => {
  const stack = await startStack(t, { watchRevocations: false });
  await authenticated(stack, 'alice');
  assert.equal(stack.authority.callsOf('WatchRevocations').length, 0);
});
