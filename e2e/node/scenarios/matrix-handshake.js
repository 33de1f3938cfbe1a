'use strict';

// Handshake authentication of socket.io-client 3.x and 4.x: the token travels
// in the auth payload, the token query parameter or an Authorization header.
// For each, the login code connects the socket already authenticated, the
// server emits authenticated, and a new socket reconnects with the stored
// session token the same way. A forged token fails the connection with
// connect_error, which the client does not retry.

const lib = require('../lib');

const RECONNECT_WAIT_MS = 1500;

// SOURCES maps each place of the handshake token to the io() options that put
// a token there.
const SOURCES = {
  auth: (token) => ({ auth: { token: token } }),
  query: (token) => ({ query: { token: token } }),
  header: (token) => ({ extraHeaders: { Authorization: 'Bearer ' + token } })
};

// Connect with options, wait for authenticated, ack it and return the
// outcome as lib.describe writes it, with the token and the client.
async function connectAuthenticated(url, name, options) {
  const client = new lib.Client(url, name, options);
  const entry = await client.nextOf(['connect', 'connect_error']);
  if (entry.event !== 'connect') {
    const err = entry.args[0] || {};
    throw new Error(name + ': connect_error ' + err.message + ' ' + JSON.stringify(err.data));
  }

  const outcome = await client.nextOf(['authenticated', 'unauthorized']);
  if (outcome.event !== 'authenticated') {
    throw new Error(name + ': ' + outcome.event + ' ' + JSON.stringify(outcome.args[0]));
  }
  const [token, info, ack] = outcome.args;
  ack();
  return { client: client, token: token, info: info, described: lib.describe({ event: 'authenticated', token: token, info: info, ack: ack }) };
}

lib.run(async () => {
  const url = lib.env('CHAT_URL');

  for (const [source, optionsFor] of Object.entries(SOURCES)) {
    const code = await lib.loginCode(url, 'alice', 'alice-password');
    const first = await connectAuthenticated(url, source, optionsFor(code));

    const text = lib.uniqueText('handshake via ' + source);
    first.client.emit('message', { text: text });
    const message = await first.client.nextMessage(text);
    lib.writeLine(Object.assign({ step: 'handshake', name: source, code: code, sent: text, message: message }, first.described));

    // Give the ack time to reach the authority as a ConfirmRotation.
    await lib.sleep(300);
    first.client.close();

    const again = await connectAuthenticated(url, 'reconnect-' + source, optionsFor(first.token));
    lib.writeLine(Object.assign({ step: 'reconnect', name: source }, again.described));
    await lib.sleep(300);
    again.client.close();
  }

  const forged = new lib.Client(url, 'forged', Object.assign(SOURCES.auth('forged-token'), {
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 150
  }));
  const [err] = await forged.next('connect_error');
  const retry = await forged.nextOrNull('connect_error', RECONNECT_WAIT_MS);
  lib.writeLine({
    step: 'forged',
    error: { message: err.message, data: err.data },
    retried: retry !== null,
    connected: forged.socket.connected,
    authenticated: forged.drain('authenticated').length > 0
  });
  forged.close();
});
