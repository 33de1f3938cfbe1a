'use strict';

// Reconnect to another socket server: a client authenticates on server A, then
// reconnects to server B with its stored token and gets the next token of the
// same session there. The token from B works on A, and the token that B
// replaced is then reuse on either server.

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
  const urlA = lib.env('CHAT_URL');
  const urlB = lib.env('CHAT_URL_B');
  const code = await lib.loginCode(urlA, lib.env('CHAT_USERNAME'), lib.env('CHAT_PASSWORD'));

  const first = await authenticateOnce(urlA, 'first', code);
  const moved = await authenticateOnce(urlB, 'moved', first.token);
  await authenticateOnce(urlA, 'back', moved.token);
  await authenticateOnce(urlB, 'replay', first.token);
});
