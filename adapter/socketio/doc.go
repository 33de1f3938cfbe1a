// Package socketio binds the sockauth flow of package adapter to
// github.com/zishang520/socket.io/servers/socket/v3 v3.0.6, a socket.io
// server that speaks the protocol of socket.io-client 3.x and 4.x
// (Engine.IO 4).
//
// Build the server, attach a Binding to a namespace with New or Attach, and
// register the application's events with Binding.OnEvent so that they reach
// it only from authenticated sockets. Here client is the authority's gRPC
// client, sockauthv1.NewAuthorityServiceClient of a connection from
// grpc.NewClient:
//
//	server := socket.NewServer(nil, nil)
//	binding, err := socketio.New(server, adapter.Config{Authority: client})
//	if err != nil {
//		return err
//	}
//	defer binding.Close()
//
//	binding.OnAuthenticated(func(s *socket.Socket, id adapter.Identity) {
//		s.Join(socket.Room("user:" + id.Subject))
//	})
//	binding.OnEvent("message", func(s *socket.Socket, id adapter.Identity, args ...any) {
//		server.To("chat").Emit("message", id.Subject, args[0])
//	})
//
//	http.Handle("/socket.io/", socketio.ReleaseHijacked(server.ServeHandler(nil)))
//
// ReleaseHijacked is optional. It cuts the memory that each idle WebSocket
// keeps by about 4 KiB of stack and the HTTP server's 8 KiB of buffers.
//
// A client authenticates in one of two ways:
//
//   - In the connection handshake, with the token in its auth payload
//     (io(url, {auth: {token}})), else in the token query parameter, else in
//     an Authorization: Bearer header. A valid token admits the socket
//     already authenticated, and the server emits authenticated with the
//     next session token right after the connection. A rejected token fails
//     the connection: the client receives connect_error with the message of
//     the unauthorized event and its data, {message, code, type:
//     "UnauthorizedError"}, and socket.io-client does not retry by itself.
//   - After connecting without a token, with the authenticate event, exactly
//     as for socket.io 2.x clients (see package adapter).
//
// Refresh, logout and expiry work as described in package adapter in both
// cases. When the server rejects or logs out a socket, it emits unauthorized
// or logged_out and then a socket.io DISCONNECT packet for the namespace.
// socket.io-client then reports the disconnect reason "io server disconnect"
// and does not reconnect. The Engine.IO connection stays open for the
// client's other namespaces, and socket.io-client closes it when none is
// left.
package socketio
