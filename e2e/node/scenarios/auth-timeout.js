'use strict';

// Authentication timeout: connect and never authenticate. The server must emit
// unauthorized (authentication_timeout) and disconnect the socket.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const waitMs = lib.envInt('WAIT_MS', 5000);

  const client = new lib.Client(url, 'idle');
  await client.connected();
  const connectedAt = Date.now();

  const [error] = await client.next('unauthorized', waitMs);
  const unauthorizedAfterMs = Date.now() - connectedAt;
  const disconnect = await client.nextOrNull('disconnect', 3000);

  lib.writeLine({
    step: 'timeout',
    error: error,
    unauthorized_after_ms: unauthorizedAfterMs,
    disconnect: disconnect && disconnect[0]
  });

  client.close();
});
