'use strict';

// Replay of a login code: exchange the code and ack the session token, then
// present the code again on a second socket, which must be rejected.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const first = await lib.connectAndAuthenticate(url, 'first', { token: code });
  if (first.ack) {
    first.ack();
  }
  lib.writeLine(Object.assign({ step: 'exchange' }, lib.describe(first)));

  // Give the ack time to reach the authority as a ConfirmRotation.
  await lib.sleep(300);

  const replay = await lib.connectAndAuthenticate(url, 'replay', { token: code });
  const disconnect = await replay.client.nextOrNull('disconnect', 3000);
  lib.writeLine(Object.assign({ step: 'replay', disconnect: disconnect && disconnect[0] }, lib.describe(replay)));

  first.client.close();
  replay.client.close();
});
