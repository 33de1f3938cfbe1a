'use strict';

// Server restart: a client with reconnection on authenticates, then writes
// READY_FILE, and the test stops the chat demo and starts a new one on the
// same address. The client should see one disconnect whose reason lets it
// reconnect, try to reconnect, and on its new connection authenticate with
// the session token it got before the restart and chat.

const fs = require('fs');
const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const client = new lib.Client(url, 'client', {
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 200
  });
  let reconnectAttempts = 0;
  client.socket.io.on('reconnect_attempt', () => {
    reconnectAttempts++;
  });
  await client.connected();
  client.drain('connect');
  const first = await client.authenticate({ token: code });
  if (first.ack) {
    first.ack();
  }
  lib.writeLine(Object.assign({ step: 'authenticate' }, lib.describe(first)));

  fs.writeFileSync(lib.env('READY_FILE'), 'ready\n');
  const [reason] = await client.next('disconnect', 15000);

  // Further disconnect events and the first reconnect attempts arrive
  // within a second.
  await lib.sleep(1000);
  const later = client.drain('disconnect').map((args) => args[0]);
  lib.writeLine({
    step: 'stopped',
    disconnects: [reason].concat(later),
    reconnect_attempts: reconnectAttempts
  });

  await client.next('connect', 15000);
  const again = await client.authenticate({ token: first.token });
  if (again.ack) {
    again.ack();
  }
  lib.writeLine(Object.assign({ step: 'reauthenticate' }, lib.describe(again)));

  // The chat works on the new process. Clients of other kinds chat there
  // at the same time, so the client waits for its own text.
  const text = lib.uniqueText('back after the restart');
  client.emit('message', { text: text });
  const message = await client.nextMessage(text);
  lib.writeLine({ step: 'message', message: message });
  client.close();
});
