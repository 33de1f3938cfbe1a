'use strict';

// Reconnect and replay: a new socket presents the stored session token and gets
// the next one. Presenting the replaced token afterwards is reuse, which
// revokes the session, so the newest token is rejected too.

const lib = require('../lib');

async function authenticateOnce(url, name, token) {
  const outcome = await lib.connectAndAuthenticate(url, name, { token: token });
  if (outcome.ack) {
    outcome.ack();
  }
  const disconnect = outcome.event === 'unauthorized' ? await outcome.client.nextOrNull('disconnect', 3000) : null;
  lib.writeLine(Object.assign({ step: name, disconnect: disconnect && disconnect[0] }, lib.describe(outcome)));

  // Give the ack time to reach the authority before the socket closes.
  await lib.sleep(300);
  outcome.client.close();
  return outcome;
}

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const first = await authenticateOnce(url, 'first', code);
  const reconnect = await authenticateOnce(url, 'reconnect', first.token);
  await authenticateOnce(url, 'replay-old', first.token);
  await authenticateOnce(url, 'newest', reconnect.token);
});
