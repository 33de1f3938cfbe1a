'use strict';

// client/js in Node with the socket.io-client of SOCKETIO_CLIENT. The
// scenario logs in, connects with the code, chats and waits for the refresh
// before the token expires, because the test gives tokens a short lifetime.
// Then two more sessions connect from the stored token at the same moment,
// and a logout ends the other sessions of the login too.

const path = require('node:path');
const { pathToFileURL } = require('node:url');

const lib = require('../lib');

// once resolves with the arguments of the next event of session, or rejects
// after timeoutMs.
function once(session, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ' + event + ' within ' + timeoutMs + ' ms')), timeoutMs);
    session.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const io = require(lib.env('SOCKETIO_CLIENT', 'socket.io-client'));
  const transports = lib.env('SOCKET_TRANSPORTS', 'websocket').split(',');
  const helperURL = pathToFileURL(path.join(__dirname, '..', '..', '..', 'client', 'js', 'sockauth.js'));
  const sockauth = await import(helperURL.href);

  const store = sockauth.createMemoryStore();
  const options = { store: store, socketOptions: { forceNew: true, transports: transports } };

  const code = await sockauth.login(url + '/login', { username: 'alice', password: 'alice-password' });
  const first = sockauth.connect(io, url, Object.assign({ code: code }, options));
  const [firstInfo, firstToken] = await once(first, 'authenticated');
  const stored = JSON.parse(store.getItem(sockauth.DEFAULT_STORAGE_KEY));
  lib.writeLine({
    step: 'connect',
    handshake: first.handshake,
    info: firstInfo,
    token_is_code: firstToken === code,
    stored_token_matches: stored.token === firstToken
  });

  const text = lib.uniqueText('from client/js');
  const received = new Promise((resolve) => {
    first.socket.on('message', (message) => {
      if (message && message.text === text) {
        resolve(message);
      }
    });
  });
  first.socket.emit('message', { text: text });
  lib.writeLine({ step: 'message', sent: text, message: await received });

  const [refreshInfo, refreshToken] = await once(first, 'authenticated', 8000);
  lib.writeLine({
    step: 'refresh',
    info: refreshInfo,
    rotated: refreshToken !== firstToken,
    connected: first.socket.connected
  });

  // Two sessions present the stored token at the same moment; the rotation
  // lock makes the second present the first one's successor.
  const second = sockauth.connect(io, url, options);
  const third = sockauth.connect(io, url, options);
  const [[secondInfo], [thirdInfo]] = await Promise.all([once(second, 'authenticated'), once(third, 'authenticated')]);
  await lib.sleep(1000);
  lib.writeLine({
    step: 'together',
    sessions: [secondInfo.session_id, thirdInfo.session_id],
    sockets_connected: [first.socket.connected, second.socket.connected, third.socket.connected]
  });

  const ended = Promise.all([once(first, 'logged_out'), once(third, 'logged_out')]);
  const confirmed = await second.logout();
  const [[firstEnd], [thirdEnd]] = await ended;
  let connectError = null;
  try {
    sockauth.connect(io, url, options).close();
  } catch (error) {
    connectError = error.message;
  }
  lib.writeLine({
    step: 'logout',
    confirmed: confirmed,
    others: [firstEnd, thirdEnd],
    stored: store.getItem(sockauth.DEFAULT_STORAGE_KEY),
    connect_error: connectError
  });

  first.close();
  third.close();
});
