'use strict';

// Main flow of the client matrix: log in, connect, exchange the code with the
// authenticate event, ack the session token, send a chat message and receive
// its broadcast among those of other scenarios. The last step reports the
// transport in use. With SOCKET_TRANSPORTS=polling,websocket it is websocket
// for 3.x and 4.x clients, and polling for 2.x clients, which the chat demo
// offers no upgrade.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, 'alice', 'alice-password');

  const client = new lib.Client(url, 'main');
  await client.connected();

  const outcome = await client.authenticate({ token: code });
  if (outcome.ack) {
    outcome.ack();
  }
  lib.writeLine(Object.assign({ step: 'authenticate', code: code }, lib.describe(outcome)));

  const text = lib.uniqueText('hello from the matrix');
  client.emit('message', { text: text });
  const message = await client.nextMessage(text);
  const transport = await client.settleTransport('websocket', 3000);
  lib.writeLine({
    step: 'message',
    sent: text,
    message: message,
    connected: client.socket.connected,
    transport: transport,
    disconnects: client.drain('disconnect').map((args) => args[0])
  });

  client.close();
});
