'use strict';

// Revocation of a subject across socket servers: two sessions of one user have
// sockets on servers A and B, and another user has a socket on A. After the
// ready step, the Go test runs `sockauth revoke --subject` against one
// authority replica, and every socket of the user must receive unauthorized
// with revoked_token, while the other user's socket stays.

const lib = require('../lib');

const REVOKE_WAIT_MS = 10000;

async function authenticated(url, name, token) {
  const outcome = await lib.connectAndAuthenticate(url, name, { token: token });
  if (outcome.event !== 'authenticated') {
    throw new Error(name + ': authenticate failed: ' + JSON.stringify(outcome.error));
  }
  outcome.ack();
  return outcome;
}

lib.run(async () => {
  const urlA = lib.env('CHAT_URL');
  const urlB = lib.env('CHAT_URL_B');
  const user = lib.env('CHAT_USERNAME');
  const password = lib.env('CHAT_PASSWORD');

  const firstOnA = await authenticated(urlA, 'first-on-a', await lib.loginCode(urlA, user, password));
  const secondOnB = await authenticated(urlB, 'second-on-b', await lib.loginCode(urlB, user, password));
  const other = await authenticated(urlA, 'other-user-on-a',
    await lib.loginCode(urlA, lib.env('OTHER_USERNAME'), lib.env('OTHER_PASSWORD')));
  await lib.sleep(300);
  const firstOnB = await authenticated(urlB, 'first-on-b', firstOnA.token);
  await lib.sleep(300);

  lib.writeLine({ step: 'ready' });

  for (const outcome of [firstOnA, secondOnB, firstOnB]) {
    const entry = await outcome.client.nextOf(['unauthorized', 'logged_out'], REVOKE_WAIT_MS);
    const disconnect = await outcome.client.nextOrNull('disconnect', 3000);
    lib.writeLine({
      step: 'revoked',
      name: outcome.client.name,
      event: entry.event,
      error: entry.event === 'unauthorized' ? entry.args[0] : null,
      disconnect: disconnect && disconnect[0]
    });
  }

  const otherEvent = await other.client.nextOrNull('unauthorized', 500);
  lib.writeLine({ step: 'other', connected: other.client.socket.connected && otherEvent === null });
});
