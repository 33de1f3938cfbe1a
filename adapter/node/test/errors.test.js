'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { Status, ErrorInfo, ERROR_INFO_TYPE_URL, STATUS_DETAILS_KEY, revokedForLogout } = require('../lib/errors');

// serviceError builds a grpc-js error whose trailer carries one ErrorInfo.
function serviceError(reason, metadata) {
  const info = ErrorInfo.encode({ reason: reason, domain: 'sockauth', metadata: metadata }).finish();
  const details = Status.encode({
    code: grpc.status.PERMISSION_DENIED,
    message: 'session revoked',
    details: [{ type_url: ERROR_INFO_TYPE_URL, value: info }]
  }).finish();
  const trailer = new grpc.Metadata();
  trailer.set(STATUS_DETAILS_KEY, Buffer.from(details));
  return { code: grpc.status.PERMISSION_DENIED, details: 'session revoked', metadata: trailer };
}

test('revokedForLogout reads the revocation reason', () => {
  assert.equal(revokedForLogout(serviceError('SESSION_REVOKED', { revoked_reason: 'logout' })), true);
  assert.equal(revokedForLogout(serviceError('SESSION_REVOKED', { revoked_reason: 'reused' })), false);
  assert.equal(revokedForLogout(serviceError('SESSION_REVOKED', {})), false);
  assert.equal(revokedForLogout(serviceError('TOKEN_REUSED', { revoked_reason: 'logout' })), false);
  assert.equal(revokedForLogout(new Error('no trailer')), false);
});
