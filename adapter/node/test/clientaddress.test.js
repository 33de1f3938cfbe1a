'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { TrustedProxies, clientAddress } = require('../lib');
const { parseAddress } = require('../lib/clientaddress');
const { startStack, startProxy, assertAuthenticated, assertUnauthorized } = require('./helpers');

test('clientAddress behind trusted proxies', () => {
  const proxies = new TrustedProxies(['10.0.0.0/8', '127.0.0.0/8', 'fd00::/8']);
  const cases = [
    { name: 'direct client', remote: '198.51.100.7', want: '198.51.100.7' },
    { name: 'direct client naming another address', remote: '198.51.100.7', forwardedFor: '203.0.113.9', want: '198.51.100.7' },
    { name: 'proxy without the header', remote: '10.1.2.3', want: '10.1.2.3' },
    { name: 'one proxy', remote: '10.1.2.3', forwardedFor: '203.0.113.9', want: '203.0.113.9' },
    { name: 'entries left of the client are its own', remote: '10.1.2.3', forwardedFor: '192.0.2.1, 203.0.113.9', want: '203.0.113.9' },
    { name: 'chain of trusted proxies', remote: '127.0.0.1', forwardedFor: '192.0.2.1, 203.0.113.9, 10.9.9.9', want: '203.0.113.9' },
    { name: 'several headers read as one list', remote: '10.1.2.3', forwardedFor: ['192.0.2.1', '203.0.113.9', '10.9.9.9'], want: '203.0.113.9' },
    { name: 'every entry trusted', remote: '10.1.2.3', forwardedFor: '10.4.4.4, 10.5.5.5', want: '10.4.4.4' },
    { name: 'entry that is not an address', remote: '10.1.2.3', forwardedFor: '203.0.113.9, unknown', want: '10.1.2.3' },
    { name: 'bad entry after a trusted hop', remote: '10.1.2.3', forwardedFor: 'garbage, 10.5.5.5', want: '10.5.5.5' },
    { name: 'empty entry', remote: '10.1.2.3', forwardedFor: '203.0.113.9, ', want: '10.1.2.3' },
    { name: 'entries with ports', remote: '10.1.2.3', forwardedFor: '[2001:db8::5]:1234, 10.5.5.5:80', want: '2001:db8::5' },
    { name: 'IPv6 in brackets without a port', remote: '[fd00::1]:40000', forwardedFor: '[2001:db8::5]', want: '2001:db8::5' },
    { name: 'IPv6 in another spelling', remote: 'fd00::1', forwardedFor: '2001:DB8:0:0::0005', want: '2001:db8::5' },
    { name: 'IPv4 mapped into IPv6', remote: '::ffff:10.1.2.3', forwardedFor: '::ffff:203.0.113.9', want: '203.0.113.9' },
    { name: 'zone dropped', remote: 'fe80::1%eth0', want: 'fe80::1' },
    { name: 'peer with a port', remote: '198.51.100.7:52000', want: '198.51.100.7' },
    { name: 'peer that is not an address', remote: 'pipe', want: '' },
    { name: 'missing peer', remote: undefined, want: '' },
    { name: 'IPv4 with leading zeros is no address', remote: '10.1.2.3', forwardedFor: '010.1.2.3', want: '10.1.2.3' },
    { name: 'no trusted proxies', remote: '10.1.2.3', forwardedFor: '203.0.113.9', trusted: [], want: '10.1.2.3' }
  ];
  for (const c of cases) {
    const headers = c.forwardedFor === undefined ? {} : { 'x-forwarded-for': c.forwardedFor };
    const trusted = c.trusted ? new TrustedProxies(c.trusted) : proxies;
    assert.equal(clientAddress(c.remote, headers, trusted), c.want,
      c.name + ': clientAddress(' + JSON.stringify(c.remote) + ', X-Forwarded-For ' + JSON.stringify(c.forwardedFor) + ')');
  }
});

test('TrustedProxies defaults to loopback', () => {
  const headers = { 'x-forwarded-for': '203.0.113.9' };
  const defaults = new TrustedProxies();
  assert.equal(clientAddress('127.0.0.1', headers, defaults), '203.0.113.9', 'behind an IPv4 loopback proxy');
  assert.equal(clientAddress('::1', headers, defaults), '203.0.113.9', 'behind an IPv6 loopback proxy');
  assert.equal(clientAddress('::ffff:127.0.0.1', headers, defaults), '203.0.113.9', 'behind a loopback proxy on a dual-stack socket');
  assert.equal(clientAddress('10.1.2.3', headers, defaults), '10.1.2.3', 'behind another peer');
  assert.equal(clientAddress('127.0.0.1', headers, new TrustedProxies([])), '127.0.0.1', 'with an empty list');
});

test('TrustedProxies networks', () => {
  const trusted = new TrustedProxies(['10.1.2.3/8', '192.0.2.7', '::/0']);
  assert.equal(trusted.contains('10.200.0.1'), true, 'host bits of a network are ignored');
  assert.equal(trusted.contains('192.0.2.7'), true, 'a bare address trusts itself');
  assert.equal(trusted.contains('192.0.2.8'), false, 'a bare address trusts no neighbor');
  assert.equal(trusted.contains('2001:db8::1'), true, 'an IPv6 network contains IPv6 addresses');
  assert.equal(trusted.contains('198.51.100.7'), false, 'an IPv6 network contains no IPv4 address');
});

