'use strict';

// Chat across client generations on one port: a socket.io-client 2.5.0, a
// 3.1.3 and a 4.8.4 client authenticate, each sends a message, and each
// receives every message. The texts start with "from VERSION".

const lib = require('../lib');

const CLIENTS = [
  { name: '2.5.0', io: require('socket.io-client'), user: 'alice' },
  { name: '3.1.3', io: require('socket.io-client-v3'), user: 'bob' },
  { name: '4.8.4', io: require('socket.io-client-v4'), user: 'alice' }
];

const PASSWORDS = { alice: 'alice-password', bob: 'bob-password' };

lib.run(async () => {
  const url = lib.env('CHAT_URL');

  const sessions = [];
  for (const spec of CLIENTS) {
    const code = await lib.loginCode(url, spec.user, PASSWORDS[spec.user]);
    const client = new lib.Client(url, spec.name, { io: spec.io, transports: ['websocket'] });
    await client.connected();
    const outcome = await client.authenticate({ token: code });
    if (outcome.ack) {
      outcome.ack();
    }
    lib.writeLine(Object.assign({ step: 'authenticate', name: spec.name }, lib.describe(outcome)));
    sessions.push({ spec: spec, client: client });
  }

  for (const session of sessions) {
    session.text = lib.uniqueText('from ' + session.spec.name);
    session.client.emit('message', { text: session.text });
  }

  // Each client waits for the three texts in any order, skipping the
  // messages of other scenarios.
  const texts = sessions.map((session) => session.text);
  for (const session of sessions) {
    const pending = new Set(texts);
    const messages = [];
    const deadline = Date.now() + 5000;
    while (pending.size > 0) {
      const [message] = await session.client.next('message', Math.max(1, deadline - Date.now()));
      if (message && pending.delete(message.text)) {
        messages.push(message);
      }
    }
    lib.writeLine({ step: 'received', name: session.spec.name, messages: messages });
  }

  for (const session of sessions) {
    session.client.close();
  }
});
