import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import { IDBFactory } from 'fake-indexeddb';

import { connect, createIndexedDBStore, createMemoryStore, DEFAULT_STORAGE_KEY, defaultStore, login, LoginError, storedSession } from '../sockauth.js';
import { createFakeIo, createRecordingLocks, info, sleep } from './fakes.js';

// storeWith returns a memory store that contains a session with token.
function storeWith(token) {
  const store = createMemoryStore();
  if (token) {
    store.setItem(DEFAULT_STORAGE_KEY, JSON.stringify(Object.assign(info(), { token: token })));
  }
  return store;
}

function storedToken(store) {
  const value = store.getItem(DEFAULT_STORAGE_KEY);
  return value === null ? null : JSON.parse(value).token;
}

// unauthorized returns the payload of an unauthorized event with code.
function unauthorized(code) {
  return { message: code, data: { message: code, code: code, type: 'UnauthorizedError' } };
}

const sessions = [];

// open connects with options, with a process lock unless options set locks,
// and closes the session after the test.
function open(io, options) {
  const session = connect(io, 'http://127.0.0.1:1', Object.assign({ locks: null }, options));
  sessions.push(session);
  return session;
}

afterEach(() => {
  for (const session of sessions.splice(0)) {
    session.close();
  }
});

describe('login', () => {
  function fakeFetch(status, body) {
    const calls = [];
    const fetch = async (url, init) => {
      calls.push({ url: url, init: init });
      return {
        ok: status >= 200 && status < 300,
        status: status,
        json: async () => {
          if (typeof body === 'string') {
            throw new SyntaxError('not JSON');
          }
          return body;
        }
      };
    };
    fetch.calls = calls;
    return fetch;
  }

  test('returns the code', async () => {
    const fetch = fakeFetch(200, { token: 'code-1', expires_at: '2030-01-01T00:00:00Z' });

    const code = await login('/login', { username: 'alice', password: 'pw' }, { fetch: fetch });

    assert.equal(code, 'code-1');
    assert.equal(fetch.calls.length, 1);
    assert.equal(fetch.calls[0].url, '/login');
    assert.equal(fetch.calls[0].init.method, 'POST');
    assert.equal(fetch.calls[0].init.headers['Content-Type'], 'application/json');
    assert.deepEqual(JSON.parse(fetch.calls[0].init.body), { username: 'alice', password: 'pw' });
  });

  test('rejected login carries status and message', async () => {
    const fetch = fakeFetch(401, { error: 'invalid username or password' });

    await assert.rejects(login('/login', {}, { fetch: fetch }), (error) => {
      assert.ok(error instanceof LoginError);
      assert.equal(error.status, 401);
      assert.equal(error.message, 'invalid username or password');
      return true;
    });
  });

  test('body that is not JSON', async () => {
    await assert.rejects(login('/login', {}, { fetch: fakeFetch(502, 'Bad Gateway') }), {
      name: 'LoginError',
      status: 502,
      message: 'login failed with status 502'
    });
  });

  test('response without token', async () => {
    await assert.rejects(login('/login', {}, { fetch: fakeFetch(200, {}) }), {
      name: 'LoginError',
      message: 'invalid login response: missing token'
    });
  });
});

