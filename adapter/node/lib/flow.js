'use strict';

// The authentication flow of one socket.io namespace: a state machine per
// socket (waiting, authenticated, closed), the auth timeout, token expiry,
// rotation confirmation, logout, and the handshake flow. It follows the wire
// contract of the Go adapter (package adapter of this repository).

const { inspect } = require('node:util');

const { createAuthorityClient, unaryCall } = require('./authority');
const { DEFAULT_TRUSTED_PROXIES, clientAddress } = require('./clientaddress');
const { Codes, codeOf, errorInfo, handshakeError, revokedForLogout, unauthorizedPayload } = require('./errors');
const {
  DEFAULT_ADDRESS_AUTHENTICATE_LIMIT,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MAX_UNAUTHENTICATED_SOCKETS,
  DEFAULT_SOCKET_AUTHENTICATE_LIMIT,
  AddressLimiters,
  limitOptions,
  newBucket,
  payloadSize
} = require('./limits');
const { createMetrics } = require('./metrics');
const { DEFAULT_MAX_TOKEN_BYTES, tokenFromHandshake, tokenFromPayload } = require('./payload');
const { RevocationWatch } = require('./revocations');

// checkOptionNames throws for an option that sockauth does not know.
function checkOptionNames(options) {
  if (options === null || typeof options !== 'object') {
    throw new Error('sockauth: invalid options ' + inspect(options) + ': expected an object');
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) {
      throw new Error('sockauth: unknown option ' + inspect(name) + ', expected one of ' + [...OPTION_NAMES].join(', '));
    }
  }
}

// checkLogger throws unless logger is undefined or has the four methods that
// the middleware calls.
function checkLogger(logger) {
  if (logger === undefined || logger === null) {
    return;
  }
  const missing = ['debug', 'info', 'warn', 'error'].filter((level) => typeof logger[level] !== 'function');
  if (missing.length > 0) {
    throw new Error('sockauth: invalid option logger: missing the method ' + missing.join(', ') +
      '. A logger needs debug, info, warn and error(message, attrs)');
  }
}

// Event names of the wire contract.
const Events = Object.freeze({
  AUTHENTICATE: 'authenticate',
  LOGOUT: 'logout',
  AUTHENTICATED: 'authenticated',
  UNAUTHORIZED: 'unauthorized',
  LOGGED_OUT: 'logged_out'
});

const DEFAULTS = Object.freeze({
  authTimeoutMs: 5000,
  callTimeoutMs: 3000,
  maxTokenBytes: DEFAULT_MAX_TOKEN_BYTES,
  watchRevocations: true,
  revocationRetryMs: 500,
  revocationMaxRetryMs: 30000,
  socketAuthenticateLimit: DEFAULT_SOCKET_AUTHENTICATE_LIMIT,
  addressAuthenticateLimit: DEFAULT_ADDRESS_AUTHENTICATE_LIMIT,
  trustedProxies: DEFAULT_TRUSTED_PROXIES,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxUnauthenticatedSockets: DEFAULT_MAX_UNAUTHENTICATED_SOCKETS
});

// OPTION_NAMES are the options that sockauth accepts: those with a default,
// and the others. A misspelt one is reported instead of leaving its default
// in place.
const OPTION_NAMES = new Set(Object.keys(DEFAULTS).concat([
  'address', 'serviceKey', 'credentials', 'allowInsecureKey', 'protoDir', 'authority',
  'onAuthenticated', 'logger', 'registry', 'metricLabels'
]));

// CAP_LOG_INTERVAL_MS is the minimum time between two log lines about
// sockets rejected by maxUnauthenticatedSockets.
const CAP_LOG_INTERVAL_MS = 10 * 1000;

// setTimeout fires at once for delays above 2^31-1 ms (about 24.8 days), so
// longer deadlines are reached in steps of at most this much.
const MAX_TIMER_MS = 2 ** 31 - 1;

const PHASE_WAITING = 'waiting';
const PHASE_AUTHENTICATED = 'authenticated';
const PHASE_CLOSED = 'closed';

