'use strict';

// The call sequence that every cross-language client runs against the
// authority, written once for the Node clients. A client adapter passes
// functions that call the five RPCs and return plain objects. The scenario
// writes one JSON object per line to stdout, and the Go test in
// e2e/clients_test.go checks them. The Python client writes the same lines.

const { errorInfo } = require('./error-info');

function writeLine(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// describeError turns a failed call into {code, domain, reason}, where code
// is the numeric gRPC status code.
function describeError(error) {
  const info = errorInfo(error);
  return {
    code: error.code,
    message: error.details,
    domain: info ? info.domain : '',
    reason: info ? info.reason : ''
  };
}

// expectError runs call and returns the description of its error, or throws
// when the call succeeds.
async function expectError(name, call) {
  try {
    await call();
  } catch (error) {
    return describeError(error);
  }
  throw new Error(name + ' succeeded, expected an error');
}

// run executes the scenario with rpc = {issueCode, authenticate,
// confirmRotation, verify, logout}; each takes the request as a plain object
// and resolves with the response converted to the lines' layout.
async function run(rpc) {
  const issued = await rpc.issueCode({ subject: 'alice', claims: { role: 'member' } });
  writeLine({ step: 'issue', has_code: issued.code.length > 0, info: issued.info });

  const first = await rpc.authenticate({ token: issued.code });
  writeLine({ step: 'authenticate', has_token: first.token.length > 0, info: first.info });

  const confirmed = await rpc.confirmRotation({ token: first.token });
  writeLine({ step: 'confirm', confirmed: confirmed.confirmed });

  const verified = await rpc.verify({ token: first.token });
  writeLine({ step: 'verify', current: verified.current, info: verified.info });

  const loggedOut = await rpc.logout({ token: first.token });
  writeLine({ step: 'logout', session_id: loggedOut.session_id, subject: loggedOut.subject });

  writeLine({
    step: 'verify_after_logout',
    error: await expectError('Verify after Logout', () => rpc.verify({ token: first.token }))
  });

  // A second session: presenting its exchanged code again is reuse.
  const second = await rpc.issueCode({ subject: 'bob', claims: {} });
  const exchanged = await rpc.authenticate({ token: second.code });
  await rpc.confirmRotation({ token: exchanged.token });
  writeLine({
    step: 'reuse',
    error: await expectError('Authenticate with a used code', () => rpc.authenticate({ token: second.code }))
  });

  writeLine({
    step: 'invalid',
    error: await expectError('Authenticate with garbage', () => rpc.authenticate({ token: 'v2.local.not-a-token.e30' }))
  });
  writeLine({ step: 'done' });
}

// main runs the scenario and reports a failure as an error line with exit
// status 1.
function main(rpc, close) {
  run(rpc)
    .catch((error) => {
      writeLine({ step: 'error', message: String(error && error.stack ? error.stack : error) });
      process.exitCode = 1;
    })
    .finally(close);
}

module.exports = { main, writeLine };