describe('connect', () => {
  test('requires a code or a stored session', () => {
    assert.throws(() => connect(createFakeIo(4), 'http://127.0.0.1:1', { store: createMemoryStore() }), /no login code and no stored session/);
    assert.throws(() => connect({}, 'http://127.0.0.1:1', { code: 'c' }), TypeError);
  });

  test('2.x client authenticates with the event, then with the stored token', async () => {
    const io = createFakeIo(4);
    const store = createMemoryStore();
    const session = open(io, { code: 'code-1', store: store });
    const events = [];
    session.on('authenticated', (details, token) => events.push({ details: details, token: token }));
    const socket = io.sockets[0];

    const first = await socket.emitted('authenticate');
    assert.deepEqual(first.args, [{ token: 'code-1' }]);
    assert.equal(socket.options.auth, undefined, '2.x has no auth option');

    let acked = false;
    socket.fire('authenticated', 'token-1', info(), () => {
      acked = true;
    });
    await sleep(10);
    assert.ok(acked, 'authenticated was not acknowledged');
    assert.equal(storedToken(store), 'token-1');
    assert.equal(events.length, 1);
    assert.equal(events[0].token, 'token-1');
    assert.equal(events[0].details.session_id, 'sid-1');

    // A reconnect presents the stored token, not the spent code.
    socket.drop();
    socket.open();
    const second = await socket.emitted('authenticate', 2);
    assert.deepEqual(second.args, [{ token: 'token-1' }]);
  });

  test('4.x client authenticates in the handshake, then with the stored token', async () => {
    const io = createFakeIo(undefined);
    const store = createMemoryStore();
    open(io, { code: 'code-1', store: store, socketOptions: { auth: { client: 'test' } } });
    const socket = io.sockets[0];

    assert.deepEqual(await socket.handshake(1), { client: 'test', token: 'code-1' });
    socket.fire('authenticated', 'token-1', info(), () => {});
    await sleep(10);
    assert.equal(storedToken(store), 'token-1');
    assert.equal(socket.sent.filter((entry) => entry.event === 'authenticate').length, 0, 'the handshake needs no authenticate event');

    socket.drop();
    socket.open();
    assert.deepEqual(await socket.handshake(2), { client: 'test', token: 'token-1' });
  });

  test('3.x client uses the handshake, and handshake false forces the event', async () => {
    const io3 = createFakeIo(5);
    open(io3, { code: 'code-1', store: createMemoryStore() });
    assert.deepEqual(await io3.sockets[0].handshake(1), { token: 'code-1' });

    // Another storage key gives another lock, which the unanswered first
    // rotation does not hold.
    const io4 = createFakeIo(undefined);
    open(io4, { code: 'code-2', store: createMemoryStore(), storageKey: 'second', handshake: false });
    const sent = await io4.sockets[0].emitted('authenticate');
    assert.deepEqual(sent.args, [{ token: 'code-2' }]);
  });

  test('stores the token before acknowledging it', async () => {
    const order = [];
    const values = new Map();
    const store = {
      async getItem(key) {
        return values.has(key) ? values.get(key) : null;
      },
      async setItem(key, value) {
        await sleep(20);
        values.set(key, value);
        order.push('stored');
      },
      async removeItem(key) {
        values.delete(key);
      }
    };
    const io = createFakeIo(4);
    open(io, { code: 'code-1', store: store });
    const socket = io.sockets[0];
    await socket.emitted('authenticate');

    socket.fire('authenticated', 'token-1', info(), () => order.push('acked'));
    await sleep(50);

    assert.deepEqual(order, ['stored', 'acked']);
  });
});

describe('refresh', () => {
  test('refreshes at 80% of the lifetime with the newest stored token', async () => {
    const io = createFakeIo(4);
    const store = createMemoryStore();
    open(io, { code: 'code-1', store: store });
    const socket = io.sockets[0];
    await socket.emitted('authenticate');

    const issued = Date.now();
    socket.fire('authenticated', 'token-1', info(1000), () => {});
    await sleep(10);
    // Another tab rotated the shared token meanwhile.
    store.setItem(DEFAULT_STORAGE_KEY, JSON.stringify(Object.assign(info(), { token: 'token-from-other-tab' })));

    const refresh = await socket.emitted('authenticate', 2, 3000);
    const elapsed = Date.now() - issued;
    assert.deepEqual(refresh.args, [{ token: 'token-from-other-tab' }]);
    // expires_at has whole seconds, so the lifetime is 0 to 1 s and 80% of
    // it at most 800 ms. The timer waits at least 500 ms.
    assert.ok(elapsed >= 450, 'refresh after ' + elapsed + ' ms, expected at least the 500 ms floor');
    assert.ok(elapsed < 1000, 'refresh after ' + elapsed + ' ms, expected about 80% of the lifetime');
  });

  test('skips a disconnected socket', async () => {
    const io = createFakeIo(4);
    const session = open(io, { code: 'code-1', store: createMemoryStore() });
    const socket = io.sockets[0];
    await socket.emitted('authenticate');
    socket.fire('authenticated', 'token-1', info(), () => {});
    await sleep(10);

    socket.drop();
    await session.refresh();

    assert.equal(socket.sent.filter((entry) => entry.event === 'authenticate').length, 1);
  });
});

