"""Call the sockauth authority from Python with stubs that buf generates.

The Go test in e2e/clients_test.go generates the stubs with
buf.gen.python.yaml into a folder, and google/rpc/status.proto and
error_details.proto from the npm package google-proto-files into the same
folder, then runs this script with that folder on sys.path. The script writes
the same JSON lines as clients/node/lib/scenario.js.

Environment: AUTHORITY_ADDR (host:port) and SERVICE_KEY (optional, sent as
authorization: Bearer KEY).

Runtime: Debian's python3-grpcio and python3-protobuf, whose releases must
match the protoc and grpc_python_plugin that generated the stubs.
"""

import json
import os
import sys
import traceback

import grpc
from google.protobuf import json_format

from google.rpc import error_details_pb2, status_pb2
from sockauth.v1 import authority_pb2, authority_pb2_grpc

CALL_TIMEOUT_SECONDS = 10
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def write_line(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_info(error):
    """Return the first google.rpc.ErrorInfo detail of a failed call, or None."""
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info
    return None


def describe_error(error):
    info = error_info(error)
    return {
        "code": error.code().value[0],
        "message": error.details(),
        "domain": info.domain if info else "",
        "reason": info.reason if info else "",
    }


def token_info(info):
    return {
        "token_id": info.token_id,
        "session_id": info.session_id,
        "subject": info.subject,
        "type": authority_pb2.TokenType.Name(info.type),
        "generation": info.generation,
        "expires_at": json_format.MessageToJson(info.expires_at).strip('"'),
        "claims": dict(info.claims),
    }


class Client:
    """Wraps the generated stub with the service key and a deadline."""

    def __init__(self, channel, service_key):
        self.stub = authority_pb2_grpc.AuthorityServiceStub(channel)
        self.metadata = [("authorization", "Bearer " + service_key)] if service_key else []

    def call(self, method, request):
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=CALL_TIMEOUT_SECONDS)

    def expect_error(self, name, method, request):
        try:
            self.call(method, request)
        except grpc.RpcError as error:
            return describe_error(error)
        raise AssertionError(name + " succeeded, expected an error")


def run(client):
    issued = client.call("IssueCode", authority_pb2.IssueCodeRequest(subject="alice", claims={"role": "member"}))
    write_line({"step": "issue", "has_code": len(issued.code) > 0, "info": token_info(issued.info)})

    first = client.call("Authenticate", authority_pb2.AuthenticateRequest(token=issued.code))
    write_line({"step": "authenticate", "has_token": len(first.token) > 0, "info": token_info(first.info)})

    confirmed = client.call("ConfirmRotation", authority_pb2.ConfirmRotationRequest(token=first.token))
    write_line({"step": "confirm", "confirmed": confirmed.confirmed})

    verified = client.call("Verify", authority_pb2.VerifyRequest(token=first.token))
    write_line({"step": "verify", "current": verified.current, "info": token_info(verified.info)})

    logged_out = client.call("Logout", authority_pb2.LogoutRequest(token=first.token))
    write_line({"step": "logout", "session_id": logged_out.session_id, "subject": logged_out.subject})

    write_line({
        "step": "verify_after_logout",
        "error": client.expect_error("Verify after Logout", "Verify", authority_pb2.VerifyRequest(token=first.token)),
    })

    # A second session: presenting its exchanged code again is reuse.
    second = client.call("IssueCode", authority_pb2.IssueCodeRequest(subject="bob"))
    exchanged = client.call("Authenticate", authority_pb2.AuthenticateRequest(token=second.code))
    client.call("ConfirmRotation", authority_pb2.ConfirmRotationRequest(token=exchanged.token))
    write_line({
        "step": "reuse",
        "error": client.expect_error(
            "Authenticate with a used code", "Authenticate", authority_pb2.AuthenticateRequest(token=second.code)),
    })

    write_line({
        "step": "invalid",
        "error": client.expect_error(
            "Authenticate with garbage", "Authenticate",
            authority_pb2.AuthenticateRequest(token="v2.local.not-a-token.e30")),
    })
    write_line({"step": "done"})


def main():
    with grpc.insecure_channel(os.environ["AUTHORITY_ADDR"]) as channel:
        try:
            run(Client(channel, os.environ.get("SERVICE_KEY", "")))
        except Exception:  # report any failure as the scenario's last line
            write_line({"step": "error", "message": traceback.format_exc()})
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
