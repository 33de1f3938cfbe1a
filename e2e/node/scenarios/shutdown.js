'use strict';

// Server shutdown: a client with reconnection on authenticates, then writes
// READY_FILE, and the test stops the chat demo. The client should see one
// disconnect whose reason lets it reconnect, and then try to reconnect.

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
  const outcome = await client.authenticate({ token: code });
  if (outcome.ack) {
    outcome.ack();
  }
  lib.writeLine(Object.assign({ step: 'authenticate' }, lib.describe(outcome)));

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
  client.close();
});
