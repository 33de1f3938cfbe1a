'use strict';

// Lost ack: the client receives the next session token but disconnects before
// it acks it. Within the rotation leeway, presenting the old token again
// returns the same successor instead of revoking the session.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const first = await lib.connectAndAuthenticate(url, 'first', { token: code });
  first.ack();
  lib.writeLine(Object.assign({ step: 'first' }, lib.describe(first)));
  await lib.sleep(300);
  first.client.close();

  // Receive the successor and drop the connection without the ack.
  const unacked = await lib.connectAndAuthenticate(url, 'unacked', { token: first.token });
  lib.writeLine(Object.assign({ step: 'unacked' }, lib.describe(unacked)));
  unacked.client.close();

  const retry = await lib.connectAndAuthenticate(url, 'retry', { token: first.token });
  if (retry.ack) {
    retry.ack();
  }
  lib.writeLine(Object.assign({ step: 'retry' }, lib.describe(retry)));
  await lib.sleep(300);

  // The session is alive: the newest token authenticates a new socket.
  const check = await lib.connectAndAuthenticate(url, 'check', { token: retry.token });
  if (check.ack) {
    check.ack();
  }
  lib.writeLine(Object.assign({ step: 'check', retry_connected: retry.client.socket.connected }, lib.describe(check)));

  retry.client.close();
  check.client.close();
});
