// sockauth client helper: logs in, authenticates socket.io connections with
// sockauth and keeps the rotating session token.
//
// A dependency-free ES module for browsers and Node that works with
// socket.io-client 2.x, 3.x and 4.x. docs/clients.md describes its use and
// the event contract.

/** Default name under which the session is stored. */
export const DEFAULT_STORAGE_KEY = 'sockauth.session';

/** Default share of a token's lifetime after which the socket refreshes it. */
export const DEFAULT_REFRESH_RATIO = 0.8;

const DEFAULT_ROTATION_TIMEOUT_MS = 10000;
const DEFAULT_LOGOUT_TIMEOUT_MS = 3000;

// MIN_REFRESH_DELAY_MS keeps a token that is about to expire from being
// refreshed in a tight loop.
const MIN_REFRESH_DELAY_MS = 500;

// MAX_TIMER_DELAY_MS is the longest delay setTimeout accepts: a longer one
// fires at once.
const MAX_TIMER_DELAY_MS = 2147483647;

/**
 * LoginError is the error of login for a rejected request. status is the
 * HTTP status, 0 when the response was not HTTP.
 */
export class LoginError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'LoginError';
    this.status = status;
  }
}

/**
 * Log in: POST credentials as JSON to url and return the login code of the
 * response body {token}. Throws LoginError when the server rejects the
 * login, with the message of the body's error member when there is one.
 * options.fetch replaces the global fetch.
 */
export async function login(url, credentials, options = {}) {
  const fetchFunction = options.fetch || globalThis.fetch;
  if (typeof fetchFunction !== 'function') {
    throw new LoginError('no fetch function: pass options.fetch', 0);
  }

  const response = await fetchFunction(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(credentials),
    credentials: 'same-origin'
  });

  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    // A body that is not JSON is reported by the checks below.
  }

  if (!response.ok) {
    const message = body && typeof body.error === 'string' ? body.error : 'login failed with status ' + response.status;
    throw new LoginError(message, response.status);
  }
  if (!body || typeof body.token !== 'string' || body.token === '') {
    throw new LoginError('invalid login response: missing token', response.status);
  }
  return body.token;
}

/**
 * Return a store with the synchronous Web Storage methods getItem, setItem
 * and removeItem that keeps its values in memory.
 */
export function createMemoryStore() {
  const values = new Map();
  return {
    getItem(key) {
      return values.has(key) ? values.get(key) : null;
    },
    setItem(key, value) {
      values.set(key, String(value));
    },
    removeItem(key) {
      values.delete(key);
    }
  };
}

/** Default name of the IndexedDB database that keeps the session in browsers. */
export const DEFAULT_DATABASE_NAME = 'sockauth';

const OBJECT_STORE_NAME = 'session';

