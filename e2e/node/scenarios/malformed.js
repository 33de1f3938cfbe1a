'use strict';

// Malformed authenticate payloads: each must give unauthorized (invalid_token)
// and a disconnect, and the server must keep serving, so a good login
// afterwards authenticates.

const lib = require('../lib');

lib.run(async () => {
  const url = lib.env('CHAT_URL');
  const foreignCode = lib.env('FOREIGN_CODE');
  const foreignToken = lib.env('FOREIGN_TOKEN');
  const longString = 'A'.repeat(10 * 1024);

  const cases = [
    { name: 'empty string', payload: '' },
    { name: 'empty token', payload: { token: '' } },
    { name: 'number', payload: 42 },
    { name: 'number token', payload: { token: 42 } },
    { name: 'object without token', payload: { user: 'alice' } },
    { name: 'object token', payload: { token: { value: 'x' } } },
    { name: 'array', payload: ['x'] },
    { name: 'null', payload: null },
    { name: 'garbage string', payload: 'not-a-token' },
    { name: '10 KB string', payload: longString },
    { name: '10 KB token', payload: { token: longString } },
    { name: 'code of another authority', payload: { token: foreignCode } },
    { name: 'session token of another authority', payload: { token: foreignToken } }
  ];

  for (const testCase of cases) {
    const outcome = await lib.connectAndAuthenticate(url, testCase.name, testCase.payload);
    const disconnect = outcome.event === 'unauthorized' ? await outcome.client.nextOrNull('disconnect', 3000) : null;
    lib.writeLine(Object.assign({ step: 'case', name: testCase.name, disconnect: disconnect && disconnect[0] }, lib.describe(outcome)));
    outcome.client.close();
  }

  const code = await lib.loginCode(url, lib.env('CHAT_USERNAME', 'alice'), lib.env('CHAT_PASSWORD', 'alice-password'));
  const good = await lib.connectAndAuthenticate(url, 'good', { token: code });
  if (good.ack) {
    good.ack();
  }
  lib.writeLine(Object.assign({ step: 'good' }, lib.describe(good)));
  good.client.close();
});
