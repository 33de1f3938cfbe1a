'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { deadlineOf } = require('../lib/flow');

const sessionEnd = new Date(Date.UTC(2026, 11, 5, 12, 0, 0, 700));
const lastSecond = new Date(Date.UTC(2026, 11, 5, 12, 0, 0, 0));

const cases = [
  { name: 'no session end', expiresAt: lastSecond, sessionExpiresAt: null, at: lastSecond, code: 'token_expired' },
  { name: 'token before the last second', expiresAt: new Date(lastSecond.getTime() - 1000), sessionExpiresAt: sessionEnd,
    at: new Date(lastSecond.getTime() - 1000), code: 'token_expired' },
  { name: 'token in the last second', expiresAt: lastSecond, sessionExpiresAt: sessionEnd, at: lastSecond, code: 'session_expired' },
  { name: 'session before the token', expiresAt: new Date(sessionEnd.getTime() + 3600 * 1000), sessionExpiresAt: sessionEnd,
    at: sessionEnd, code: 'session_expired' },
];

for (const c of cases) {
  test('deadline: ' + c.name, () => {
    const deadline = deadlineOf({ expiresAt: c.expiresAt, sessionExpiresAt: c.sessionExpiresAt });
    assert.equal(deadline.at.getTime(), c.at.getTime());
    assert.equal(deadline.code, c.code);
  });
}
