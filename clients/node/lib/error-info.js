'use strict';

// Reads the google.rpc.ErrorInfo detail of a failed @grpc/grpc-js call. The
// authority sends it in the grpc-status-details-bin trailer, a serialized
// google.rpc.Status whose details are google.protobuf.Any messages. The
// message definitions come from the npm package google-proto-files.

const path = require('node:path');
const protobuf = require('protobufjs');

const googleProtos = path.dirname(require.resolve('google-proto-files/package.json'));
const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

const root = new protobuf.Root();
root.resolvePath = (origin, target) => (path.isAbsolute(target) ? target : path.join(googleProtos, target));
root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const Status = root.lookupType('google.rpc.Status');
const ErrorInfo = root.lookupType('google.rpc.ErrorInfo');

// errorInfo returns {domain, reason, metadata} of the first ErrorInfo detail
// of a grpc-js ServiceError, or null when the error carries none.
function errorInfo(error) {
  if (!error || !error.metadata) {
    return null;
  }
  for (const raw of error.metadata.get('grpc-status-details-bin')) {
    const status = Status.decode(raw);
    for (const detail of status.details) {
      if (detail.type_url === ERROR_INFO_TYPE_URL) {
        const info = ErrorInfo.toObject(ErrorInfo.decode(detail.value), { defaults: true });
        return { domain: info.domain, reason: info.reason, metadata: info.metadata };
      }
    }
  }
  return null;
}

module.exports = { errorInfo };
