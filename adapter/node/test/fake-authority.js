'use strict';

// An in-memory AuthorityService for the adapter's tests, served by
// @grpc/grpc-js on a loopback port. It follows the authority's rotation rules
// closely enough for the socket flow: tokens are opaque strings, the current
// token rotates, the unconfirmed predecessor gets the current token again,
// any other token of the session revokes it.

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { Status, ErrorInfo, ERROR_INFO_TYPE_URL, STATUS_DETAILS_KEY } = require('../lib/errors');

const PROTO_DIR = path.join(__dirname, '..', '..', '..', 'proto');

function timestamp(ms) {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

// authorityError returns a grpc-js service error with an ErrorInfo detail.
function authorityError(code, reason, message) {
  const details = Status.encode({
    code: code,
    message: message,
    details: [{ type_url: ERROR_INFO_TYPE_URL, value: ErrorInfo.encode({ reason: reason, domain: 'sockauth' }).finish() }]
  }).finish();
  const metadata = new grpc.Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(details));
  return { code: code, details: message, metadata: metadata };
}

class FakeAuthority {
  // options: tokenTtlMs (default 1 h), serviceKey (required when set).
  constructor(options = {}) {
    this.tokenTtlMs = options.tokenTtlMs || 3600 * 1000;
    this.serviceKey = options.serviceKey || '';
    this.sessions = new Map();
    this.tokens = new Map(); // token → {sessionId, tokenId, generation, expiresAt}
    this.next = 1;
    this.calls = [];
    this.watchers = new Set();
    // unavailable makes every unary call fail with UNAVAILABLE.
    this.unavailable = false;
    // refuseWatch makes WatchRevocations fail with UNAVAILABLE.
    this.refuseWatch = false;
    this.server = new grpc.Server();

    const definition = protoLoader.loadSync('sockauth/v1/authority.proto', {
      includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String, defaults: true
    });
    const service = grpc.loadPackageDefinition(definition).sockauth.v1.AuthorityService.service;
    const unary = (name, handler) => (call, callback) => {
      this.calls.push({ method: name, request: call.request, authorization: call.metadata.get('authorization')[0] });
      const denied = this.checkKey(call.metadata);
      if (denied) {
        callback(denied);
        return;
      }
      if (this.unavailable) {
        callback({ code: grpc.status.UNAVAILABLE, details: 'fake authority unavailable' });
        return;
      }
      try {
        callback(null, handler(call.request));
      } catch (error) {
        callback(error);
      }
    };
    this.server.addService(service, {
      IssueCode: unary('IssueCode', (req) => this.issueCode(req.subject)),
      Authenticate: unary('Authenticate', (req) => this.authenticate(req.token)),
      ConfirmRotation: unary('ConfirmRotation', (req) => this.confirmRotation(req.token)),
      Verify: unary('Verify', (req) => this.verify(req.token)),
      Logout: unary('Logout', (req) => this.logout(req.token)),
      WatchRevocations: (call) => this.watch(call)
    });
  }

