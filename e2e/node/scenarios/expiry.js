'use strict';

// Expiry without refresh: authenticate, ack, and never refresh. When the
// session token expires, the server must emit unauthorized (token_expired) and
// disconnect the socket.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const waitMs = lib.envInt('WAIT_MS', 10000);
  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));

  const session = await lib.connectAndAuthenticate(url, 'expiring', { token: code });
  if (session.ack) {
    session.ack();
  }
  const authenticatedAt = Date.now();
  lib.writeLine(Object.assign({ step: 'authenticate' }, lib.describe(session)));

  const [error] = await session.client.next('unauthorized', waitMs);
  const unauthorizedAfterMs = Date.now() - authenticatedAt;
  const disconnect = await session.client.nextOrNull('disconnect', 3000);
  lib.writeLine({
    step: 'expired',
    error: error,
    unauthorized_after_ms: unauthorizedAfterMs,
    disconnect: disconnect && disconnect[0]
  });

  session.client.close();
});
