package adapter

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Event names of the wire contract.
const (
	// EventAuthenticate is emitted by the client with {token} or a bare token.
	EventAuthenticate = "authenticate"
	// EventLogout is emitted by the client with {token}, a bare token or nothing.
	EventLogout = "logout"
	// EventAuthenticated is emitted by the server with the new session token,
	// {expires_at, session_id, subject} and an ack callback.
	EventAuthenticated = "authenticated"
	// EventUnauthorized is emitted by the server before it disconnects a
	// socket whose authentication failed or expired.
	EventUnauthorized = "unauthorized"
	// EventLoggedOut is emitted by the server with {reason} before it
	// disconnects a socket whose session was logged out.
	EventLoggedOut = "logged_out"
)

// LogoutReason is the reason sent in logged_out after a logout event.
const LogoutReason = "logout"

// Code is the machine-readable reason in an unauthorized event
// (data.code).
type Code string

// Codes of the unauthorized event.
const (
	CodeInvalidToken          Code = "invalid_token"
	CodeTokenExpired          Code = "token_expired"
	CodeRevokedToken          Code = "revoked_token"
	CodeSessionExpired        Code = "session_expired"
	CodeAuthenticationTimeout Code = "authentication_timeout"
	CodeAuthorityUnavailable  Code = "authority_unavailable"

	// CodeRateLimited rejects an authenticate over Config.SocketAuthenticateLimit
	// or Config.AddressAuthenticateLimit. The client should wait before it
	// connects again.
	CodeRateLimited Code = "rate_limited"
	// CodePayloadTooLarge rejects an authenticate or logout payload larger
	// than Config.MaxPayloadBytes.
	CodePayloadTooLarge Code = "payload_too_large"
	// CodeTooManyConnections rejects a socket that connects while
	// Config.MaxUnauthenticatedSockets sockets wait for authentication.
	CodeTooManyConnections Code = "too_many_connections"
)

// message returns the human-readable text sent with the code.
func (c Code) message() string {
	switch c {
	case CodeInvalidToken:
		return "invalid token"
	case CodeTokenExpired:
		return "token expired"
	case CodeRevokedToken:
		return "token revoked"
	case CodeSessionExpired:
		return "session expired"
	case CodeAuthenticationTimeout:
		return "authentication timed out"
	case CodeAuthorityUnavailable:
		return "authority unavailable"
	case CodeRateLimited:
		return "too many authentication attempts, retry later"
	case CodePayloadTooLarge:
		return "payload too large"
	case CodeTooManyConnections:
		return "too many unauthenticated connections, retry later"
	}
	return string(c)
}

// errorDomain is the ErrorInfo domain of the authority's errors.
const errorDomain = "sockauth"

// CodeOf maps an error returned by an AuthorityServiceClient call to the code
// sent to the client. It reads the reason of the google.rpc.ErrorInfo detail
// with domain "sockauth" first and falls back on the gRPC status code.
// Unavailable, DeadlineExceeded, context errors and anything unexpected map
// to CodeAuthorityUnavailable.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeAuthorityUnavailable
	}

	st, ok := status.FromError(err)
	if !ok {
		return CodeAuthorityUnavailable
	}

	for _, info := range authorityErrorInfos(st) {
		if code, known := codeOfReason(info.GetReason()); known {
			return code
		}
	}

	// Without a known reason, fall back on the status code that the
	// authority uses for each group of reasons.
	switch st.Code() {
	case codes.InvalidArgument, codes.Unauthenticated:
		return CodeInvalidToken
	case codes.PermissionDenied:
		return CodeRevokedToken
	}
	return CodeAuthorityUnavailable
}

// CallerRejected reports whether err is the authority's rejection of this
// server's own service key (reason CALLER_UNAUTHENTICATED or
// CALLER_FORBIDDEN): a configuration error of the server, which retrying
// does not fix.
func CallerRejected(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, info := range authorityErrorInfos(st) {
		if reason := info.GetReason(); reason == "CALLER_UNAUTHENTICATED" || reason == "CALLER_FORBIDDEN" {
			return true
		}
	}
	return false
}

// authorityErrorInfos returns the google.rpc.ErrorInfo details of st whose
// domain is the authority's.
func authorityErrorInfos(st *status.Status) []*errdetails.ErrorInfo {
	var infos []*errdetails.ErrorInfo
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain {
			infos = append(infos, info)
		}
	}
	return infos
}

func codeOfReason(reason string) (Code, bool) {
	switch reason {
	case "TOKEN_INVALID", "INVALID_ARGUMENT":
		return CodeInvalidToken, true
	case "TOKEN_EXPIRED":
		return CodeTokenExpired, true
	case "TOKEN_REUSED", "SESSION_REVOKED":
		return CodeRevokedToken, true
	case "SESSION_EXPIRED":
		return CodeSessionExpired, true
	case "CALLER_UNAUTHENTICATED", "CALLER_FORBIDDEN":
		// The authority rejected this server's service key: a server
		// misconfiguration, not a fault of the client's token.
		return CodeAuthorityUnavailable, true
	}
	return "", false
}

// revokedForLogout reports whether err is the authority's SESSION_REVOKED
// error for a session that its holder logged out, which the authority states
// in the ErrorInfo metadata key revoked_reason.
func revokedForLogout(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, info := range authorityErrorInfos(st) {
		if info.GetReason() == "SESSION_REVOKED" {
			return info.GetMetadata()["revoked_reason"] == "logout"
		}
	}
	return false
}