// quietLogger drops debug and info lines and writes warnings and errors to
// the console.
const quietLogger = Object.freeze({
  debug() {},
  info() {},
  warn(message, attrs) {
    console.warn('sockauth: ' + message, attrs || {});
  },
  error(message, attrs) {
    console.error('sockauth: ' + message, attrs || {});
  }
});

// identityOf converts the TokenInfo of an authority response, or throws when
// a required member is missing.
function identityOf(info) {
  if (!info || !info.session_id || !info.subject || !info.expires_at) {
    throw new Error('missing session id, subject or expiry in the authority response');
  }
  return {
    subject: info.subject,
    sessionId: info.session_id,
    tokenId: info.token_id,
    generation: info.generation,
    claims: Object.assign({}, info.claims),
    expiresAt: timestampToDate(info.expires_at),
    sessionExpiresAt: info.session_expires_at ? timestampToDate(info.session_expires_at) : null
  };
}

function timestampToDate(timestamp) {
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1e6));
}

// rfc3339 formats a date as the Go adapter does: UTC, whole seconds.
function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// deadlineOf returns when the socket must be disconnected and the code to
// send then. Tokens carry whole seconds, so a session's last token expires
// up to a second before the session. A token that expires in the session's
// last second, or after the session, ends with session_expired.
function deadlineOf(identity) {
  const session = identity.sessionExpiresAt;
  if (session) {
    const lastSecond = Math.floor(session.getTime() / 1000) * 1000;
    if (identity.expiresAt.getTime() >= lastSecond) {
      const at = session < identity.expiresAt ? session : identity.expiresAt;
      return { at: at, code: Codes.SESSION_EXPIRED };
    }
  }
  return { at: identity.expiresAt, code: Codes.TOKEN_EXPIRED };
}

// Sockauth authenticates the sockets of one socket.io 4.x namespace with a
// sockauth authority. Build it with sockauth(nsp, options).
class Sockauth {
  constructor(nsp, options = {}) {
    this.nsp = nsp;
    checkOptionNames(options);
    this.options = Object.assign({}, DEFAULTS, options);
    checkLogger(this.options.logger);
    this.log = this.options.logger || quietLogger;
    for (const name of ['authTimeoutMs', 'callTimeoutMs', 'revocationRetryMs', 'revocationMaxRetryMs']) {
      const value = this.options[name];
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
        throw new Error('sockauth: invalid option ' + name + ' ' + inspect(value) + ': must be a positive number');
      }
    }
    if (!Number.isSafeInteger(this.options.maxTokenBytes) || this.options.maxTokenBytes <= 0) {
      throw new Error('sockauth: invalid option maxTokenBytes ' + inspect(this.options.maxTokenBytes) +
        ': must be a positive whole number of bytes');
    }
    for (const name of ['watchRevocations', 'allowInsecureKey']) {
      if (this.options[name] !== undefined && typeof this.options[name] !== 'boolean') {
        throw new Error('sockauth: invalid option ' + name + ' ' + inspect(this.options[name]) + ': must be true or false');
      }
    }
    if (this.options.onAuthenticated !== undefined && typeof this.options.onAuthenticated !== 'function') {
      throw new Error('sockauth: invalid option onAuthenticated ' + inspect(this.options.onAuthenticated) +
        ': must be a function(socket, identity)');
    }
    const limits = limitOptions(this.options, DEFAULTS);
    Object.assign(this.options, limits.options);
    this.trustedProxies = limits.trustedProxies;
    for (const network of this.options.trustedProxies) {
      if (/\/0$/.test(String(network).trim())) {
        this.log.warn('trustedProxies trusts every peer of its address family, so any client can name its own address ' +
          'in X-Forwarded-For and escape the per-address limit', { network: network });
      }
    }

    // The gauges read the socket counts, set below, only when scraped.
    this.metrics = createMetrics(this.options, () => ({ waiting: this.waiting, authenticated: this.authenticatedCount }));

