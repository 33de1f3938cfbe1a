'use strict';

// Maps errors of authority calls onto the codes of the socket wire contract.
// The authority sends a google.rpc.ErrorInfo detail (domain "sockauth") in
// the grpc-status-details-bin trailer, a serialized google.rpc.Status. The two
// message types are declared here from their published definitions in
// googleapis (google/rpc/status.proto and error_details.proto), so the package
// needs no copy of googleapis.

const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');

const ERROR_DOMAIN = 'sockauth';
const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } }
          }
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 }
              }
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 }
              }
            }
          }
        }
      }
    }
  }
});
const Status = root.lookupType('google.rpc.Status');
const ErrorInfo = root.lookupType('google.rpc.ErrorInfo');

// Codes of the unauthorized event and of connect_error data.
const Codes = Object.freeze({
  INVALID_TOKEN: 'invalid_token',
  TOKEN_EXPIRED: 'token_expired',
  REVOKED_TOKEN: 'revoked_token',
  SESSION_EXPIRED: 'session_expired',
  AUTHENTICATION_TIMEOUT: 'authentication_timeout',
  AUTHORITY_UNAVAILABLE: 'authority_unavailable',
  // An authenticate event over socketAuthenticateLimit or
  // addressAuthenticateLimit, or a handshake token over
  // addressAuthenticateLimit. The client should wait before it connects
  // again.
  RATE_LIMITED: 'rate_limited',
  // An authenticate or logout payload larger than maxPayloadBytes.
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  // A socket that connected while maxUnauthenticatedSockets sockets waited
  // for authentication.
  TOO_MANY_CONNECTIONS: 'too_many_connections'
});

const MESSAGES = Object.freeze({
  invalid_token: 'invalid token',
  token_expired: 'token expired',
  revoked_token: 'token revoked',
  session_expired: 'session expired',
  authentication_timeout: 'authentication timed out',
  authority_unavailable: 'authority unavailable',
  rate_limited: 'too many authentication attempts, retry later',
  payload_too_large: 'payload too large',
  too_many_connections: 'too many unauthenticated connections, retry later'
});

const REASON_CODES = Object.freeze({
  TOKEN_INVALID: Codes.INVALID_TOKEN,
  INVALID_ARGUMENT: Codes.INVALID_TOKEN,
  TOKEN_EXPIRED: Codes.TOKEN_EXPIRED,
  TOKEN_REUSED: Codes.REVOKED_TOKEN,
  SESSION_REVOKED: Codes.REVOKED_TOKEN,
  SESSION_EXPIRED: Codes.SESSION_EXPIRED
});

// CALLER_REASONS are the ErrorInfo reasons of a rejected service key.
const CALLER_REASONS = new Set(['CALLER_UNAUTHENTICATED', 'CALLER_FORBIDDEN']);

// errorInfo returns {domain, reason, metadata} of the first ErrorInfo detail
// of a grpc-js ServiceError, or null when it carries none or the trailer does
// not decode.
function errorInfo(error) {
  if (!error || !error.metadata || typeof error.metadata.get !== 'function') {
    return null;
  }
  for (const raw of error.metadata.get(STATUS_DETAILS_KEY)) {
    let status;
    try {
      status = Status.decode(raw);
    } catch (e) {
      return null;
    }
    for (const detail of status.details) {
      if (detail.type_url === ERROR_INFO_TYPE_URL) {
        const info = ErrorInfo.decode(detail.value);
        return { domain: info.domain, reason: info.reason, metadata: info.metadata || {} };
      }
    }
  }
  return null;
}

// codeOf maps an error of an authority call to the code sent to the client.
// It reads the ErrorInfo reason first and falls back on the gRPC status code.
// A rejected service key, UNAVAILABLE, DEADLINE_EXCEEDED and anything
// unexpected map to authority_unavailable.
function codeOf(error) {
  const info = errorInfo(error);
  if (info && info.domain === ERROR_DOMAIN && REASON_CODES[info.reason]) {
    return REASON_CODES[info.reason];
  }
  // The authority rejected this server's service key, which is no fault of
  // the client's token.
  if (info && info.domain === ERROR_DOMAIN && CALLER_REASONS.has(info.reason)) {
    return Codes.AUTHORITY_UNAVAILABLE;
  }
  switch (error && error.code) {
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.UNAUTHENTICATED:
      return Codes.INVALID_TOKEN;
    case grpc.status.PERMISSION_DENIED:
      return Codes.REVOKED_TOKEN;
    default:
      return Codes.AUTHORITY_UNAVAILABLE;
  }
}

// revokedForLogout reports whether an authority error is SESSION_REVOKED for
// a session that its holder logged out, which the authority states in the
// ErrorInfo metadata key revoked_reason.
function revokedForLogout(error) {
  const info = errorInfo(error);
  return Boolean(info && info.domain === ERROR_DOMAIN && info.reason === 'SESSION_REVOKED' &&
    info.metadata.revoked_reason === 'logout');
}

// unauthorizedPayload builds the argument of the unauthorized event in the
// shape that socketio-jwt clients handle.
function unauthorizedPayload(code) {
  const message = MESSAGES[code] || code;
  return { message: message, data: { message: message, code: code, type: 'UnauthorizedError' } };
}

// handshakeError builds the Error that a namespace middleware passes to next:
// the client receives connect_error with its message and data.
function handshakeError(code) {
  const payload = unauthorizedPayload(code);
  const error = new Error(payload.message);
  error.data = payload.data;
  return error;
}

module.exports = {
  Codes,
  ERROR_DOMAIN,
  codeOf,
  revokedForLogout,
  errorInfo,
  handshakeError,
  unauthorizedPayload,
  // For tests that build authority errors.
  Status,
  ErrorInfo,
  ERROR_INFO_TYPE_URL,
  STATUS_DETAILS_KEY
};
