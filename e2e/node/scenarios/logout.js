'use strict';

// Logout: emit logout with the current token, receive logged_out and a
// disconnect, then find the token rejected on a new socket.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const session = await lib.connectAndAuthenticate(url, 'session', { token: code });
  session.ack();
  lib.writeLine(Object.assign({ step: 'authenticate' }, lib.describe(session)));
  await lib.sleep(300);

  session.client.emit('logout', { token: session.token });
  const [loggedOut] = await session.client.next('logged_out');
  const disconnect = await session.client.nextOrNull('disconnect', 3000);
  lib.writeLine({ step: 'logout', logged_out: loggedOut, disconnect: disconnect && disconnect[0] });
  session.client.close();

  const after = await lib.connectAndAuthenticate(url, 'after', { token: session.token });
  const afterDisconnect = after.event === 'unauthorized' ? await after.client.nextOrNull('disconnect', 3000) : null;
  lib.writeLine(Object.assign({ step: 'after', disconnect: afterDisconnect && afterDisconnect[0] }, lib.describe(after)));
  after.client.close();
});
