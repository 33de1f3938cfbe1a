'use strict';

// Refresh on a live socket: authenticate again with the current token on the
// same socket, get the next token, and stay connected and able to chat.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const first = await lib.connectAndAuthenticate(url, 'refresher', { token: code });
  first.ack();
  lib.writeLine(Object.assign({ step: 'first' }, lib.describe(first)));
  const client = first.client;

  const refreshed = await client.authenticate({ token: first.token });
  if (refreshed.ack) {
    refreshed.ack();
  }
  lib.writeLine(Object.assign({ step: 'refresh' }, lib.describe(refreshed)));

  await lib.sleep(500);
  client.emit('message', { text: 'after refresh' });
  const message = await client.nextOrNull('message', 3000);
  lib.writeLine({
    step: 'after',
    connected: client.socket.connected,
    message: message && message[0],
    disconnects: client.drain('disconnect').map((args) => args[0])
  });

  client.close();
});