describe('rotation lock', () => {
  test('serialises rotations that share a store', async () => {
    const io = createFakeIo(4);
    const store = storeWith('token-0');
    open(io, { store: store });
    open(io, { store: store });
    const [first, second] = io.sockets;

    assert.deepEqual((await first.emitted('authenticate')).args, [{ token: 'token-0' }]);
    await sleep(50);
    assert.equal(second.sent.length, 0, 'the second socket presented a token during the first rotation');

    first.fire('authenticated', 'token-1', info(), () => {});

    // The second socket presents the successor, never the replaced token.
    assert.deepEqual((await second.emitted('authenticate')).args, [{ token: 'token-1' }]);
  });

  test('a rotation without an answer releases the lock after its timeout', async () => {
    const io = createFakeIo(4);
    const store = storeWith('token-0');
    open(io, { store: store, rotationTimeoutMs: 100 });
    open(io, { store: store, rotationTimeoutMs: 100 });
    const [first, second] = io.sockets;

    await first.emitted('authenticate');
    const started = Date.now();
    await second.emitted('authenticate');
    assert.ok(Date.now() - started >= 80, 'the second rotation started before the timeout');
  });

  test('uses the Web Locks API when given', async () => {
    const locks = createRecordingLocks();
    const io = createFakeIo(4);
    open(io, { code: 'code-1', store: createMemoryStore(), locks: locks });

    await io.sockets[0].emitted('authenticate');
    assert.deepEqual(locks.names, ['sockauth:' + DEFAULT_STORAGE_KEY]);
  });
});

describe('rejections', () => {
  const cases = [
    { code: 'revoked_token', stored: 'token-1', kept: false },
    { code: 'session_expired', stored: 'token-1', kept: false },
    { code: 'token_expired', stored: 'token-1', kept: false },
    { code: 'token_expired', stored: 'token-newer', kept: true },
    { code: 'invalid_token', stored: 'token-newer', kept: true },
    { code: 'authentication_timeout', stored: 'token-1', kept: true },
    { code: 'authority_unavailable', stored: 'token-1', kept: true }
  ];
  for (const tc of cases) {
    test(tc.code + ' with stored ' + tc.stored + (tc.kept ? ' keeps it' : ' forgets it'), async () => {
      const io = createFakeIo(4);
      const store = storeWith('token-1');
      const session = open(io, { store: store });
      const seen = [];
      session.on('unauthorized', (error) => seen.push(error));
      const socket = io.sockets[0];
      await socket.emitted('authenticate');
      store.setItem(DEFAULT_STORAGE_KEY, JSON.stringify(Object.assign(info(), { token: tc.stored })));

      socket.fire('unauthorized', unauthorized(tc.code));
      await sleep(10);

      assert.equal(storedToken(store), tc.kept ? tc.stored : null);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].data.code, tc.code);
    });
  }

  test('connect_error from a rejected handshake is reported as unauthorized', async () => {
    const io = createFakeIo(undefined);
    const store = storeWith('token-1');
    const session = open(io, { store: store });
    const seen = [];
    session.on('unauthorized', (error) => seen.push(error));
    const socket = io.sockets[0];
    await socket.handshake(1);

    const error = new Error('token revoked');
    error.data = { message: 'token revoked', code: 'revoked_token', type: 'UnauthorizedError' };
    socket.fire('connect_error', error);
    await sleep(10);

    assert.deepEqual(seen, [{ message: 'token revoked', data: error.data }]);
    assert.equal(storedToken(store), null);
  });

  test('connect_error of the transport is no rejection', async () => {
    const io = createFakeIo(undefined);
    const store = storeWith('token-1');
    const session = open(io, { store: store });
    const seen = [];
    session.on('unauthorized', (error) => seen.push(error));
    const socket = io.sockets[0];
    await socket.handshake(1);

    socket.fire('connect_error', new Error('xhr poll error'));
    await sleep(10);

    assert.equal(seen.length, 0);
    assert.equal(storedToken(store), 'token-1');
  });
});