test('TrustedProxies network of IPv4-mapped addresses', () => {
  const trusted = new TrustedProxies(['::ffff:127.0.0.0/104']);
  assert.equal(trusted.contains('127.0.0.1'), true, 'the mapped network becomes 127.0.0.0/8');
  assert.equal(trusted.contains('128.0.0.1'), false, 'only the mapped network');
  assert.equal(new TrustedProxies(['::ffff:10.0.0.1']).contains('10.0.0.1'), true, 'a bare mapped address');
  assert.throws(() => new TrustedProxies(['::ffff:0:0/80']), /trustedProxies\[0\]/, 'a mapped network shorter than 96 bits');
});

test('parseAddress spellings', () => {
  assert.equal(parseAddress('192.0.2.1:443'), '192.0.2.1');
  assert.equal(parseAddress('[2001:db8::1]:443'), '2001:db8::1');
  assert.equal(parseAddress('::FFFF:C000:0201'), '192.0.2.1');
  assert.equal(parseAddress('::1'), '::1');
  for (const bad of ['', ' 192.0.2.1', '192.0.2', 'example.com:443', '[192.0.2.1', '192.0.2.1%eth0', null, 42]) {
    assert.equal(parseAddress(bad), null, JSON.stringify(bad));
  }
});

// recordAddresses records, for each socket that connects to the stack, the
// X-Forwarded-For header that the server received and the client address
// that the adapter found.
function recordAddresses(stack) {
  const seen = [];
  stack.io.on('connection', (socket) => {
    seen.push({ forwardedFor: socket.handshake.headers['x-forwarded-for'], address: stack.auth.clientAddress(socket) });
  });
  return seen;
}

test('address limit behind a loopback proxy', async (t) => {
  const stack = await startStack(t, { addressAuthenticateLimit: { perSecond: 0.001, burst: 2 } });
  const proxyUrl = await startProxy(t, stack.url);
  const seen = recordAddresses(stack);
  // The clients name the address of a hop in front of the proxy, which
  // appends the clients' own address 127.0.0.1, a trusted proxy by default.
  const viaProxy = (address) => stack.client({ extraHeaders: { 'X-Forwarded-For': address } }, proxyUrl);

  const outcomes = [];
  for (let i = 0; i < 3; i++) {
    const client = viaProxy('203.0.113.9');
    await client.next('connect');
    outcomes.push(await client.authenticate(stack.authority.issueCode('alice').code));
  }
  assert.deepEqual(seen[0], { forwardedFor: '203.0.113.9, 127.0.0.1', address: '203.0.113.9' });
  assertAuthenticated(outcomes[0], 'alice');
  assertAuthenticated(outcomes[1], 'alice');
  assertUnauthorized(outcomes[2], 'rate_limited');

  const other = viaProxy('203.0.113.10');
  await other.next('connect');
  assertAuthenticated(await other.authenticate(stack.authority.issueCode('bob').code), 'bob');
  assert.equal(seen[3].address, '203.0.113.10');
});

test('untrusted peer cannot name its address', async (t) => {
  // The proxy connects to the server from 127.0.0.2, its only trusted
  // address, and the clients connect from 127.0.0.3.
  const stack = await startStack(t, { trustedProxies: ['127.0.0.2'] });
  const proxyUrl = await startProxy(t, stack.url, '127.0.0.2');
  const seen = recordAddresses(stack);
  const options = { localAddress: '127.0.0.3', extraHeaders: { 'X-Forwarded-For': '203.0.113.9' } };

  const direct = stack.client(options);
  await direct.next('connect');
  const proxied = stack.client(options, proxyUrl);
  await proxied.next('connect');

  assert.deepEqual(seen[0], { forwardedFor: '203.0.113.9', address: '127.0.0.3' });
  assert.deepEqual(seen[1], { forwardedFor: '203.0.113.9, 127.0.0.3', address: '127.0.0.3' });
});

test('untrusted proxy is the client', async (t) => {
  const stack = await startStack(t, { trustedProxies: [] });
  const proxyUrl = await startProxy(t, stack.url, '127.0.0.2');
  const seen = recordAddresses(stack);

  const client = stack.client({ localAddress: '127.0.0.3' }, proxyUrl);
  await client.next('connect');
  assert.deepEqual(seen[0], { forwardedFor: '127.0.0.3', address: '127.0.0.2' });
});

test('trustedProxies of every peer logs a warning', async (t) => {
  const stack = await startStack(t, { trustedProxies: ['10.0.0.0/8', '0.0.0.0/0'] });
  const warnings = stack.logs.filter((line) => line.level === 'warn' && line.attrs && line.attrs.network === '0.0.0.0/0');
  assert.equal(warnings.length, 1, 'one warning naming 0.0.0.0/0');
});
