'use strict';

// Logout across socket servers: one session has a socket on server A and one
// on server B, which rotated the token of A as a second tab would. The socket
// on A logs out, and the socket on B receives logged_out through the
// revocation stream of its own authority replica.

const lib = require('../lib');

lib.run(async () => {
  const urlA = lib.env('CHAT_URL');
  const urlB = lib.env('CHAT_URL_B');
  const code = await lib.loginCode(urlA, lib.env('CHAT_USERNAME'), lib.env('CHAT_PASSWORD'));

  const onA = await lib.connectAndAuthenticate(urlA, 'on-a', { token: code });
  onA.ack();
  lib.writeLine(Object.assign({ step: 'on-a' }, lib.describe(onA)));
  await lib.sleep(300);

  const onB = await lib.connectAndAuthenticate(urlB, 'on-b', { token: onA.token });
  onB.ack();
  lib.writeLine(Object.assign({ step: 'on-b' }, lib.describe(onB)));
  await lib.sleep(300);

  // The rotation on B leaves the session alive, so A stays connected.
  lib.writeLine({
    step: 'a-after-rotation',
    connected: onA.client.socket.connected,
    disconnects: onA.client.drain('unauthorized').map((args) => JSON.stringify(args))
  });

  const started = Date.now();
  onA.client.emit('logout', { token: onA.token });
  const [loggedOutA] = await onA.client.next('logged_out');
  const disconnectA = await onA.client.nextOrNull('disconnect', 3000);
  lib.writeLine({ step: 'logout-a', logged_out: loggedOutA, disconnect: disconnectA && disconnectA[0] });

  const [loggedOutB] = await onB.client.next('logged_out');
  const afterMS = Date.now() - started;
  const disconnectB = await onB.client.nextOrNull('disconnect', 3000);
  lib.writeLine({ step: 'logout-b', logged_out: loggedOutB, disconnect: disconnectB && disconnectB[0], after_ms: afterMS });
});