    if (this.options.authority) {
      this.authority = this.options.authority;
      this.ownsAuthority = false;
    } else {
      try {
        this.authority = createAuthorityClient(this.options);
      } catch (error) {
        this.metrics.close();
        throw error;
      }
      this.ownsAuthority = true;
    }

    // states maps socket ids to the state of every connected socket, and
    // sessions maps session ids to the states of authenticated sockets.
    this.states = new Map();
    this.sessions = new Map();
    // waiting and authenticatedCount count the sockets in states that wait
    // for authentication and that are authenticated.
    this.waiting = 0;
    this.authenticatedCount = 0;
    this.addressLimiters = new AddressLimiters(this.options.addressAuthenticateLimit);
    // admissions maps sockets to handshake tokens already exchanged, until
    // the socket's connection handler runs.
    this.admissions = new WeakMap();
    // recent maps the sessions revoked in the last 2 × callTimeoutMs to the
    // reason, so that an Authenticate call that raced a revocation does not
    // admit a socket.
    this.recent = new Map();
    this.dropped = 0;
    // rejectedOverCap counts the sockets rejected by
    // maxUnauthenticatedSockets, and lastCapLog is when the last log line
    // about them was written.
    this.rejectedOverCap = 0;
    this.lastCapLog = -Infinity;
    this.closed = false;

    this.watch = null;
    if (this.options.watchRevocations) {
      this.watch = new RevocationWatch(this.authority, {
        retryMs: this.options.revocationRetryMs,
        maxRetryMs: this.options.revocationMaxRetryMs,
        log: this.log,
        onRevocation: (event) => this.revoked(event.session_id, event.reason),
        onGap: () => this.verifySessions()
      });
    }

