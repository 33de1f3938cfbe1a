// Package adapter runs the sockauth authentication flow for socket.io
// connections, independent of the socket.io server library.
//
// A [Flow] turns the client events authenticate and logout into calls to the
// sockauth authority. It keeps one state machine per socket (waiting for
// authentication, authenticated, closed) and enforces the authentication
// timeout and the token expiry. On logout it disconnects every socket of the
// session.
//
// A Flow keeps no auth state that other socket servers need. It keeps a
// WatchRevocations stream open to the authority and disconnects its sockets
// of every session revoked anywhere: with logged_out after a logout, with
// unauthorized (session_expired) for a session past its maximum age, and with
// unauthorized (revoked_token) otherwise. When the stream breaks, or before
// it first opens, revocations can be missed, so the Flow reconnects with
// backoff and calls Verify for the sessions of its sockets once a stream is
// open again. Config.DisableRevocationWatch turns the stream off.
// A binding for one socket.io server library (such as package
// adapter/gosocketio) implements [Socket] and forwards the library's connect,
// event, ack and disconnect callbacks to the Flow.
//
// Wire contract, as seen by a socket.io client:
//
//   - The client emits "authenticate" with {token: "..."} or a bare token
//     string, within Config.AuthTimeout of connecting.
//   - The server emits "authenticated" with the new session token and
//     {expires_at, session_id, subject}, and an ack callback. When the client
//     acknowledges, the adapter confirms the rotation with the authority.
//   - On any failure the server emits "unauthorized" with
//     {message, data: {message, code, type: "UnauthorizedError"}} and
//     disconnects the socket without waiting for the client.
//   - The client emits "logout" with {token} (or a bare string, or nothing to
//     use the socket's current token). The server revokes the session, emits
//     "logged_out" with {reason: "logout"} to every socket of that session
//     connected to this Flow, and disconnects them.
//
// The Flow limits what an unauthenticated client can cost: authenticate
// events per socket and per client address (rate_limited), the size of
// authenticate and logout payloads (payload_too_large) and the number of
// sockets that wait for authentication (too_many_connections). Behind a
// reverse proxy listed in Config.TrustedProxies, the client address comes from
// X-Forwarded-For (see Flow.ClientAddress). With
// Config.Registerer set, it exports Prometheus metrics of its sockets,
// authentication durations, timeouts and rejections, named
// sockauth_adapter_*.
//
// The adapter never logs token strings. It logs token ids (jti), session ids
// (sid), subjects and socket ids.
package adapter
