'use strict';

// Main flow: log in, exchange the code on the socket, ack the session token,
// then send a chat message and receive its broadcast.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const username = lib.env('CHAT_USERNAME', 'alice');

  const result = await lib.login(url, username, lib.env('CHAT_PASSWORD', 'alice-password'));
  lib.writeLine({ step: 'login', status: result.status, body: result.body });
  const code = result.body.token;

  const client = new lib.Client(url, 'main');
  await client.connected();

  const outcome = await client.authenticate({ token: code });
  if (outcome.ack) {
    outcome.ack();
  }
  lib.writeLine(Object.assign({ step: 'authenticate', code: code }, lib.describe(outcome)));

  const text = 'hello from ' + username;
  client.emit('message', { text: text });
  const [message] = await client.next('message');
  lib.writeLine({ step: 'message', message: message, connected: client.socket.connected });

  client.close();
});
