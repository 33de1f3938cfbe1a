// Calls the authority with the TypeScript client that buf generates with
// ts-proto (buf.gen.ts.yaml). The Go test in e2e/clients_test.go generates
// the code into gen/ beside this file, compiles both with tsc and runs the
// result.
//
// Environment: AUTHORITY_ADDR (host:port) and SERVICE_KEY (optional, sent as
// authorization: Bearer KEY).

import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

import { AuthorityServiceClient, type TokenInfo, tokenTypeToJSON } from "./gen/sockauth/v1/authority";

// The scenario is shared with the proto-loader client, in plain JavaScript.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { main } = require("./lib/scenario") as {
  main: (rpc: Record<string, (request: any) => Promise<any>>, close: () => void) => void;
};

const client = new AuthorityServiceClient(process.env.AUTHORITY_ADDR ?? "", credentials.createInsecure());

function metadata(): Metadata {
  const md = new Metadata();
  if (process.env.SERVICE_KEY) {
    md.set("authorization", "Bearer " + process.env.SERVICE_KEY);
  }
  return md;
}

// unary turns one callback-style method of the generated client into a
// promise with a 10 s deadline.
function unary<Req, Res>(
  method: (request: Req, md: Metadata, options: { deadline: Date }, callback: (e: ServiceError | null, r: Res) => void) => unknown,
): (request: Req) => Promise<Res> {
  return (request) =>
    new Promise((resolve, reject) => {
      method.call(client, request, metadata(), { deadline: new Date(Date.now() + 10000) }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
}

function info(value: TokenInfo | undefined) {
  if (!value) {
    throw new Error("response without token info");
  }
  return {
    token_id: value.tokenId,
    session_id: value.sessionId,
    subject: value.subject,
    type: tokenTypeToJSON(value.type),
    generation: value.generation,
    expires_at: value.expiresAt?.toISOString(),
    claims: value.claims,
  };
}

const issueCode = unary(client.issueCode);
const authenticate = unary(client.authenticate);
const confirmRotation = unary(client.confirmRotation);
const verify = unary(client.verify);
const logout = unary(client.logout);

main(
  {
    issueCode: async (request) => {
      const response = await issueCode({ subject: request.subject, claims: request.claims });
      return { code: response.code, info: info(response.info) };
    },
    authenticate: async (request) => {
      const response = await authenticate({ token: request.token });
      return { token: response.token, info: info(response.info) };
    },
    confirmRotation: async (request) => confirmRotation({ token: request.token }),
    verify: async (request) => {
      const response = await verify({ token: request.token });
      return { current: response.current, info: info(response.info) };
    },
    logout: async (request) => {
      const response = await logout({ token: request.token });
      return { session_id: response.sessionId, subject: response.subject };
    },
  },
  () => client.close(),
);
