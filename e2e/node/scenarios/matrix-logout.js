'use strict';

// Logout of the client matrix: logout gives logged_out and a disconnect by
// the server, the client does not reconnect by itself although it may, and
// the logged out token is rejected on a new socket.

const lib = require('../lib');

const RECONNECT_WAIT_MS = 1500;

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const code = await lib.loginCode(url, 'alice', 'alice-password');

  const client = new lib.Client(url, 'session', {
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 150
  });
  await client.connected();
  const session = await client.authenticate({ token: code });
  if (session.ack) {
    session.ack();
  }
  lib.writeLine(Object.assign({ step: 'authenticate' }, lib.describe(session)));

  // Give the ack time to reach the authority as a ConfirmRotation.
  await lib.sleep(300);

  client.emit('logout', { token: session.token });
  const [loggedOut] = await client.next('logged_out');
  const disconnect = await client.nextOrNull('disconnect', 3000);
  const reconnect = await client.nextOrNull('connect', RECONNECT_WAIT_MS);
  lib.writeLine({
    step: 'logout',
    logged_out: loggedOut,
    disconnect: disconnect && disconnect[0],
    reconnected: reconnect !== null
  });
  client.close();

  const after = await lib.connectAndAuthenticate(url, 'after', { token: session.token });
  const afterDisconnect = after.event === 'unauthorized' ? await after.client.nextOrNull('disconnect', 3000) : null;
  lib.writeLine(Object.assign({ step: 'after', disconnect: afterDisconnect && afterDisconnect[0] }, lib.describe(after)));
  after.client.close();
});
