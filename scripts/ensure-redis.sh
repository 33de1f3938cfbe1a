#!/usr/bin/env bash
# Makes sure a Redis server responds on 127.0.0.1:6379 for the tests: starts one
# without persistence when none runs, and installs Debian's redis-server first
# when it is missing.
set -euo pipefail

if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
	exit 0
fi

if ! command -v redis-server >/dev/null; then
	echo "redis-server is missing; installing Debian's package" >&2
	apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi

echo "starting redis-server on 127.0.0.1:6379" >&2
mkdir -p /tmp/sockauth-redis
redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
	--dir /tmp/sockauth-redis --logfile /tmp/sockauth-redis/redis.log

for _ in $(seq 50); do
	if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.1
done
echo "redis-server did not respond on 127.0.0.1:6379; see /tmp/sockauth-redis/redis.log" >&2
exit 1
