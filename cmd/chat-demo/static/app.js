// The chat demo page. It logs in over HTTP and exchanges the login code for a
// session token on the socket. It keeps the token in localStorage, so that a
// reload or a reconnect authenticates again without a password, and refreshes
// the token before it expires.
(function () {
  'use strict';

  var STORAGE_KEY = 'sockauth-chat-demo.session';
  var MAX_MESSAGE_LENGTH = 500;
  var MAX_SHOWN_MESSAGES = 200;
  var LOGOUT_TIMEOUT_MS = 3000;
  var RETRY_DELAY_MS = 5000;

  var socket = null;
  // pendingCode is the login code until the socket exchanges it. It is
  // single-use, so after the first `authenticated` the stored token takes over.
  var pendingCode = null;
  var refreshTimer = null;

  var el = {
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
    messageText: document.getElementById('message-text')
  };

  function loadSession() {
    try {
      var session = JSON.parse(localStorage.getItem(STORAGE_KEY));
      if (session && typeof session.token === 'string') {
        return session;
      }
    } catch (e) {
      // A value this page did not write is treated as no session.
    }
    return null;
  }

  function saveSession(token, info) {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({
      token: token,
      expires_at: info && info.expires_at,
      subject: info && info.subject
    }));
  }

  function clearSession() {
    localStorage.removeItem(STORAGE_KEY);
  }

  function setStatus(text) {
    el.status.textContent = text;
  }

  function showLogin(message) {
    clearTimeout(refreshTimer);
    el.chat.hidden = true;
    el.loginForm.hidden = false;
    el.loginError.textContent = message || '';
    el.username.focus();
  }

  function showChat(subject) {
    el.loginForm.hidden = true;
    el.chat.hidden = false;
    el.subject.textContent = subject || '';
    el.messageText.focus();
  }

  function closeSocket() {
    clearTimeout(refreshTimer);
    if (socket) {
      socket.off();
      socket.close();
      socket = null;
    }
  }

  // Present the login code on the first connection and the stored session
  // token on every later one, including socket.io's automatic reconnections.
  function sendAuthenticate() {
    var session = loadSession();
    var token = pendingCode || (session && session.token);
    if (!token) {
      closeSocket();
      showLogin();
      return;
    }
    setStatus('Authenticating…');
    socket.emit('authenticate', { token: token });
  }

  // Refresh when most of the token's lifetime has passed: 20 % before expiry,
  // but at most one minute early. The random part spreads out tabs that share
  // the stored token, so that they rarely present it at the same moment.
  function scheduleRefresh(expiresAt) {
    clearTimeout(refreshTimer);
    var remaining = Date.parse(expiresAt) - Date.now();
    if (!(remaining > 0)) {
      return;
    }
    var early = Math.min(60000, remaining * 0.2);
    var jitter = Math.random() * early * 0.25;
    var delay = Math.max(500, remaining - early + jitter);
    refreshTimer = setTimeout(refresh, delay);
  }

  // Another tab may have rotated the token since this socket got it, so the
  // refresh presents the newest stored token.
  // TODO: two tabs refreshing within the same few milliseconds can still present
  // a token that one of them has just confirmed, which revokes the session.
  function refresh() {
    if (socket && socket.connected) {
      sendAuthenticate();
    }
  }

  function onAuthenticated(token, info, ack) {
    // Store before the ack: once the authority learns of the ack, the old token
    // is dead, and a reload must find the new one.
    saveSession(token, info);
    pendingCode = null;
    if (typeof ack === 'function') {
      ack();
    }
    setStatus('Connected');
    showChat(info && info.subject);
    scheduleRefresh(info && info.expires_at);
  }

  function onUnauthorized(err) {
    var data = (err && err.data) || {};
    var code = data.code || 'unknown';
    closeSocket();

    // The token may still be good when only the authority is down, so keep it
    // and try again later.
    if (code === 'authority_unavailable') {
      setStatus('The authority is unavailable; retrying…');
      setTimeout(start, RETRY_DELAY_MS);
      return;
    }

    pendingCode = null;
    clearSession();
    setStatus('Not connected');
    showLogin(describeRejection(code));
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

  function onLoggedOut() {
    pendingCode = null;
    clearSession();
    closeSocket();
    setStatus('Logged out');
    showLogin();
  }

  function onMessage(message) {
    if (!message || typeof message.text !== 'string') {
      return;
    }
    var item = document.createElement('li');
    var time = document.createElement('time');
    var from = document.createElement('strong');
    var text = document.createElement('span');

    var at = new Date(message.at);
    time.dateTime = message.at;
    time.textContent = isNaN(at) ? '' : at.toLocaleTimeString();
    from.textContent = String(message.from);
    text.textContent = message.text;

    item.appendChild(time);
    item.appendChild(from);
    item.appendChild(text);
    el.messages.appendChild(item);
    while (el.messages.children.length > MAX_SHOWN_MESSAGES) {
      el.messages.removeChild(el.messages.firstChild);
    }
    item.scrollIntoView({ block: 'end' });
  }

  function onDisconnect(reason) {
    clearTimeout(refreshTimer);
    // socket.io reconnects by itself unless the server closed the socket, and
    // the server does that only after `unauthorized` or `logged_out`.
    if (reason !== 'io server disconnect') {
      setStatus('Disconnected (' + reason + '); reconnecting…');
    }
  }

  function connect() {
    if (socket) {
      if (socket.connected) {
        sendAuthenticate();
      }
      return;
    }
    setStatus('Connecting…');
    // The demo server offers only the WebSocket transport.
    socket = io({ forceNew: true, transports: ['websocket'] });
    socket.on('connect', sendAuthenticate);
    socket.on('authenticated', onAuthenticated);
    socket.on('unauthorized', onUnauthorized);
    socket.on('logged_out', onLoggedOut);
    socket.on('message', onMessage);
    socket.on('disconnect', onDisconnect);
  }

  function start() {
    if (loadSession()) {
      connect();
    } else {
      showLogin();
    }
  }

  function login(event) {
    event.preventDefault();
    el.loginError.textContent = '';

    fetch('/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: el.username.value, password: el.password.value })
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          throw new Error(body.error || ('login failed with status ' + response.status));
        }
        return body;
      });
    }).then(function (body) {
      el.password.value = '';
      pendingCode = body.token;
      connect();
    }).catch(function (err) {
      el.loginError.textContent = err.message;
    });
  }

  function sendMessage(event) {
    event.preventDefault();
    var text = el.messageText.value.trim();
    if (!text || !socket) {
      return;
    }
    socket.emit('message', { text: text.slice(0, MAX_MESSAGE_LENGTH) });
    el.messageText.value = '';
  }

  function logout() {
    var session = loadSession();
    if (!socket || !socket.connected || !session) {
      onLoggedOut();
      return;
    }
    socket.emit('logout', { token: session.token });
    // Forget the session locally even when the server never responds.
    setTimeout(function () {
      if (loadSession()) {
        onLoggedOut();
      }
    }, LOGOUT_TIMEOUT_MS);
  }

  // A logout in another tab removes the stored session. The server disconnects
  // this tab's socket too, and this shows the login form at once.
  window.addEventListener('storage', function (event) {
    if (event.key === STORAGE_KEY && event.newValue === null && !pendingCode) {
      closeSocket();
      setStatus('Logged out');
      showLogin();
    }
  });

  el.loginForm.addEventListener('submit', login);
  el.messageForm.addEventListener('submit', sendMessage);
  el.logout.addEventListener('click', logout);

  start();
}());
