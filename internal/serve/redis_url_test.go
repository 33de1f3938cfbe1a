package serve_test

import "os"

// testRedisURL returns the Redis server of the tests: SOCKAUTH_TEST_REDIS_URL,
// or the local default that make test starts.
func testRedisURL() string {
	if url := os.Getenv("SOCKAUTH_TEST_REDIS_URL"); url != "" {
		return url
	}
	return "redis://127.0.0.1:6379/0"
}
