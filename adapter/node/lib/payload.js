'use strict';

// Extracts tokens from event payloads and connection handshakes. Every
// rejection becomes invalid_token without an authority call. Errors never
// contain the token.

const DEFAULT_MAX_TOKEN_BYTES = 4096;

class PayloadError extends Error {}

// tokenFromPayload returns the token of the first argument of an
// authenticate or logout event: a string or {token: string}. It returns null
// for a missing token (no argument, null, or an object without token) and
// throws a PayloadError for a payload of the wrong type, an empty token or
// one longer than maxBytes.
function tokenFromPayload(payload, maxBytes = DEFAULT_MAX_TOKEN_BYTES) {
  if (payload === undefined || payload === null) {
    return null;
  }
  let token = payload;
  if (typeof payload === 'object' && !Array.isArray(payload)) {
    if (payload.token === undefined || payload.token === null) {
      return null;
    }
    token = payload.token;
  }
  return checkToken(token, maxBytes);
}

function checkToken(token, maxBytes) {
  if (typeof token !== 'string') {
    throw new PayloadError('invalid payload: expected a token string or {token: string}, got ' + describeType(token));
  }
  if (token === '') {
    throw new PayloadError('empty token');
  }
  if (Buffer.byteLength(token, 'utf8') > maxBytes) {
    throw new PayloadError('token too long: ' + Buffer.byteLength(token, 'utf8') + ' bytes, maximum ' + maxBytes);
  }
  return token;
}

function describeType(value) {
  if (Array.isArray(value)) {
    return 'an array';
  }
  return 'a ' + (value === null ? 'null' : typeof value);
}

// tokenFromHandshake returns the token of a socket.io handshake: the token
// member of the client's auth payload, else the token query parameter, else
// the credentials of an Authorization header with the Bearer scheme. It
// returns null when there is none and throws a PayloadError for a token in
// the wrong form, such as a repeated query parameter or two Bearer headers.
function tokenFromHandshake(handshake, maxBytes = DEFAULT_MAX_TOKEN_BYTES) {
  const auth = handshake.auth;
  if (auth && typeof auth === 'object' && auth.token !== undefined && auth.token !== null) {
    return checkToken(auth.token, maxBytes);
  }

  const query = handshake.query || {};
  if (query.token !== undefined) {
    if (Array.isArray(query.token)) {
      throw new PayloadError('invalid query: the token parameter is given more than once');
    }
    return checkToken(query.token, maxBytes);
  }

  const header = (handshake.headers || {}).authorization;
  if (header === undefined) {
    return null;
  }
  const tokens = [];
  for (const value of String(header).split(',')) {
    const [scheme, ...rest] = value.trim().split(' ');
    if (rest.length > 0 && scheme.toLowerCase() === 'bearer') {
      tokens.push(rest.join(' ').trim());
    }
  }
  if (tokens.length === 0) {
    return null;
  }
  if (tokens.length > 1) {
    throw new PayloadError('invalid Authorization header: more than one Bearer token');
  }
  return checkToken(tokens[0], maxBytes);
}

module.exports = { DEFAULT_MAX_TOKEN_BYTES, PayloadError, tokenFromPayload, tokenFromHandshake };
