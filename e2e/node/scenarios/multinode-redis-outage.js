'use strict';

// Redis outage under two authority replicas and two socket servers. The Go
// test stops Redis after the ready step and starts it again after the
// outage steps. At each of these points the script waits for a line from
// the test.
//   ready:   a socket on A is authenticated and stays connected throughout.
//   outage:  a login fails with 502, and authenticating on B fails with
//            authority_unavailable; the socket on A is still connected.
//   back:    logins work again, and the stored token of the socket on A is
//            rotated on B, because Redis kept the session on disk.

const lib = require('../lib');
const control = require('../control');

const RECOVERY_MS = 20000;

// Retry the login until it returns 200 or RECOVERY_MS passes.
async function loginWhenBack(url, user, password) {
  const deadline = Date.now() + RECOVERY_MS;
  for (;;) {
    const result = await lib.login(url, user, password);
    if (result.status === 200 || Date.now() > deadline) {
      return result;
    }
    await lib.sleep(250);
  }
}

lib.run(async () => {
  const urlA = lib.env('CHAT_URL');
  const urlB = lib.env('CHAT_URL_B');
  const user = lib.env('CHAT_USERNAME');
  const password = lib.env('CHAT_PASSWORD');

  const kept = await lib.connectAndAuthenticate(urlA, 'kept', { token: await lib.loginCode(urlA, user, password) });
  kept.ack();
  lib.writeLine(Object.assign({ step: 'ready' }, lib.describe(kept)));
  await control.waitForTest();

  const loginDown = await lib.login(urlB, user, password);
  lib.writeLine({ step: 'login-down', status: loginDown.status, body: loginDown.body });

  const down = await lib.connectAndAuthenticate(urlB, 'down', { token: kept.token });
  const downDisconnect = down.event === 'unauthorized' ? await down.client.nextOrNull('disconnect', 3000) : null;
  lib.writeLine(Object.assign({ step: 'authenticate-down', disconnect: downDisconnect && downDisconnect[0] }, lib.describe(down)));
  down.client.close();

  lib.writeLine({
    step: 'kept-down',
    connected: kept.client.socket.connected,
    disconnects: kept.client.drain('unauthorized').map((args) => JSON.stringify(args))
  });
  await control.waitForTest();

  const loginBack = await loginWhenBack(urlB, user, password);
  lib.writeLine({ step: 'login-back', status: loginBack.status, body: loginBack.body });

  const fresh = await lib.connectAndAuthenticate(urlB, 'fresh', { token: loginBack.body.token });
  if (fresh.ack) {
    fresh.ack();
  }
  lib.writeLine(Object.assign({ step: 'fresh' }, lib.describe(fresh)));

  const stored = await lib.connectAndAuthenticate(urlB, 'stored', { token: kept.token });
  if (stored.ack) {
    stored.ack();
  }
  lib.writeLine(Object.assign({ step: 'stored' }, lib.describe(stored)));

  // Leave the socket on A time to be verified again after the outage.
  await lib.sleep(1000);
  lib.writeLine({
    step: 'kept-back',
    connected: kept.client.socket.connected,
    disconnects: kept.client.drain('unauthorized').map((args) => JSON.stringify(args))
  });
});
