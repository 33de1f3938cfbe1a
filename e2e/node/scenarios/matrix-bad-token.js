'use strict';

// Bad token with the authenticate event: a forged token gets unauthorized
// (invalid_token) and a disconnect by the server, and the client, although
// it may reconnect, does not reconnect by itself.

const lib = require('../lib');

// RECONNECT_WAIT_MS is how long the scenario watches for a reconnection, ten
// times the reconnection delay it sets.
const RECONNECT_WAIT_MS = 1500;

lib.run(async () => {
  const url = lib.env('CHAT_URL');

  const client = new lib.Client(url, 'forger', {
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 150
  });
  await client.connected();

  const outcome = await client.authenticate({ token: 'forged-token' });
  const disconnect = await client.nextOrNull('disconnect', 3000);
  const reconnect = await client.nextOrNull('connect', RECONNECT_WAIT_MS);
  lib.writeLine(Object.assign({
    step: 'forged',
    disconnect: disconnect && disconnect[0],
    reconnected: reconnect !== null
  }, lib.describe(outcome)));

  client.close();
});
