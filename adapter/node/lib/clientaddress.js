'use strict';

// Finds the IP address of a socket's client for the per-address limit: the
// TCP peer, or behind trusted reverse proxies the address that they wrote
// into X-Forwarded-For. It follows Flow.ClientAddress of the Go adapter
// (adapter/clientaddress.go).

const net = require('node:net');
const { inspect } = require('node:util');

// DEFAULT_TRUSTED_PROXIES are the loopback networks, from which a reverse
// proxy on the same host connects.
const DEFAULT_TRUSTED_PROXIES = Object.freeze(['127.0.0.0/8', '::1/128']);

// parseAddress parses an IP address that may carry a port, as in
// "192.0.2.1:443" or "[2001:db8::1]:443", or brackets without a port. It
// returns the address in one canonical spelling: IPv4 addresses mapped into
// IPv6 become IPv4, zones are dropped and IPv6 is compressed in lower case.
// It returns null for anything else.
function parseAddress(text) {
  if (typeof text !== 'string') {
    return null;
  }
  let host = text;
  const bracketed = /^\[([^[\]]*)\](?::[^:]*)?$/.exec(text);
  if (bracketed) {
    host = bracketed[1];
  } else if (text.indexOf(':') >= 0 && text.indexOf(':') === text.lastIndexOf(':')) {
    host = text.slice(0, text.indexOf(':'));
  }

  if (net.isIPv4(host)) {
    return host;
  }
  const zone = host.indexOf('%');
  if (zone >= 0) {
    host = host.slice(0, zone);
  }
  if (!net.isIPv6(host)) {
    return null;
  }
  const canonical = new net.SocketAddress({ address: host, family: 'ipv6' }).address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(canonical);
  return mapped ? mapped[1] : canonical;
}

// isLoopbackAddress reports whether address, as parseAddress returns it, is
// in 127.0.0.0/8 or is ::1.
function isLoopbackAddress(address) {
  return address === '::1' || (net.isIPv4(address) && address.startsWith('127.'));
}

// TrustedProxies is a set of networks of reverse proxies, given as CIDR
// strings such as "10.0.0.0/8" or "fd00::/8". A bare address stands for
// itself alone. An IPv4 network contains only IPv4 addresses and an IPv6
// network only IPv6 addresses, because parseAddress turns IPv4 addresses
// mapped into IPv6 into IPv4.
class TrustedProxies {
  constructor(networks = DEFAULT_TRUSTED_PROXIES) {
    if (!Array.isArray(networks)) {
      throw new Error('sockauth: invalid option trustedProxies ' + inspect(networks) +
        ': expected an array of networks such as ["10.0.0.0/8"]');
    }
    // One BlockList per family, because a BlockList also matches IPv4
    // addresses against IPv6 networks such as ::/0.
    this.ipv4 = new net.BlockList();
    this.ipv6 = new net.BlockList();
    networks.forEach((network, i) => {
      const parsed = parseNetwork(network);
      if (!parsed) {
        throw new Error('sockauth: invalid option trustedProxies[' + i + '] ' + inspect(network) +
          ': expected a network such as 10.0.0.0/8 or fd00::/8, or an IP address');
      }
      const list = parsed.family === 'ipv4' ? this.ipv4 : this.ipv6;
      list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    });
  }

  // contains reports whether address, as parseAddress returns it, is in one
  // of the networks.
  contains(address) {
    if (net.isIPv4(address)) {
      return this.ipv4.check(address, 'ipv4');
    }
    return net.isIPv6(address) && this.ipv6.check(address, 'ipv6');
  }
}

// parseNetwork parses "ADDRESS/PREFIX" or a bare address into {address,
// prefix, family}, or returns null.
function parseNetwork(text) {
  if (typeof text !== 'string') {
    return null;
  }
  const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!match || match[1].includes('%')) {
    return null;
  }
  const address = match[1];
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
  if (!family) {
    return null;
  }
  const bits = family === 'ipv4' ? 32 : 128;
  const prefix = match[2] === undefined ? bits : Number(match[2]);
  if (prefix > bits) {
    return null;
  }
  // Client addresses are compared after unmapping, so a network of IPv4
  // addresses mapped into IPv6 becomes the IPv4 network. A shorter prefix
  // would also cover other IPv6 addresses and is rejected.
  const unmapped = family === 'ipv6' ? parseAddress(address) : null;
  if (unmapped !== null && net.isIPv4(unmapped)) {
    if (prefix < 96) {
      return null;
    }
    return { address: unmapped, prefix: prefix - 96, family: 'ipv4' };
  }
  return { address: address, prefix: prefix, family: family };
}

// forwardedFor returns the entries of the X-Forwarded-For headers of a
// Node.js headers object, in order, with the spaces around them removed.
// Node.js joins repeated X-Forwarded-For headers into one value with commas.
function forwardedFor(headers) {
  const value = headers ? headers['x-forwarded-for'] : undefined;
  if (value === undefined || value === null) {
    return [];
  }
  const values = Array.isArray(value) ? value : [value];
  const entries = [];
  for (const line of values) {
    for (const entry of String(line).split(',')) {
      entries.push(entry.trim());
    }
  }
  return entries;
}

// clientAddress returns the IP address of the client of a connection, given
// the address of its TCP peer (a bare IP address or host:port), the headers
// of its HTTP request, and the TrustedProxies.
//
// When the peer is a trusted proxy, the client is the rightmost entry of
// X-Forwarded-For that is not itself a trusted proxy. Proxies append the
// address of their own peer to that header, so the entries right of the
// first untrusted one were written by trusted proxies, and the entries left
// of it are whatever the client sent. When the header is missing, or an
// entry is not an IP address, the nearest address known to be genuine is
// returned: the peer itself or the entry right of the bad one.
//
// It returns "" when the peer is not an IP address.
function clientAddress(remoteAddress, headers, trusted) {
  const peer = parseAddress(remoteAddress);
  if (peer === null) {
    return '';
  }
  if (!trusted.contains(peer)) {
    return peer;
  }

  let client = peer;
  const entries = forwardedFor(headers);
  for (let i = entries.length - 1; i >= 0; i--) {
    const hop = parseAddress(entries[i]);
    if (hop === null) {
      break;
    }
    client = hop;
    if (!trusted.contains(hop)) {
      break;
    }
  }
  return client;
}

module.exports = {
  DEFAULT_TRUSTED_PROXIES,
  TrustedProxies,
  clientAddress,
  forwardedFor,
  isLoopbackAddress,
  parseAddress
};
