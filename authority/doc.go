// Package authority is the domain of sockauth: it mints login codes and session
// tokens, rotates them, detects reuse and revokes sessions.
//
// A session is one login: the chain of tokens that starts with a code. The Store
// keeps one record per session, keyed by its id, and the Service decides every
// rotation with an atomic compare-and-swap on that record, so several Service
// instances may share one Store. The package imports no gRPC or socket library.
package authority
