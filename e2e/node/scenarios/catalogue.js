'use strict';

// Sends each authenticate payload of the CASES environment variable (a JSON
// array of {name, payload}) on a fresh socket and reports the outcome and the
// disconnect that follows. Payloads are sent as given, so the Go test decides
// their types.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const cases = JSON.parse(lib.env('CASES'));

  for (const testCase of cases) {
    const outcome = await lib.connectAndAuthenticate(url, testCase.name, testCase.payload);
    const disconnect = outcome.event === 'unauthorized' ? await outcome.client.nextOrNull('disconnect', 3000) : null;
    lib.writeLine(Object.assign({ step: 'case', name: testCase.name, disconnect: disconnect && disconnect[0] }, lib.describe(outcome)));
    outcome.client.close();
  }
});