    nsp.use((socket, next) => {
      this.handshake(socket).then(() => next(), (error) => {
        if (error.data && error.data.type === 'UnauthorizedError') {
          next(error);
          return;
        }
        this.log.error('handshake failed', { socket: socket.id, error: String(error) });
        next(this.rejectHandshake(Codes.AUTHORITY_UNAVAILABLE));
      });
    });
    nsp.on('connection', (socket) => this.connect(socket));
    if (this.watch) {
      this.watch.start();
    }
  }

  // identity returns the identity of an authenticated socket, or null.
  identity(socket) {
    const st = this.states.get(socket.id);
    if (!st || st.phase !== PHASE_AUTHENTICATED) {
      return null;
    }
    return Object.assign({}, st.identity, { claims: Object.assign({}, st.identity.claims) });
  }

  // clientAddress returns the IP address of a socket's client, to which
  // addressAuthenticateLimit applies: the TCP peer, or the address that the
  // trustedProxies in front of the server wrote into X-Forwarded-For. It
  // returns "" when the peer has no IP address.
  clientAddress(socket) {
    const handshake = socket.handshake || {};
    const remoteAddress = handshake.address || (socket.conn && socket.conn.remoteAddress);
    return clientAddress(remoteAddress, handshake.headers, this.trustedProxies);
  }

  // close stops every timer and the revocation watch, removes this
  // instance's metrics from the registry, and closes the authority client
  // that this instance created. It disconnects no socket.
  close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    for (const st of this.states.values()) {
      clearTimeout(st.timer);
    }
    if (this.watch) {
      this.watch.stop();
    }
    this.metrics.close();
    if (this.ownsAuthority) {
      this.authority.close();
    }
  }

  call(method, request) {
    return unaryCall(this.authority, method, request, this.options.callTimeoutMs);
  }

  // handshake is the namespace middleware. A handshake without a token
  // admits the socket unauthenticated. A handshake with a token admits it
  // only when the authority accepts the token. Otherwise the client gets
  // connect_error with the unauthorized message and data.
  async handshake(socket) {
    if (this.closed) {
      throw new Error('sockauth closed');
    }
    let token;
    try {
      token = tokenFromHandshake(socket.handshake, this.options.maxTokenBytes);
    } catch (error) {
      this.log.info('handshake token rejected', { socket: socket.id, reason: Codes.INVALID_TOKEN, error: error.message });
      throw this.rejectHandshake(Codes.INVALID_TOKEN);
    }
    if (token === null) {
      return;
    }
    const address = this.clientAddress(socket);
    if (!this.addressLimiters.allow(address, performance.now())) {
      this.log.info('handshake token rejected', { socket: socket.id, reason: Codes.RATE_LIMITED, address: address });
      throw this.rejectHandshake(Codes.RATE_LIMITED);
    }

    const started = Date.now();
    const callStarted = performance.now();
    const epoch = this.watch ? this.watch.epoch : 0;
    let response;
    try {
      response = await this.call('Authenticate', { token: token });
    } catch (error) {
      const code = codeOf(error);
      this.logCallError('Authenticate', socket.id, code, error);
      this.metrics.observeAuthentication(callStarted, false);
      throw this.rejectHandshake(code);
    }

    let identity;
    try {
      identity = identityOf(response.info);
      if (!response.token) {
        throw new Error('missing token in the authority response');
      }
    } catch (error) {
      this.log.error('authority returned an invalid Authenticate response', { socket: socket.id, error: error.message });
      this.metrics.observeAuthentication(callStarted, false);
      throw this.rejectHandshake(Codes.AUTHORITY_UNAVAILABLE);
    }
    this.metrics.observeAuthentication(callStarted, true);
    this.admissions.set(socket, { token: response.token, identity: identity, started: started, epoch: epoch });
  }

  // connect registers a socket that the namespace admitted. A socket
  // without a handshake token that connects while maxUnauthenticatedSockets
  // sockets wait for authentication is rejected at once.
  connect(socket) {
    const admission = this.admissions.get(socket);
    this.admissions.delete(socket);
    if (!admission && this.overCap()) {
      this.rejectOverCap(socket);
      return;
    }

    const st = {
      socket: socket,
      phase: null,
      identity: null,
      token: '',
      timer: null,
      // bucket is the socket's token bucket of socketAuthenticateLimit, or
      // null when that limit is off.
      bucket: newBucket(this.options.socketAuthenticateLimit, performance.now())
    };
    this.setPhase(st, PHASE_WAITING);
    this.states.set(socket.id, st);

    // Only authenticate and logout reach the application's handlers before
    // the socket authenticates. Other packets are dropped by not calling
    // next, which skips the handlers without an error event.
    socket.use((packet, next) => {
      const event = packet[0];
      if (event === Events.AUTHENTICATE || event === Events.LOGOUT || st.phase === PHASE_AUTHENTICATED) {
        next();
        return;
      }
      this.dropped++;
      this.log.debug('event from unauthenticated socket dropped', { socket: socket.id, event: String(event) });
    });
    socket.on(Events.AUTHENTICATE, (payload) => {
      this.authenticate(st, payload).catch((error) => this.failed(st, 'authenticate', error));
    });
    socket.on(Events.LOGOUT, (payload) => {
      this.logout(st, payload).catch((error) => this.failed(st, 'logout', error));
    });
    socket.on('disconnect', () => this.disconnected(st));

    if (this.closed) {
      return;
    }
    if (!admission) {
      this.armTimer(st, Date.now() + this.options.authTimeoutMs, Codes.AUTHENTICATION_TIMEOUT);
      this.log.debug('socket connected', { socket: socket.id });
      return;
    }

    if (this.revokedSince(admission.identity.sessionId, admission.started)) {
      this.log.info('session revoked during handshake; new token not delivered', this.attrs(st, admission.identity));
      this.reject(st, Codes.REVOKED_TOKEN);
      return;
    }
    this.deliver(st, admission.token, admission.identity, true);
    if (this.watch && (this.watch.epoch !== admission.epoch || Date.now() - admission.started > this.retentionMs())) {
      this.verifySessions();
    }
  }

  // authenticate handles an authenticate event: it exchanges the token for
  // the next one, emits authenticated and restarts the expiry timer, or
  // rejects the socket.
  async authenticate(st, payload) {
    if (st.phase === PHASE_CLOSED) {
      return;
    }
    if (!this.checkPayload(st, Events.AUTHENTICATE, payload)) {
      return;
    }
    if (!this.allowAuthenticate(st)) {
      this.reject(st, Codes.RATE_LIMITED);
      return;
    }
    let token;
    try {
      token = tokenFromPayload(payload, this.options.maxTokenBytes);
    } catch (error) {
      this.log.info('authenticate payload rejected', { socket: st.socket.id, error: error.message });
      this.reject(st, Codes.INVALID_TOKEN);
      return;
    }
    if (token === null) {
      this.log.info('authenticate payload rejected', { socket: st.socket.id, error: 'missing token' });
      this.reject(st, Codes.INVALID_TOKEN);
      return;
    }

    const started = Date.now();
    const callStarted = performance.now();
    let response;
    try {
      response = await this.call('Authenticate', { token: token });
    } catch (error) {
      const code = codeOf(error);
      this.logCallError('Authenticate', st.socket.id, code, error);
      this.metrics.observeAuthentication(callStarted, false);
      this.reject(st, code);
      return;
    }

    let identity;
    try {
      identity = identityOf(response.info);
      if (!response.token) {
        throw new Error('missing token in the authority response');
      }
    } catch (error) {
      this.log.error('authority returned an invalid Authenticate response', { socket: st.socket.id, error: error.message });
      this.metrics.observeAuthentication(callStarted, false);
      this.reject(st, Codes.AUTHORITY_UNAVAILABLE);
      return;
    }

    // The socket may have closed during the call. The new token is then
    // never delivered, and the authority's rotation leeway lets the client
    // present the same token again.
    if (st.phase === PHASE_CLOSED) {
      this.log.info('socket closed during authenticate; new token not delivered', this.attrs(st, identity));
      return;
    }
    if (this.revokedSince(identity.sessionId, started)) {
      this.log.info('session revoked during authenticate; new token not delivered', this.attrs(st, identity));
      this.metrics.observeAuthentication(callStarted, false);
      this.reject(st, Codes.REVOKED_TOKEN);
      return;
    }
    const switched = !st.identity || st.identity.sessionId !== identity.sessionId;
    this.metrics.observeAuthentication(callStarted, true);
    this.deliver(st, response.token, identity, switched);
  }

  // deliver makes st authenticated with identity and emits authenticated
  // with the new token and an ack that confirms the rotation.
  deliver(st, token, identity, newSession) {
    const previous = st.identity;
    this.unindex(st);
    this.setPhase(st, PHASE_AUTHENTICATED);
    st.identity = identity;
    st.token = token;
    this.index(st);
    const deadline = deadlineOf(identity);
    this.armTimer(st, deadline.at.getTime(), deadline.code);

    const info = { expires_at: rfc3339(identity.expiresAt), session_id: identity.sessionId, subject: identity.subject };
    st.socket.emit(Events.AUTHENTICATED, token, info, () => {
      this.confirm(st, token, identity).catch((error) => this.failed(st, 'confirm', error));
    });
    this.log.info(previous ? 'socket refreshed' : 'socket authenticated',
      Object.assign(this.attrs(st, identity), { generation: identity.generation }));

    if (newSession && typeof this.options.onAuthenticated === 'function') {
      // An error of the application's callback is the application's: the
      // socket stays authenticated, and the error is logged.
      try {
        this.options.onAuthenticated(st.socket, this.identity(st.socket));
      } catch (error) {
        this.log.error('onAuthenticated callback failed', Object.assign(this.attrs(st, identity), { error: String(error && error.stack || error) }));
      }
    }
  }

  // confirm calls ConfirmRotation after the client acknowledged a token. A
  // rejection other than an unreachable authority means the session is
  // dead, so the socket is rejected.
  async confirm(st, token, identity) {
    try {
      const response = await this.call('ConfirmRotation', { token: token });
      this.log.debug('rotation acknowledged', Object.assign(this.attrs(st, identity), { confirmed: response.confirmed }));
    } catch (error) {
      const code = codeOf(error);
      if (code === Codes.AUTHORITY_UNAVAILABLE) {
        // The rotation stays unconfirmed until the authority's leeway ends.
        this.log.warn('confirming rotation failed', Object.assign(this.attrs(st, identity), { error: error.message }));
        return;
      }
      this.log.info('rotation confirmation rejected', Object.assign(this.attrs(st, identity), { reason: code }));
      // A logout on another socket can land between authenticated and its
      // ack. The socket then gets logged_out, as the revocation event would
      // give it, whichever of the two arrives first.
      if (revokedForLogout(error)) {
        this.disconnectWith(st, Events.LOGGED_OUT, { reason: 'logout' });
        return;
      }
      this.reject(st, code);
    }
  }

  // logout handles a logout event: it revokes the session of the token in
  // the payload, or of the socket's current token, and disconnects every
  // socket of that session with logged_out.
  async logout(st, payload) {
    if (st.phase === PHASE_CLOSED) {
      return;
    }
    if (!this.checkPayload(st, Events.LOGOUT, payload)) {
      return;
    }
    let token;
    try {
      token = tokenFromPayload(payload, this.options.maxTokenBytes);
    } catch (error) {
      this.log.info('logout payload rejected', { socket: st.socket.id, error: error.message });
      this.reject(st, Codes.INVALID_TOKEN);
      return;
    }
    if (token === null) {
      token = st.token;
    }
    if (!token) {
      this.log.info('logout payload rejected', { socket: st.socket.id, error: 'logout without a token from an unauthenticated socket' });
      this.reject(st, Codes.INVALID_TOKEN);
      return;
    }

    let response;
    try {
      response = await this.call('Logout', { token: token });
    } catch (error) {
      const code = codeOf(error);
      this.logCallError('Logout', st.socket.id, code, error);
      this.reject(st, code);
      return;
    }
    this.endSession(response.session_id, 'logout', st);
    this.log.info('session logged out', { sid: response.session_id, subject: response.subject, socket: st.socket.id });
  }

  // endSession disconnects every open socket of a session, and caller, with
  // the event that reason calls for: logged_out after a logout, unauthorized
  // otherwise.
  endSession(sessionId, reason, caller) {
    const targets = new Set(this.sessions.get(sessionId) || []);
    if (caller && caller.phase !== PHASE_CLOSED) {
      targets.add(caller);
    }
    for (const st of targets) {
      if (reason === 'logout') {
        this.disconnectWith(st, Events.LOGGED_OUT, { reason: 'logout' });
      } else {
        this.reject(st, reason === 'expired' ? Codes.SESSION_EXPIRED : Codes.REVOKED_TOKEN);
      }
    }
    return targets.size;
  }

  // revoked handles a revocation event of the watch stream. reason is the
  // RevocationReason enum name.
  revoked(sessionId, reason) {
    const name = String(reason).replace('REVOCATION_REASON_', '').toLowerCase();
    this.remember(sessionId, name);
    const count = this.endSession(sessionId, name, null);
    if (count > 0) {
      this.log.info('session revoked elsewhere', { sid: sessionId, reason: name, sockets: count });
    }
  }

  // verifySessions calls Verify for one token of every session that has
  // authenticated sockets, and rejects the sockets of sessions that the
  // authority reports dead. Calls that find the authority unreachable
  // disconnect nothing. Concurrent requests share one pass.
  verifySessions() {
    if (this.verifying) {
      this.verifyAgain = true;
      return this.verifying;
    }
    this.verifying = (async () => {
      do {
        this.verifyAgain = false;
        const tokens = new Map();
        for (const [sessionId, members] of this.sessions) {
          for (const st of members) {
            tokens.set(sessionId, st.token);
            break;
          }
        }
        for (const [sessionId, token] of tokens) {
          if (this.closed) {
            return;
          }
          try {
            await this.call('Verify', { token: token });
          } catch (error) {
            const code = codeOf(error);
            if (code === Codes.AUTHORITY_UNAVAILABLE) {
              this.log.warn('session check failed', { sid: sessionId, error: error.message });
              continue;
            }
            if (code === Codes.TOKEN_EXPIRED) {
              continue; // the socket's expiry timer handles it
            }
            this.log.info('session ended elsewhere', { sid: sessionId, reason: code });
            for (const st of new Set(this.sessions.get(sessionId) || [])) {
              this.reject(st, code);
            }
          }
        }
      } while (this.verifyAgain && !this.closed);
    })().finally(() => {
      this.verifying = null;
    });
    return this.verifying;
  }

  // reject emits unauthorized with code and disconnects the socket, unless
  // it is already closed.
  reject(st, code) {
    if (st.phase === PHASE_CLOSED) {
      return;
    }
    const attrs = Object.assign(this.attrs(st, st.identity), { reason: code });
    const address = this.clientAddress(st.socket);
    if (address !== '') {
      attrs.address = address;
    }
    this.log.info('socket unauthorized', attrs);
    this.metrics.rejected(code);
    this.disconnectWith(st, Events.UNAUTHORIZED, unauthorizedPayload(code));
  }

  // rejectHandshake counts a rejected handshake and returns the error that
  // the namespace middleware passes to next.
  rejectHandshake(code) {
    this.metrics.rejected(code);
    return handshakeError(code);
  }

  // disconnectWith closes the socket's state, emits event with payload as
  // its last packet and disconnects it without waiting for the client.
  disconnectWith(st, event, payload) {
    if (st.phase === PHASE_CLOSED) {
      return;
    }
    this.closeState(st);
    st.socket.emit(event, payload);
    st.socket.disconnect(true);
  }

  disconnected(st) {
    this.closeState(st);
    if (this.states.get(st.socket.id) === st) {
      this.states.delete(st.socket.id);
    }
    this.log.debug('socket disconnected', this.attrs(st, st.identity));
  }

  failed(st, operation, error) {
    this.log.error(operation + ' failed', { socket: st.socket.id, error: String(error && error.stack ? error.stack : error) });
    this.reject(st, Codes.AUTHORITY_UNAVAILABLE);
  }

  // closeState moves st to the closed phase, stops its timer and removes it from
  // the session index.
  closeState(st) {
    this.setPhase(st, PHASE_CLOSED);
    clearTimeout(st.timer);
    st.timer = null;
    this.unindex(st);
  }

  // setPhase moves st to phase and keeps the counts of waiting and
  // authenticated sockets.
  setPhase(st, phase) {
    if (st.phase === phase) {
      return;
    }
    if (st.phase === PHASE_WAITING) {
      this.waiting--;
    } else if (st.phase === PHASE_AUTHENTICATED) {
      this.authenticatedCount--;
    }
    if (phase === PHASE_WAITING) {
      this.waiting++;
    } else if (phase === PHASE_AUTHENTICATED) {
      this.authenticatedCount++;
    }
    st.phase = phase;
  }

  // overCap reports whether maxUnauthenticatedSockets sockets already wait
  // for authentication.
  overCap() {
    const max = this.options.maxUnauthenticatedSockets;
    return max > 0 && this.waiting >= max;
  }

  // rejectOverCap disconnects a socket that connected beyond
  // maxUnauthenticatedSockets, with unauthorized (too_many_connections). It
  // logs at most one line every CAP_LOG_INTERVAL_MS, with the count of such
  // sockets so far.
  rejectOverCap(socket) {
    this.rejectedOverCap++;
    const now = performance.now();
    if (now - this.lastCapLog >= CAP_LOG_INTERVAL_MS) {
      this.lastCapLog = now;
      this.log.warn('too many unauthenticated sockets; rejecting new connections', {
        socket: socket.id,
        max_unauthenticated_sockets: this.options.maxUnauthenticatedSockets,
        rejected_total: this.rejectedOverCap
      });
    }
    this.metrics.rejected(Codes.TOO_MANY_CONNECTIONS);
    socket.emit(Events.UNAUTHORIZED, unauthorizedPayload(Codes.TOO_MANY_CONNECTIONS));
    socket.disconnect(true);
  }

  // checkPayload rejects a payload larger than maxPayloadBytes before its
  // token is read, and returns whether the payload is within the limit. A
  // payload that JSON cannot encode is not measured.
  checkPayload(st, event, payload) {
    const size = payloadSize(payload);
    if (size === null || size <= this.options.maxPayloadBytes) {
      return true;
    }
    this.log.info('payload too large', { socket: st.socket.id, event: event, bytes: size, max_bytes: this.options.maxPayloadBytes });
    this.reject(st, Codes.PAYLOAD_TOO_LARGE);
    return false;
  }

  // allowAuthenticate returns whether st may authenticate now under
  // socketAuthenticateLimit and addressAuthenticateLimit, and takes a token
  // from each when it may. A socket over its own limit takes no token from
  // its address.
  allowAuthenticate(st) {
    const now = performance.now();
    if (st.bucket && !st.bucket.take(now)) {
      this.log.debug('socket over its authenticate limit', { socket: st.socket.id });
      return false;
    }
    const address = this.clientAddress(st.socket);
    if (!this.addressLimiters.allow(address, now)) {
      this.log.debug('client address over its authenticate limit', { socket: st.socket.id, address: address });
      return false;
    }
    return true;
  }

  index(st) {
    const sessionId = st.identity.sessionId;
    if (!this.sessions.has(sessionId)) {
      this.sessions.set(sessionId, new Set());
    }
    this.sessions.get(sessionId).add(st);
  }

  unindex(st) {
    if (!st.identity) {
      return;
    }
    const members = this.sessions.get(st.identity.sessionId);
    if (!members) {
      return;
    }
    members.delete(st);
    if (members.size === 0) {
      this.sessions.delete(st.identity.sessionId);
    }
  }

  // armTimer replaces the socket's timer with one that rejects it with code
  // at the time at (milliseconds since the epoch).
  armTimer(st, at, code) {
    clearTimeout(st.timer);
    if (this.closed) {
      return;
    }
    const delay = Math.max(0, at - Date.now());
    st.timer = setTimeout(() => {
      if (Date.now() < at) {
        this.armTimer(st, at, code);
        return;
      }
      this.reject(st, code);
    }, Math.min(delay, MAX_TIMER_MS));
  }

  retentionMs() {
    return 2 * this.options.callTimeoutMs;
  }

  // remember records a revocation for retentionMs, so that an authority call
  // that began before it does not admit a socket of the session.
  remember(sessionId, reason) {
    const now = Date.now();
    for (const [id, entry] of this.recent) {
      if (now - entry.at > this.retentionMs()) {
        this.recent.delete(id);
      }
    }
    this.recent.set(sessionId, { reason: reason, at: now });
  }

  revokedSince(sessionId, since) {
    const entry = this.recent.get(sessionId);
    return Boolean(entry && entry.at >= since);
  }

  logCallError(rpc, socketId, code, error) {
    const info = errorInfo(error);
    if (info && info.reason.startsWith('CALLER_')) {
      this.log.error('the authority rejected this server\'s service key', { socket: socketId, rpc: rpc, reason: info.reason });
      return;
    }
    if (code === Codes.AUTHORITY_UNAVAILABLE) {
      this.log.warn('authority call failed', { socket: socketId, rpc: rpc, reason: code, error: error.message });
    } else {
      this.log.debug('authority rejected the token', { socket: socketId, rpc: rpc, reason: code });
    }
  }

  attrs(st, identity) {
    const attrs = { socket: st.socket.id };
    if (identity) {
      attrs.jti = identity.tokenId;
      attrs.sid = identity.sessionId;
      attrs.subject = identity.subject;
    }
    return attrs;
  }
}

module.exports = { Sockauth, Events, DEFAULTS, deadlineOf };
