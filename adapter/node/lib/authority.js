'use strict';

// Creates the gRPC client of the sockauth authority from
// proto/sockauth/v1/authority.proto, loaded at run time with
// @grpc/proto-loader.

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { inspect } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// protoDirs lists where authority.proto may be: the copy that `npm pack`
// puts in the package, then the repository's proto folder.
const protoDirs = [path.join(__dirname, '..', 'proto'), path.join(__dirname, '..', '..', '..', 'proto')];

function findProtoDir(explicit) {
  const candidates = explicit ? [explicit] : protoDirs;
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'sockauth', 'v1', 'authority.proto'))) {
      return dir;
    }
  }
  throw new Error('sockauth/v1/authority.proto not found in ' + candidates.join(' or ') + ': set protoDir');
}

// isLoopback reports whether the host of a host:port address is a loopback
// name or address.
function isLoopback(address) {
  const match = /^\[?([^\]]*)\]?:\d+$/.exec(address);
  if (!match) {
    return false;
  }
  const host = match[1];
  if (host === 'localhost') {
    return true;
  }
  if (net.isIPv4(host)) {
    return host.startsWith('127.');
  }
  return net.isIPv6(host) && (host === '::1' || host === '0:0:0:0:0:0:0:1');
}

// createAuthorityClient returns a sockauth.v1.AuthorityService client.
//
// options:
//   address      host:port of the authority (required)
//   credentials  grpc ChannelCredentials; default insecure (plain text)
//   serviceKey   service key sent as "authorization: Bearer KEY" metadata on
//                every call; with insecure credentials only to a loopback
//                address, unless allowInsecureKey is set
//   protoDir     folder holding sockauth/v1/authority.proto
//
// The returned object has the client, and metadata() that returns the
// Metadata to send with each call.
function createAuthorityClient(options) {
  if (!options || !options.address) {
    throw new Error('sockauth: missing authority address');
  }
  if (typeof options.address !== 'string' || !/^(\[[^\]]+\]|[^:]+):\d+$/.test(options.address)) {
    throw new Error('sockauth: invalid option address ' + inspect(options.address) + ': expected host:port, such as 127.0.0.1:7070');
  }
  if (options.credentials !== undefined && !(options.credentials instanceof grpc.ChannelCredentials)) {
    throw new Error('sockauth: invalid option credentials: expected @grpc/grpc-js ChannelCredentials, such as grpc.credentials.createSsl(ca)');
  }
  if (options.serviceKey !== undefined && options.serviceKey !== null && typeof options.serviceKey !== 'string') {
    throw new Error('sockauth: invalid option serviceKey: expected a string, or none for an authority without service keys');
  }
  const secure = Boolean(options.credentials);
  if (options.serviceKey && !secure && !isLoopback(options.address) && !options.allowInsecureKey) {
    throw new Error('sockauth: will not send the service key in plain text to ' + options.address +
      ': pass TLS credentials, or set allowInsecureKey');
  }

  const definition = protoLoader.loadSync('sockauth/v1/authority.proto', {
    includeDirs: [findProtoDir(options.protoDir)],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true
  });
  const sockauthv1 = grpc.loadPackageDefinition(definition).sockauth.v1;
  const client = new sockauthv1.AuthorityService(options.address, options.credentials || grpc.credentials.createInsecure());

  const serviceKey = options.serviceKey || '';
  return {
    client: client,
    metadata() {
      const md = new grpc.Metadata();
      if (serviceKey) {
        md.set('authorization', 'Bearer ' + serviceKey);
      }
      return md;
    },
    close() {
      client.close();
    }
  };
}

// unaryCall calls a unary method with the service key and a deadline of
// timeoutMs, and resolves with the response.
function unaryCall(authority, method, request, timeoutMs) {
  return new Promise((resolve, reject) => {
    authority.client[method](request, authority.metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) {
        reject(error);
      } else {
        resolve(response);
      }
    });
  });
}

module.exports = { createAuthorityClient, unaryCall, isLoopback };
