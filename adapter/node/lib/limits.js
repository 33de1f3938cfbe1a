'use strict';

// Rate limits of authenticate events and the size limit of event payloads,
// with the defaults of the Go adapter (adapter/config.go).

const { inspect } = require('node:util');
const { TrustedProxies, isLoopbackAddress } = require('./clientaddress');

// Default limits of authenticate events. Both are estimates, not measured: a
// client authenticates once when it connects and once per token lifetime to
// refresh, but many clients behind one NAT share a client address and
// reconnect together after a server restart.
const DEFAULT_SOCKET_AUTHENTICATE_LIMIT = Object.freeze({ perSecond: 0.2, burst: 5 });
const DEFAULT_ADDRESS_AUTHENTICATE_LIMIT = Object.freeze({ perSecond: 20, burst: 100 });

// DEFAULT_MAX_PAYLOAD_BYTES leaves room for a token of the default
// maxTokenBytes (4096) in {"token": ...}.
const DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024;

// NOTE: an estimate, not measured. Each waiting socket costs a timer and its
// connection, so size the cap for the memory of the server.
const DEFAULT_MAX_UNAUTHENTICATED_SOCKETS = 10000;

// ADDRESS_SWEEP_INTERVAL_MS is how often AddressLimiters drops the buckets
// of addresses that have been quiet long enough to be full again.
const ADDRESS_SWEEP_INTERVAL_MS = 60 * 1000;

// TokenBucket allows burst events at once and refills at perSecond events
// per second. Times are milliseconds from a monotonic clock.
class TokenBucket {
  constructor(limit, now) {
    this.perMs = limit.perSecond / 1000;
    this.burst = limit.burst;
    this.tokens = limit.burst;
    this.updated = now;
  }

  // tokensAt returns the number of tokens in the bucket at time now.
  tokensAt(now) {
    const elapsed = Math.max(0, now - this.updated);
    return Math.min(this.burst, this.tokens + elapsed * this.perMs);
  }

  // take removes one token and returns true, or returns false when the
  // bucket has less than one token at time now.
  take(now) {
    this.tokens = this.tokensAt(now);
    this.updated = Math.max(this.updated, now);
    if (this.tokens < 1) {
      return false;
    }
    this.tokens -= 1;
    return true;
  }
}

// isLimitOff reports whether a validated rate limit is turned off.
function isLimitOff(limit) {
  return limit.perSecond < 0;
}

// newBucket returns a full TokenBucket for limit, or null when the limit is
// turned off.
function newBucket(limit, now) {
  return isLimitOff(limit) ? null : new TokenBucket(limit, now);
}

// AddressLimiters keeps one token bucket per client address. Its size is the
// number of addresses seen within about the time a bucket takes to refill,
// plus ADDRESS_SWEEP_INTERVAL_MS.
class AddressLimiters {
  constructor(limit) {
    this.limit = limit;
    this.buckets = new Map();
    this.lastSweep = null;
  }

  // allow returns whether address may authenticate at now and takes a token
  // when it may. An empty or loopback address, or a limit that is off,
  // always may.
  allow(address, now) {
    if (!address || isLimitOff(this.limit) || isLoopbackAddress(address)) {
      return true;
    }

    if (this.lastSweep === null) {
      this.lastSweep = now;
    } else if (now - this.lastSweep >= ADDRESS_SWEEP_INTERVAL_MS) {
      this.sweep(now);
    }
    let bucket = this.buckets.get(address);
    if (!bucket) {
      bucket = new TokenBucket(this.limit, now);
      this.buckets.set(address, bucket);
    }
    return bucket.take(now);
  }

  // sweep drops the buckets that are full, because a new bucket for their
  // address would behave the same.
  sweep(now) {
    for (const [address, bucket] of this.buckets) {
      if (bucket.tokensAt(now) >= this.limit.burst) {
        this.buckets.delete(address);
      }
    }
    this.lastSweep = now;
  }

  get size() {
    return this.buckets.size;
  }
}