describe('logout', () => {
  async function authenticated(io, store) {
    const session = open(io, { code: 'code-1', store: store });
    const socket = io.sockets[io.sockets.length - 1];
    await socket.emitted('authenticate');
    socket.fire('authenticated', 'token-1', info(), () => {});
    await sleep(10);
    return { session: session, socket: socket };
  }

  test('revokes the session and forgets the token', async () => {
    const io = createFakeIo(4);
    const store = createMemoryStore();
    const { session, socket } = await authenticated(io, store);
    const seen = [];
    session.on('logged_out', (payload) => seen.push(payload));

    const done = session.logout();
    const sent = await socket.emitted('logout');
    assert.deepEqual(sent.args, [{ token: 'token-1' }]);
    socket.fire('logged_out', { reason: 'logout' });

    assert.equal(await done, true);
    assert.equal(storedToken(store), null);
    assert.ok(socket.closed, 'the socket stayed open');
    assert.deepEqual(seen, [{ reason: 'logout', remote: false }]);
  });

  test('without an answer forgets the token after the timeout', async () => {
    const io = createFakeIo(4);
    const store = createMemoryStore();
    const { session } = await authenticated(io, store);
    session.logoutTimeoutMs = 50;

    assert.equal(await session.logout(), false);
    assert.equal(storedToken(store), null);
  });

  test('logged_out from the server is remote', async () => {
    const io = createFakeIo(4);
    const store = createMemoryStore();
    const { session, socket } = await authenticated(io, store);
    const seen = [];
    session.on('logged_out', (payload) => seen.push(payload));

    socket.fire('logged_out', { reason: 'logout' });
    await sleep(10);

    assert.deepEqual(seen, [{ reason: 'logout', remote: true }]);
    assert.equal(storedToken(store), null);
  });
});

describe('storage events', () => {
  test('pick up tokens and logouts of other tabs', async () => {
    const target = new EventTarget();
    const localStorage = createMemoryStore();
    globalThis.localStorage = localStorage;
    globalThis.addEventListener = target.addEventListener.bind(target);
    globalThis.removeEventListener = target.removeEventListener.bind(target);
    try {
      const io = createFakeIo(4);
      const session = open(io, { code: 'code-1' });
      const socket = io.sockets[0];
      await socket.emitted('authenticate');
      socket.fire('authenticated', 'token-1', info(), () => {});
      await sleep(10);
      assert.equal(storedToken(localStorage), 'token-1', 'the default store is localStorage');

      const tokens = [];
      const logouts = [];
      session.on('token', (details) => tokens.push(details));
      session.on('logged_out', (payload) => logouts.push(payload));

      const change = new Event('storage');
      change.key = DEFAULT_STORAGE_KEY;
      change.newValue = JSON.stringify(Object.assign(info(7200000, 'sid-1'), { token: 'token-2' }));
      change.storageArea = localStorage;
      target.dispatchEvent(change);
      assert.equal(tokens.length, 1);
      assert.equal(tokens[0].session_id, 'sid-1');
      assert.equal(tokens[0].token, undefined, 'the token event exposes the token');

      const removal = new Event('storage');
      removal.key = DEFAULT_STORAGE_KEY;
      removal.newValue = null;
      removal.storageArea = localStorage;
      target.dispatchEvent(removal);
      await sleep(10);
      assert.deepEqual(logouts, [{ reason: 'logout', remote: true }]);
      assert.ok(socket.closed, 'the socket stayed open after a logout in another tab');
    } finally {
      delete globalThis.localStorage;
      delete globalThis.addEventListener;
      delete globalThis.removeEventListener;
    }
  });
});

