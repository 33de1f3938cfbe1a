'use strict';

// An application event from an unauthenticated socket must not reach the chat:
// an authenticated listener receives its own marker message but never the text
// sent before authentication.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const listener = await lib.connectAndAuthenticate(url, 'listener', { token: code });
  if (listener.ack) {
    listener.ack();
  }
  lib.writeLine(Object.assign({ step: 'listener' }, lib.describe(listener)));

  const intruder = new lib.Client(url, 'intruder');
  await intruder.connected();
  intruder.emit('message', { text: 'sent before authentication' });
  intruder.emit('message', 'sent before authentication as a bare string');

  // Send the marker after the intruder's messages, and wait a little longer,
  // so that a forwarded intruder message would arrive before the test ends.
  await lib.sleep(300);
  listener.client.emit('message', { text: 'marker' });

  const received = [];
  for (;;) {
    const [message] = await listener.client.next('message');
    received.push(message);
    if (message && message.text === 'marker') {
      break;
    }
  }
  await lib.sleep(300);
  for (const args of listener.client.drain('message')) {
    received.push(args[0]);
  }

  lib.writeLine({
    step: 'received',
    messages: received,
    listener_connected: listener.client.socket.connected,
    intruder_messages: intruder.drain('message').map((args) => args[0])
  });

  listener.client.close();
  intruder.close();
});