// openDatabase opens databaseName with factory, an IDBFactory, and creates
// its object store on first use.
function openDatabase(factory, databaseName) {
  return new Promise((resolve, reject) => {
    const request = factory.open(databaseName, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(OBJECT_STORE_NAME);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

// runTransaction runs operate on the object store in a transaction of mode
// and resolves with the result of its request once the transaction
// completed, so that a readwrite transaction is committed by then.
function runTransaction(database, mode, operate) {
  return new Promise((resolve, reject) => {
    const transaction = mode === 'readwrite' ? database.transaction(OBJECT_STORE_NAME, mode, { durability: 'strict' }) : database.transaction(OBJECT_STORE_NAME, mode);
    const request = operate(transaction.objectStore(OBJECT_STORE_NAME));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error || request.error);
    transaction.onabort = () => reject(transaction.error || new Error('IndexedDB transaction aborted'));
  });
}

/**
 * Return a store that keeps its values in IndexedDB, the default store in
 * browsers. getItem, setItem and removeItem return promises, and a write
 * resolves once its readwrite transaction has committed. The browser orders
 * transactions on the same object store, so a tab that reads after another
 * tab's write resolved reads the new value. localStorage gives no such
 * guarantee between the processes of one browser. watch(key, listener)
 * calls listener(value) with the new value, null after a removal, when
 * another store of the origin wrote key, and returns a function that stops
 * the calls; it uses BroadcastChannel and does nothing where that is missing.
 *
 * options:
 * - databaseName: default DEFAULT_DATABASE_NAME.
 * - indexedDB: the IDBFactory. Default globalThis.indexedDB.
 * - BroadcastChannel: the BroadcastChannel constructor. Default
 *   globalThis.BroadcastChannel.
 * - fallback: the store to use when the database cannot be opened, as in
 *   some private browsing modes. Without it such a failure rejects every
 *   call.
 */
export function createIndexedDBStore(options = {}) {
  const factory = options.indexedDB || globalThis.indexedDB;
  if (!factory || typeof factory.open !== 'function') {
    throw new TypeError('createIndexedDBStore: IndexedDB is missing: pass options.indexedDB');
  }
  const databaseName = options.databaseName || DEFAULT_DATABASE_NAME;
  const Channel = options.BroadcastChannel === undefined ? globalThis.BroadcastChannel : options.BroadcastChannel;
  const channelName = 'sockauth:' + databaseName;
  const fallback = options.fallback || null;

  let opening = null;
  // database resolves with the open database, or with null when it cannot
  // be opened and there is a fallback.
  function database() {
    if (!opening) {
      opening = openDatabase(factory, databaseName).then((db) => {
        // A newer version opened elsewhere waits until this connection
        // closes. The next call opens the database again.
        db.onversionchange = () => {
          db.close();
          opening = null;
        };
        return db;
      }, (error) => {
        opening = null;
        if (fallback) {
          return null;
        }
        throw error;
      });
    }
    return opening;
  }

  const watchers = new Set();
  let channel = null;

  function notify(key, value) {
    if (typeof Channel !== 'function') {
      return;
    }
    const message = { key: key, value: value };
    if (channel) {
      channel.postMessage(message);
      return;
    }
    const sender = new Channel(channelName);
    sender.postMessage(message);
    sender.close();
  }

  return {
    async getItem(key) {
      const db = await database();
      if (!db) {
        return fallback.getItem(key);
      }
      const value = await runTransaction(db, 'readonly', (objectStore) => objectStore.get(key));
      return typeof value === 'string' ? value : null;
    },

    async setItem(key, value) {
      const db = await database();
      if (db) {
        await runTransaction(db, 'readwrite', (objectStore) => objectStore.put(String(value), key));
      } else {
        await fallback.setItem(key, value);
      }
      notify(key, String(value));
    },

    async removeItem(key) {
      const db = await database();
      if (db) {
        await runTransaction(db, 'readwrite', (objectStore) => objectStore.delete(key));
      } else {
        await fallback.removeItem(key);
      }
      notify(key, null);
    },

    watch(key, listener) {
      if (typeof Channel !== 'function') {
        return () => {};
      }
      const watcher = { key: key, listener: listener };
      watchers.add(watcher);
      if (!channel) {
        channel = new Channel(channelName);
        channel.onmessage = (event) => {
          const message = event.data || {};
          for (const each of Array.from(watchers)) {
            if (each.key === message.key) {
              each.listener(typeof message.value === 'string' ? message.value : null);
            }
          }
        };
      }
      return () => {
        watchers.delete(watcher);
        if (watchers.size === 0 && channel) {
          channel.close();
          channel = null;
        }
      };
    }
  };
}

// processStore is the default store where there is neither IndexedDB nor
// localStorage, shared by every session of the process as the browser's
// storage is by every tab.
const processStore = createMemoryStore();

// browserStore is the default store where there is IndexedDB, created on
// first use.
let browserStore = null;

function localStore() {
  try {
    if (globalThis.localStorage) {
      return globalThis.localStorage;
    }
  } catch (e) {
    // Reading localStorage throws where storage is disabled.
  }
  return processStore;
}

/**
 * Return the store that connect uses without options.store: one
 * createIndexedDBStore store where there is IndexedDB, else localStorage,
 * else one in-memory store per process.
 *
 * NOTE: a session that an older version of this module kept in localStorage
 * is not moved to IndexedDB, so such a browser logs in once more.
 */
export function defaultStore() {
  if (globalThis.indexedDB) {
    if (!browserStore) {
      browserStore = createIndexedDBStore({ fallback: localStore() });
    }
    return browserStore;
  }
  return localStore();
}

// localLocks holds, by lock name, the promise that settles when the last
// queued holder releases the lock.
const localLocks = new Map();

// withLocalLock runs fn once every earlier holder of name in this process
// released it, and holds the lock until fn settles.
function withLocalLock(name, fn) {
  const previous = localLocks.get(name) || Promise.resolve();
  let release;
  const holding = new Promise((resolve) => {
    release = resolve;
  });
  const tail = previous.then(() => holding);
  localLocks.set(name, tail);

  return previous.then(async () => {
    try {
      return await fn();
    } finally {
      release();
      if (localLocks.get(name) === tail) {
        localLocks.delete(name);
      }
    }
  });
}

// withLock runs fn holding the exclusive lock name: a Web Lock shared by the
// tabs of an origin when locks is the Web Locks API, else a lock of this
// process.
function withLock(locks, name, fn) {
  if (locks && typeof locks.request === 'function') {
    return locks.request(name, { mode: 'exclusive' }, () => fn());
  }
  return withLocalLock(name, fn);
}

function defaultLocks() {
  return globalThis.navigator && globalThis.navigator.locks ? globalThis.navigator.locks : null;
}

// supportsHandshake reports whether io, the io function of socket.io-client,
// sends an auth payload with the connection. socket.io-client 2.x exports
// protocol 4 and has no auth option; 3.x exports 5, and 4.x does not export
// the protocol.
function supportsHandshake(io) {
  return !(typeof io.protocol === 'number' && io.protocol < 5);
}

function parseSession(value) {
  if (typeof value !== 'string' || value === '') {
    return null;
  }
  try {
    const session = JSON.parse(value);
    if (session && typeof session.token === 'string' && session.token !== '') {
      return session;
    }
  } catch (e) {
    // A value this module did not write is no session.
  }
  return null;
}

// Emitter is a minimal event emitter with on, off, once and emit.
class Emitter {
  constructor() {
    this.listeners = new Map();
  }

  on(event, listener) {
    if (!this.listeners.has(event)) {
      this.listeners.set(event, []);
    }
    this.listeners.get(event).push(listener);
    return this;
  }

  off(event, listener) {
    const list = this.listeners.get(event);
    if (list) {
      const index = list.indexOf(listener);
      if (index >= 0) {
        list.splice(index, 1);
      }
    }
    return this;
  }

  once(event, listener) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  emit(event, ...args) {
    for (const listener of (this.listeners.get(event) || []).slice()) {
      listener(...args);
    }
  }
}

/**
 * Session is an authenticated socket.io connection that connect returns. It
 * emits:
 *
 * - "authenticated" (info, token) after each authentication and refresh,
 *   with info {expires_at, session_id, subject} and the new session token;
 * - "unauthorized" (error) when the server rejected the token, with error
 *   {message, data: {message, code, type}}; the server has then closed the
 *   socket, and socket.io-client does not reconnect;
 * - "logged_out" ({reason, remote}) after a logout of this session, remote
 *   when it did not come from this Session's logout, such as a logout in
 *   another tab;
 * - "token" (info) when another tab stored a new token of the session.
 *
 * socket is the socket.io-client socket, for the application's own events.
 */
export class Session extends Emitter {
  constructor(io, url, options = {}) {
    super();

    this.store = options.store || defaultStore();
    this.storageKey = options.storageKey || DEFAULT_STORAGE_KEY;
    this.locks = options.locks === undefined ? defaultLocks() : options.locks;
    this.lockName = options.lockName || 'sockauth:' + this.storageKey;
    this.refreshRatio = options.refreshRatio || DEFAULT_REFRESH_RATIO;
    this.rotationTimeoutMs = options.rotationTimeoutMs || DEFAULT_ROTATION_TIMEOUT_MS;
    this.logoutTimeoutMs = options.logoutTimeoutMs || DEFAULT_LOGOUT_TIMEOUT_MS;
    this.handshake = options.handshake === undefined || options.handshake === 'auto' ? supportsHandshake(io) : Boolean(options.handshake);

    // code is the login code until a socket exchanges it. It is single-use,
    // so after the first authenticated the stored token takes over.
    this.code = options.code || null;
    // socketToken is the newest token this socket received, whose expiry the
    // server enforces on it.
    this.socketToken = null;
    // rotation is the rotation in progress: {presented, finish}.
    this.rotation = null;
    this.refreshTimer = null;
    // ended is set once the session logged out or was closed.
    this.ended = false;
    // loggingOut is set while logout waits for the server.
    this.loggingOut = false;

    const socketOptions = Object.assign({}, options.socketOptions);
    if (this.handshake) {
      const extraAuth = socketOptions.auth;
      socketOptions.auth = (callback) => this.authenticateHandshake(extraAuth, callback);
    }

    this.socket = io(url, socketOptions);
    this.listen();
  }

  listen() {
    const socket = this.socket;
    if (!this.handshake) {
      socket.on('connect', () => this.authenticateEvent());
    }
    socket.on('authenticated', (token, info, ack) => {
      this.onAuthenticated(token, info, ack);
    });
    socket.on('unauthorized', (error) => this.onUnauthorized(error));
    socket.on('logged_out', (payload) => this.onLoggedOut(payload || {}, !this.loggingOut));
    socket.on('connect_error', (error) => this.onConnectError(error));
    socket.on('disconnect', () => {
      this.clearRefresh();
      this.finishRotation();
    });

    // A store with watch reports the writes of other tabs itself, and
    // localStorage reports them with storage events.
    this.unwatch = null;
    this.onStorage = (event) => {
      if (event.key === this.storageKey && (event.storageArea === undefined || event.storageArea === this.store)) {
        this.onStoredChange(event.newValue);
      }
    };
    if (typeof this.store.watch === 'function') {
      this.unwatch = this.store.watch(this.storageKey, (value) => this.onStoredChange(value));
    } else if (this.store === globalThis.localStorage && typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('storage', this.onStorage);
    }
  }

  /** Read the stored session {token, expires_at, session_id, subject}, or null. */
  async stored() {
    return parseSession(await this.store.getItem(this.storageKey));
  }

  async save(token, info) {
    const session = Object.assign({}, info, { token: token });
    await this.store.setItem(this.storageKey, JSON.stringify(session));
  }

  async clearStored() {
    await this.store.removeItem(this.storageKey);
  }

  // tokenToPresent returns the login code while it is unused, else the
  // newest stored token, which another tab may have rotated.
  async tokenToPresent() {
    if (this.code) {
      return this.code;
    }
    const session = await this.stored();
    return session ? session.token : null;
  }

  // rotate runs one rotation: it presents a token with present and waits
  // for its outcome, holding the rotation lock that all tabs share. Another
  // tab therefore never presents a token that this one is replacing, which
  // the authority would take for reuse once the replacement is confirmed.
  rotate(present) {
    return withLock(this.locks, this.lockName, async () => {
      if (this.ended) {
        present(null);
        return;
      }
      const token = await this.tokenToPresent();
      if (!token) {
        present(null);
        this.onLoggedOut({ reason: 'logout' }, true);
        return;
      }

      const outcome = new Promise((resolve) => {
        const timer = setTimeout(resolve, this.rotationTimeoutMs);
        this.rotation = {
          presented: token,
          finish: () => {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      present(token);
      await outcome;
    });
  }

  finishRotation() {
    const rotation = this.rotation;
    this.rotation = null;
    if (rotation) {
      rotation.finish();
    }
  }

  authenticateHandshake(extraAuth, callback) {
    const base = typeof extraAuth === 'object' && extraAuth !== null ? extraAuth : {};
    this.rotate((token) => {
      callback(token ? Object.assign({}, base, { token: token }) : base);
    }).catch((error) => this.emit('error', error));
  }

  authenticateEvent() {
    this.rotate((token) => {
      if (token) {
        this.socket.emit('authenticate', { token: token });
      }
    }).catch((error) => this.emit('error', error));
  }

  async onAuthenticated(token, info, ack) {
    info = info || {};
    try {
      // Store before the ack: once the authority learns of the ack, the
      // presented token is dead, and a reload must find the new one.
      await this.save(token, info);
    } catch (error) {
      this.emit('error', error);
    }
    this.code = null;
    this.socketToken = token;
    if (typeof ack === 'function') {
      ack();
    }
    this.finishRotation();
    this.scheduleRefresh(info.expires_at);
    this.emit('authenticated', info, token);
  }

  async onUnauthorized(error) {
    const presented = this.rotation ? this.rotation.presented : this.socketToken;
    this.finishRotation();
    this.clearRefresh();

    const code = error && error.data ? error.data.code : undefined;
    if (presented === this.code) {
      this.code = null;
    }
    try {
      await this.forgetRejected(code, presented);
    } catch (storeError) {
      this.emit('error', storeError);
    }
    this.emit('unauthorized', error);
  }

  // forgetRejected removes the stored token when the rejection means that it
  // is dead. A revoked or expired session always removes it. An invalid or
  // expired token removes it only when it is the one presented, because
  // another tab may have stored a newer one.
  async forgetRejected(code, presented) {
    if (code === 'revoked_token' || code === 'session_expired') {
      await this.clearStored();
      return;
    }
    if (code === 'invalid_token' || code === 'token_expired') {
      const session = await this.stored();
      if (session && session.token === presented) {
        await this.clearStored();
      }
    }
  }

  onConnectError(error) {
    // socket.io-client 3.x and 4.x report a token rejected in the handshake
    // as connect_error with the data of unauthorized, and do not retry.
    if (error && error.data && error.data.type === 'UnauthorizedError') {
      this.onUnauthorized({ message: error.message, data: error.data });
      return;
    }
    this.finishRotation();
  }

  async onLoggedOut(payload, remote) {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.code = null;
    this.clearRefresh();
    this.finishRotation();
    try {
      await this.clearStored();
    } catch (error) {
      this.emit('error', error);
    }
    if (remote) {
      this.closeSocket();
    }
    this.emit('logged_out', Object.assign({}, payload, { remote: remote }));
  }

  onStoredChange(value) {
    if (this.ended) {
      return;
    }
    const session = parseSession(value);
    if (!session) {
      // Another tab logged out, so this session is over too.
      this.onLoggedOut({ reason: 'logout' }, true);
      return;
    }
    const info = Object.assign({}, session);
    delete info.token;
    this.emit('token', info);
  }

  scheduleRefresh(expiresAt) {
    this.clearRefresh();
    const remaining = Date.parse(expiresAt) - Date.now();
    if (!(remaining > 0)) {
      return;
    }
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(MIN_REFRESH_DELAY_MS, remaining * this.refreshRatio));
    this.refreshTimer = setTimeout(() => this.refresh(), delay);
  }

  clearRefresh() {
    if (this.refreshTimer !== null) {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = null;
    }
  }

  /**
   * Refresh the socket's token now with the newest stored token. A
   * disconnected socket authenticates again when it reconnects, so it is
   * not refreshed.
   */
  refresh() {
    this.clearRefresh();
    if (this.ended || !this.socket.connected) {
      return Promise.resolve();
    }
    return this.rotate((token) => {
      if (token && this.socket.connected) {
        this.socket.emit('authenticate', { token: token });
      } else {
        this.finishRotation();
      }
    });
  }

  /**
   * Log out: revoke the session on the server, forget the stored token and
   * close the socket. Resolves with true when the server confirmed the
   * logout with logged_out, false when it could not be reached in time.
   */
  async logout() {
    const stored = await this.stored();
    const token = stored ? stored.token : this.socketToken;

    let confirmed = false;
    this.loggingOut = true;
    if (token && this.socket.connected && !this.ended) {
      confirmed = await new Promise((resolve) => {
        const done = (result) => {
          clearTimeout(timer);
          this.off('logged_out', onLoggedOut);
          this.off('unauthorized', onRejected);
          resolve(result);
        };
        const onLoggedOut = () => done(true);
        const onRejected = () => done(false);
        const timer = setTimeout(() => done(false), this.logoutTimeoutMs);
        this.on('logged_out', onLoggedOut);
        this.on('unauthorized', onRejected);
        this.socket.emit('logout', { token: token });
      });
    }

    if (!this.ended) {
      await this.onLoggedOut({ reason: 'logout' }, false);
    }
    this.close();
    return confirmed;
  }

  closeSocket() {
    if (typeof this.socket.close === 'function') {
      this.socket.close();
    }
  }

  /** Close the socket and stop refreshing. The stored token stays. */
  close() {
    this.ended = true;
    this.clearRefresh();
    this.finishRotation();
    if (this.unwatch) {
      this.unwatch();
      this.unwatch = null;
    }
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('storage', this.onStorage);
    }
    this.closeSocket();
  }
}

/**
 * Connect a socket with io, the io function of socket.io-client 2.x, 3.x or
 * 4.x, to url and keep it authenticated. Returns a Session.
 *
 * options:
 * - code: the login code from login; without it the stored token is used.
 * - store: where the session is kept, with the Web Storage methods getItem,
 *   setItem and removeItem, synchronous or returning promises, and
 *   optionally watch as createIndexedDBStore has it. Default: one
 *   createIndexedDBStore store where there is IndexedDB, else localStorage,
 *   else one in-memory store per process.
 * - storageKey: the key of the session in the store. Default
 *   DEFAULT_STORAGE_KEY.
 * - socketOptions: options passed to io.
 * - handshake: true to send the token with the connection handshake, false
 *   to send it with the authenticate event. Default: the handshake with
 *   socket.io-client 3.x and later.
 * - refreshRatio: share of a token's lifetime after which it is refreshed.
 *   Default DEFAULT_REFRESH_RATIO.
 * - locks: the Web Locks API that serialises rotations across tabs, or null
 *   for a lock of this process only. Default: navigator.locks when present.
 *
 * Throws when there is neither a code nor a stored session, except with a
 * store whose getItem returns a promise, such as the default store in
 * browsers, which only the first connection attempt reads. storedSession
 * checks such a store beforehand.
 */
export function connect(io, url, options = {}) {
  if (typeof io !== 'function') {
    throw new TypeError('connect: io must be the io function of socket.io-client');
  }
  const store = options.store || defaultStore();
  const key = options.storageKey || DEFAULT_STORAGE_KEY;
  if (!options.code) {
    const value = store.getItem(key);
    if (!(value && typeof value.then === 'function') && !parseSession(value)) {
      throw new Error('connect: no login code and no stored session: log in first');
    }
  }
  return new Session(io, url, Object.assign({}, options, { store: store }));
}

/**
 * Read the stored session {token, expires_at, session_id, subject} from
 * options.store under options.storageKey, with the defaults of connect, and
 * resolve with it, or with null when there is none.
 */
export async function storedSession(options = {}) {
  const store = options.store || defaultStore();
  return parseSession(await store.getItem(options.storageKey || DEFAULT_STORAGE_KEY));
}