// rateLimitOption validates the rate limit option name: {perSecond, burst}
// with a positive perSecond and a positive integer burst, or a negative
// perSecond to turn the limit off. It returns the limit or throws an Error
// that names the option.
function rateLimitOption(name, value) {
  const invalid = (reason) => new Error('sockauth: invalid option ' + name + ' ' + describeOption(value) + ': ' + reason);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid('expected {perSecond, burst}');
  }
  for (const key of Object.keys(value)) {
    if (key !== 'perSecond' && key !== 'burst') {
      throw invalid('unknown member ' + key + '; expected {perSecond, burst}');
    }
  }

  const { perSecond, burst } = value;
  if (typeof perSecond !== 'number' || Number.isNaN(perSecond)) {
    throw invalid('perSecond must be a number');
  }
  if (perSecond < 0) {
    return Object.freeze({ perSecond: -1, burst: 0 });
  }
  if (perSecond === 0 || !Number.isFinite(perSecond)) {
    throw invalid('perSecond must be a positive finite number, or negative to turn the limit off');
  }
  if (!Number.isInteger(burst) || burst < 1) {
    throw invalid('burst must be a positive integer');
  }
  return Object.freeze({ perSecond: perSecond, burst: burst });
}

// limitOptions validates the limit options of options, whose undefined
// members mean the member of defaults, and returns {options, trustedProxies}:
// the validated values and the TrustedProxies built from
// options.trustedProxies. It throws an Error that names the first invalid
// option. options.maxTokenBytes must be valid already.
function limitOptions(options, defaults) {
  const pick = (name) => (options[name] === undefined ? defaults[name] : options[name]);

  const maxPayloadBytes = pick('maxPayloadBytes');
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < options.maxTokenBytes) {
    throw new Error('sockauth: invalid option maxPayloadBytes ' + describeOption(maxPayloadBytes) +
      ': must be an integer of at least maxTokenBytes (' + options.maxTokenBytes + ')');
  }

  const maxUnauthenticatedSockets = pick('maxUnauthenticatedSockets');
  if (!Number.isInteger(maxUnauthenticatedSockets) || maxUnauthenticatedSockets === 0) {
    throw new Error('sockauth: invalid option maxUnauthenticatedSockets ' + describeOption(maxUnauthenticatedSockets) +
      ': must be a positive integer, or negative to turn the cap off');
  }

  const networks = pick('trustedProxies');
  const trustedProxies = new TrustedProxies(networks);
  const validated = {
    socketAuthenticateLimit: rateLimitOption('socketAuthenticateLimit', pick('socketAuthenticateLimit')),
    addressAuthenticateLimit: rateLimitOption('addressAuthenticateLimit', pick('addressAuthenticateLimit')),
    // A copy, because later changes to the caller's array do not reach
    // trustedProxies.
    trustedProxies: Object.freeze(networks.slice()),
    maxPayloadBytes: maxPayloadBytes,
    maxUnauthenticatedSockets: maxUnauthenticatedSockets
  };
  return { options: validated, trustedProxies: trustedProxies };
}

// payloadSize returns the size in bytes of an event payload encoded as
// JSON, or null when it cannot be encoded. socket.io has already decoded
// the payload, so it is encoded again to give every client the same limit.
function payloadSize(payload) {
  let encoded;
  try {
    encoded = JSON.stringify(payload);
  } catch (error) {
    return null;
  }
  return encoded === undefined ? 0 : Buffer.byteLength(encoded, 'utf8');
}

// describeOption formats an option value on one line for an error message.
function describeOption(value) {
  return inspect(value, { breakLength: Infinity, depth: 2 });
}

module.exports = {
  DEFAULT_SOCKET_AUTHENTICATE_LIMIT,
  DEFAULT_ADDRESS_AUTHENTICATE_LIMIT,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_MAX_UNAUTHENTICATED_SOCKETS,
  ADDRESS_SWEEP_INTERVAL_MS,
  AddressLimiters,
  TokenBucket,
  describeOption,
  isLimitOff,
  limitOptions,
  newBucket,
  payloadSize,
  rateLimitOption
};
