'use strict';

// Refresh of the client matrix: authenticate again with the current token on
// the same socket, get the next token, and stay connected and able to chat.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, 'alice', 'alice-password');

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
  const text = lib.uniqueText('after refresh');
  client.emit('message', { text: text });
  const message = await client.nextMessage(text, 3000).catch(() => null);
  lib.writeLine({
    step: 'after',
    sent: text,
    connected: client.socket.connected,
    message: message,
    disconnects: client.drain('disconnect').map((args) => args[0])
  });

  client.close();
});
