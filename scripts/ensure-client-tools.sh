#!/usr/bin/env bash
# Makes sure the tools of the cross-language client tests are installed:
# protoc and grpc_python_plugin generate the Python stubs, and Debian's
# python3-grpcio and python3-protobuf run them. The four come from one Debian
# release, so the generated code matches the runtime (protobuf 3.21 and
# grpcio 1.51 on Debian 12). Installs the missing ones with apt-get.
set -euo pipefail

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null || missing+=(protobuf-compiler-grpc)
if ! /usr/bin/python3 -c 'import grpc, google.protobuf' >/dev/null 2>&1; then
	missing+=(python3-grpcio python3-protobuf)
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "installing Debian packages for the client tests: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "not root: run 'apt-get install ${missing[*]}' as root, then make test again" >&2
	exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
