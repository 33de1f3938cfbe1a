// The chat demo page. It logs in over HTTP and lets sockauth.js, the client
// helper, authenticate the socket with the login code and keep the rotating
// session token in IndexedDB, so that a reload or a reconnect authenticates
// again without a password. Tabs of one browser share the token.
//
// The page uses socket.io-client 4.8.4, or 2.5.0 when the address has
// ?client=2.

import { connect, login, storedSession } from './sockauth.js';

const MAX_MESSAGE_LENGTH = 500;
const MAX_SHOWN_MESSAGES = 200;
const RETRY_DELAY_MS = 5000;

// CLIENTS are the vendored socket.io-client browser builds and the options
// the page connects with. The demo serves 2.x clients only over WebSocket.
const CLIENTS = {
  '2': { version: '2.5.0', src: '/static/socket.io-2.5.0.js', socketOptions: { transports: ['websocket'] } },
  '4': { version: '4.8.4', src: '/static/socket.io-4.8.4.min.js', socketOptions: {} }
};
const client = new URLSearchParams(location.search).get('client') === '2' ? CLIENTS['2'] : CLIENTS['4'];

const el = {
  status: document.getElementById('status'),
  loginForm: document.getElementById('login-form'),
  username: document.getElementById('username'),
  password: document.getElementById('password'),
  loginError: document.getElementById('login-error'),
  chat: document.getElementById('chat'),
  subject: document.getElementById('subject'),
  logout: document.getElementById('logout'),
  messages: document.getElementById('messages'),
  messageForm: document.getElementById('message-form'),
  messageText: document.getElementById('message-text'),
  clientVersion: document.getElementById('client-version')
};

let io = null;
let session = null;

// loadClient adds the script of the socket.io-client build and resolves with
// its global io function.
function loadClient() {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = client.src;
    script.onload = () => resolve(window.io);
    script.onerror = () => reject(new Error('loading ' + client.src + ' failed'));
    document.head.appendChild(script);
  });
}

// setStatus shows text and sets data-state, which tests wait on: starting,
// connecting, connected, disconnected, login or retrying.
function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
}

function showLogin(message) {
  el.chat.hidden = true;
  el.loginForm.hidden = false;
  el.loginError.textContent = message || '';
  setStatus('login', 'Not connected');
  el.username.focus();
}

function showChat(subject) {
  el.loginForm.hidden = true;
  el.chat.hidden = false;
  el.subject.textContent = subject || '';
  el.messageText.focus();
}

function describeRejection(code) {
  switch (code) {
    case 'token_expired':
      return 'Your session token expired. Please log in again.';
    case 'session_expired':
      return 'Your session reached its maximum age. Please log in again.';
    case 'revoked_token':
      return 'Your session was revoked. Please log in again.';
    case 'authentication_timeout':
      return 'Authentication timed out. Please log in again.';
    default:
      return 'Authentication failed (' + code + '). Please log in again.';
  }
}

function renderMessage(message) {
  if (!message || typeof message.text !== 'string') {
    return;
  }
  const item = document.createElement('li');
  const time = document.createElement('time');
  const from = document.createElement('strong');
  const text = document.createElement('span');

  const at = new Date(message.at);
  time.dateTime = message.at;
  time.textContent = isNaN(at) ? '' : at.toLocaleTimeString();
  from.textContent = String(message.from);
  text.textContent = message.text;

  item.append(time, from, text);
  el.messages.appendChild(item);
  while (el.messages.children.length > MAX_SHOWN_MESSAGES) {
    el.messages.removeChild(el.messages.firstChild);
  }
  item.scrollIntoView({ block: 'end' });
}

// openSession connects with the login code, or with the stored token when
// code is empty. It throws when there is neither.
function openSession(code) {
  if (session) {
    session.close();
  }
  setStatus('connecting', 'Connecting…');

  const current = connect(io, undefined, { code: code, socketOptions: client.socketOptions });
  session = current;

  current.on('authenticated', (info) => {
    setStatus('connected', 'Connected');
    showChat(info.subject);
  });
  current.on('unauthorized', (error) => {
    const code = (error && error.data && error.data.code) || 'unknown';
    current.close();
    session = null;
    // The token may still be good when only the authority is down, so the
    // page keeps it and tries again later.
    if (code === 'authority_unavailable') {
      setStatus('retrying', 'The authority is unavailable; retrying…');
      setTimeout(start, RETRY_DELAY_MS);
      return;
    }
    showLogin(describeRejection(code));
  });
  current.on('logged_out', (payload) => {
    session = null;
    showLogin(payload.remote ? 'You were logged out.' : '');
  });

  const socket = current.socket;
  socket.on('message', renderMessage);
  socket.on('disconnect', (reason) => {
    // socket.io reconnects by itself unless the server closed the socket,
    // which it does only after unauthorized or logged_out.
    if (reason !== 'io server disconnect' && session === current) {
      setStatus('disconnected', 'Disconnected (' + reason + '); reconnecting…');
    }
  });
}

// start reconnects with the stored token, or shows the login form.
async function start() {
  let stored = null;
  try {
    stored = await storedSession();
  } catch (error) {
    showLogin('Reading the stored session failed: ' + error.message);
    return;
  }
  if (!stored) {
    showLogin();
    return;
  }
  try {
    openSession(null);
  } catch (error) {
    showLogin();
  }
}

async function onLogin(event) {
  event.preventDefault();
  el.loginError.textContent = '';
  try {
    const code = await login('/login', { username: el.username.value, password: el.password.value });
    el.password.value = '';
    openSession(code);
  } catch (error) {
    el.loginError.textContent = error.message;
  }
}

function onSend(event) {
  event.preventDefault();
  const text = el.messageText.value.trim();
  if (!text || !session) {
    return;
  }
  session.socket.emit('message', { text: text.slice(0, MAX_MESSAGE_LENGTH) });
  el.messageText.value = '';
}

async function onLogout() {
  const current = session;
  session = null;
  if (current) {
    await current.logout();
  }
  showLogin();
}

el.loginForm.addEventListener('submit', onLogin);
el.messageForm.addEventListener('submit', onSend);
el.logout.addEventListener('click', onLogout);
el.clientVersion.textContent = 'socket.io-client ' + client.version;

loadClient().then((loaded) => {
  io = loaded;
  start();
}, (error) => {
  setStatus('error', error.message);
});