describe('IndexedDB store', () => {
  test('reads, writes and removes values', async () => {
    const store = createIndexedDBStore({ indexedDB: new IDBFactory(), BroadcastChannel: null });
    assert.equal(await store.getItem('key'), null);

    await store.setItem('key', 'value-1');
    assert.equal(await store.getItem('key'), 'value-1');
    await store.setItem('key', 'value-2');
    assert.equal(await store.getItem('key'), 'value-2');

    await store.removeItem('key');
    assert.equal(await store.getItem('key'), null);
  });

  test('committed write visible to another connection', async () => {
    const factory = new IDBFactory();
    const writer = createIndexedDBStore({ indexedDB: factory, BroadcastChannel: null });
    const reader = createIndexedDBStore({ indexedDB: factory, BroadcastChannel: null });
    assert.equal(await reader.getItem('key'), null);

    for (let i = 1; i <= 20; i++) {
      await writer.setItem('key', 'value-' + i);
      assert.equal(await reader.getItem('key'), 'value-' + i, 'write ' + i);
    }
  });

  test('watch reports writes and removals of other stores', async () => {
    const factory = new IDBFactory();
    const databaseName = 'watch-test';
    const writer = createIndexedDBStore({ indexedDB: factory, databaseName: databaseName });
    const watcher = createIndexedDBStore({ indexedDB: factory, databaseName: databaseName });
    const other = createIndexedDBStore({ indexedDB: factory, databaseName: 'other-database' });

    const values = [];
    const unwatch = watcher.watch('key', (value) => values.push(value));
    const ownValues = [];
    const unwatchOwn = writer.watch('key', (value) => ownValues.push(value));
    try {
      await writer.setItem('key', 'value-1');
      await writer.setItem('unwatched-key', 'value-x');
      await other.setItem('key', 'value-of-another-database');
      await writer.removeItem('key');
      await sleep(50);
      assert.deepEqual(values, ['value-1', null]);
      assert.deepEqual(ownValues, [], 'a store reported its own writes');
    } finally {
      unwatch();
      unwatchOwn();
    }

    await writer.setItem('key', 'value-2');
    await sleep(50);
    assert.deepEqual(values, ['value-1', null], 'watch reported a write after the unwatch');
  });

  test('falls back when the database cannot be opened', async () => {
    const failing = {
      open() {
        const request = {};
        setTimeout(() => {
          request.error = new Error('IndexedDB is disabled');
          request.onerror();
        }, 0);
        return request;
      }
    };
    const fallback = createMemoryStore();
    const store = createIndexedDBStore({ indexedDB: failing, BroadcastChannel: null, fallback: fallback });
    await store.setItem('key', 'value-1');
    assert.equal(fallback.getItem('key'), 'value-1');
    assert.equal(await store.getItem('key'), 'value-1');
    await store.removeItem('key');
    assert.equal(fallback.getItem('key'), null);

    const strict = createIndexedDBStore({ indexedDB: failing, BroadcastChannel: null });
    await assert.rejects(strict.getItem('key'), /IndexedDB is disabled/);
  });

  test('requires IndexedDB', () => {
    assert.throws(() => createIndexedDBStore({ indexedDB: null }), /IndexedDB is missing/);
  });

  test('is the default store where there is IndexedDB', async () => {
    const factory = new IDBFactory();
    globalThis.indexedDB = factory;
    try {
      assert.equal(typeof defaultStore().watch, 'function', 'the default store is not the IndexedDB store');
      assert.equal(await storedSession(), null);

      const io = createFakeIo(4);
      const session = open(io, { code: 'code-1' });
      const socket = io.sockets[0];
      await socket.emitted('authenticate');
      let acked = false;
      socket.fire('authenticated', 'token-1', info(), () => {
        acked = true;
      });
      await sleep(50);
      assert.ok(acked);
      const stored = await storedSession();
      assert.equal(stored && stored.token, 'token-1', 'the token is not in IndexedDB');

      // otherTab is the store of another tab of the origin.
      const otherTab = createIndexedDBStore({ indexedDB: factory });
      const tokens = [];
      const logouts = [];
      session.on('token', (details) => tokens.push(details));
      session.on('logged_out', (payload) => logouts.push(payload));

      await otherTab.setItem(DEFAULT_STORAGE_KEY, JSON.stringify(Object.assign(info(7200000, 'sid-1'), { token: 'token-2' })));
      await sleep(50);
      assert.equal(tokens.length, 1);
      assert.equal(tokens[0].session_id, 'sid-1');
      assert.equal(tokens[0].token, undefined, 'the token event exposes the token');

      await otherTab.removeItem(DEFAULT_STORAGE_KEY);
      await sleep(50);
      assert.deepEqual(logouts, [{ reason: 'logout', remote: true }]);
      assert.ok(socket.closed, 'the socket stayed open after a logout in another tab');
    } finally {
      delete globalThis.indexedDB;
    }
  });

  test('rotations of two sessions hand over the newest token', async () => {
    const factory = new IDBFactory();
    const locks = createRecordingLocks();
    const first = createIndexedDBStore({ indexedDB: factory, BroadcastChannel: null });
    const second = createIndexedDBStore({ indexedDB: factory, BroadcastChannel: null });
    await first.setItem(DEFAULT_STORAGE_KEY, JSON.stringify(Object.assign(info(), { token: 'token-1' })));

    const io = createFakeIo(undefined);
    open(io, { store: first, locks: locks });
    open(io, { store: second, locks: locks });
    const [socketA, socketB] = io.sockets;

    // The first connection to present rotates token-1 to token-2; the other
    // presents token-2 after the lock passes to it.
    await sleep(20);
    const firstSocket = socketA.handshakes.length === 1 ? socketA : socketB;
    const secondSocket = firstSocket === socketA ? socketB : socketA;
    assert.equal((await firstSocket.handshake()).token, 'token-1');
    firstSocket.fire('authenticated', 'token-2', info(), () => {});
    assert.equal((await secondSocket.handshake()).token, 'token-2');
  });
});
