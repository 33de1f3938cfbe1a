// Package gosocketio binds the sockauth flow of package adapter to
// github.com/googollee/go-socket.io v1.7.0, a socket.io 2.x server.
//
// Build the server with NewServer, attach a Binding to a namespace with New
// or Attach, and register the application's events with Binding.OnEvent so
// that they reach it only from authenticated connections. Here client is the
// authority's gRPC client, sockauthv1.NewAuthorityServiceClient of a
// connection from grpc.NewClient (see the package example). The server
// offers only WebSocketTransport, because go-socket.io v1.7.0 breaks a
// client's upgrade from HTTP long-polling to WebSocket, so clients connect
// with transports: ['websocket']:
//
//	server := gosocketio.NewServer(&engineio.Options{
//		Transports: []transport.Transport{gosocketio.NewWebSocketTransport()},
//	})
//	binding, err := gosocketio.New(server, adapter.Config{Authority: client})
//	if err != nil {
//		return err
//	}
//	defer binding.Close()
//
//	binding.OnAuthenticated(func(conn socketio.Conn, id adapter.Identity) {
//		conn.Join("user:" + id.Subject)
//	})
//	binding.OnEvent("message", func(conn socketio.Conn, id adapter.Identity, text string) {
//		server.BroadcastToRoom("/", "chat", "message", id.Subject, text)
//	})
//
//	go server.Serve()
//	defer server.Close()
//	http.Handle("/socket.io/", server)
//
// A server that offers HTTP long-polling too should list it after
// WebSocket in engineio.Options.Transports, so that it offers no upgrade
// from long-polling. It should be served through Handler, which keeps
// go-socket.io from rejecting a client's first poll with "invalid sid
// value", bounds the body of a POST, and ends a POST whose session has
// closed instead of holding it for a minute:
//
//	handler := gosocketio.Handler(server, logger)
//	http.Handle("/socket.io/", handler)
//	httpServer.RegisterOnShutdown(handler.CancelPayloadReads)
//
// With long-polling, go-socket.io's Emit blocks while the client is not
// polling, for up to the ping timeout when the client has gone without a
// close packet. BroadcastToRoom, as in the example above, emits to one
// socket after another, so one such socket delays the rest. A server with
// long-polling clients should emit to each socket from a goroutine of its
// own, as cmd/chat-demo does.
//
// NewWebSocketTransport returns a WebSocket transport that keeps about half
// the memory per idle connection of websocket.Default and bounds the size
// of a message. Pass it in engineio.Options.Transports.
//
// What a socket.io-client 2.5.0 client sees, over websocket and polling, when
// the server rejects or logs out its socket: the unauthorized or logged_out
// event, then a DISCONNECT packet for the namespace. The client then emits
// disconnect with reason "io server disconnect", does not reconnect, and
// closes the transport. The server closes the engine.io connection
// CloseDelay later if the client has not closed it. Closing the connection
// ends every namespace of that client.
package gosocketio
