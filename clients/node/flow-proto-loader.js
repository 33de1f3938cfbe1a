'use strict';

// Calls the authority with @grpc/grpc-js and @grpc/proto-loader, which load
// proto/sockauth/v1/authority.proto at run time; no generated code.
//
// Environment: AUTHORITY_ADDR (host:port), PROTO_DIR (the repository's proto
// folder) and SERVICE_KEY (optional, sent as authorization: Bearer KEY).

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { main } = require('./lib/scenario');

const protoDir = process.env.PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const definition = protoLoader.loadSync('sockauth/v1/authority.proto', {
  includeDirs: [protoDir],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true
});
const sockauth = grpc.loadPackageDefinition(definition).sockauth.v1;

const client = new sockauth.AuthorityService(process.env.AUTHORITY_ADDR, grpc.credentials.createInsecure());

function callOptions() {
  const metadata = new grpc.Metadata();
  if (process.env.SERVICE_KEY) {
    metadata.set('authorization', 'Bearer ' + process.env.SERVICE_KEY);
  }
  return { metadata: metadata, options: { deadline: Date.now() + 10000 } };
}

function call(method, request) {
  const { metadata, options } = callOptions();
  return new Promise((resolve, reject) => {
    client[method](request, metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function timestamp(value) {
  return new Date(value.seconds * 1000 + Math.floor(value.nanos / 1e6)).toISOString();
}

function info(value) {
  return {
    token_id: value.token_id,
    session_id: value.session_id,
    subject: value.subject,
    type: value.type,
    generation: value.generation,
    expires_at: timestamp(value.expires_at),
    claims: value.claims
  };
}

main({
  issueCode: async (request) => {
    const response = await call('IssueCode', request);
    return { code: response.code, info: info(response.info) };
  },
  authenticate: async (request) => {
    const response = await call('Authenticate', request);
    return { token: response.token, info: info(response.info) };
  },
  confirmRotation: async (request) => call('ConfirmRotation', request),
  verify: async (request) => {
    const response = await call('Verify', request);
    return { current: response.current, info: info(response.info) };
  },
  logout: async (request) => call('Logout', request)
}, () => client.close());