  start() {
    return new Promise((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
        if (error) {
          reject(error);
          return;
        }
        this.address = '127.0.0.1:' + port;
        resolve(this.address);
      });
    });
  }

  stop() {
    for (const call of this.watchers) {
      call.end();
    }
    this.server.forceShutdown();
  }

  checkKey(metadata) {
    if (!this.serviceKey) {
      return null;
    }
    if (metadata.get('authorization')[0] !== 'Bearer ' + this.serviceKey) {
      return authorityError(grpc.status.UNAUTHENTICATED, 'CALLER_UNAUTHENTICATED', 'invalid service key');
    }
    return null;
  }

  callsOf(method) {
    return this.calls.filter((call) => call.method === method);
  }

  mint(session, generation, ttlMs) {
    const token = 'tok-' + crypto.randomBytes(12).toString('hex');
    const record = { sessionId: session.id, tokenId: 'jti-' + this.next++, generation: generation, expiresAt: Date.now() + ttlMs };
    this.tokens.set(token, record);
    return { token: token, record: record };
  }

  info(session, record) {
    return {
      token_id: record.tokenId,
      session_id: session.id,
      subject: session.subject,
      type: record.generation === 0 ? 'TOKEN_TYPE_CODE' : 'TOKEN_TYPE_SESSION',
      generation: record.generation,
      issued_at: timestamp(Date.now()),
      expires_at: timestamp(record.expiresAt),
      session_expires_at: timestamp(session.expiresAt),
      claims: {}
    };
  }

  issueCode(subject) {
    const session = { id: 'sid-' + this.next++, subject: subject, current: null, previous: null, confirmed: false,
      revoked: '', expiresAt: Date.now() + 24 * 3600 * 1000 };
    const code = this.mint(session, 0, 30000);
    session.current = code.token;
    this.sessions.set(session.id, session);
    return { code: code.token, info: this.info(session, code.record) };
  }

  // live returns the session and record of a token, or throws the
  // authority's error for it.
  live(token) {
    const record = this.tokens.get(token);
    if (!record) {
      throw authorityError(grpc.status.UNAUTHENTICATED, 'TOKEN_INVALID', 'invalid token');
    }
    if (Date.now() >= record.expiresAt) {
      throw authorityError(grpc.status.UNAUTHENTICATED, 'TOKEN_EXPIRED', 'token expired');
    }
    const session = this.sessions.get(record.sessionId);
    if (session.revoked) {
      throw authorityError(grpc.status.PERMISSION_DENIED, 'SESSION_REVOKED', 'session revoked');
    }
    return { session: session, record: record };
  }

  authenticate(token) {
    const { session, record } = this.live(token);
    if (token === session.current) {
      const next = this.mint(session, record.generation + 1, this.tokenTtlMs);
      session.previous = session.current;
      session.current = next.token;
      session.confirmed = false;
      return { token: next.token, info: this.info(session, next.record) };
    }
    if (token === session.previous && !session.confirmed) {
      return { token: session.current, info: this.info(session, this.tokens.get(session.current)) };
    }
    this.revoke(session.id, 'REVOCATION_REASON_REUSED');
    throw authorityError(grpc.status.PERMISSION_DENIED, 'TOKEN_REUSED', 'token was already used; the session is revoked');
  }

  confirmRotation(token) {
    const { session } = this.live(token);
    if (token !== session.current || session.confirmed) {
      return { confirmed: false };
    }
    session.confirmed = true;
    return { confirmed: true };
  }

  verify(token) {
    const { session, record } = this.live(token);
    return { info: this.info(session, record), current: token === session.current };
  }

  logout(token) {
    const { session } = this.live(token);
    this.revoke(session.id, 'REVOCATION_REASON_LOGOUT');
    return { session_id: session.id, subject: session.subject };
  }

  // revoke revokes a session and sends the event to every open watcher;
  // with silent, watchers miss it, as across a broken stream.
  revoke(sessionId, reason, silent = false) {
    const session = this.sessions.get(sessionId);
    session.revoked = reason;
    if (silent) {
      return;
    }
    for (const call of this.watchers) {
      call.write({ session_id: sessionId, subject: session.subject, reason: reason, revoked_at: timestamp(Date.now()) });
    }
  }

  watch(call) {
    this.calls.push({ method: 'WatchRevocations', authorization: call.metadata.get('authorization')[0] });
    const denied = this.checkKey(call.metadata);
    if (denied) {
      call.emit('error', denied);
      return;
    }
    if (this.refuseWatch) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'fake authority refuses watchers' });
      return;
    }
    this.watchers.add(call);
    call.sendMetadata(new grpc.Metadata());
    call.on('cancelled', () => this.watchers.delete(call));
  }

  // breakWatchers ends every open stream with UNAVAILABLE.
  breakWatchers() {
    for (const call of this.watchers) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'fake authority dropped the watcher' });
    }
    this.watchers.clear();
  }
}

module.exports = { FakeAuthority };
