package gosocketio_test

import (
	"log"
	"net/http"
	"time"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/adapter/gosocketio"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// A chat server whose messages reach the handler only from authenticated
// connections.
func Example() {
	grpcConn, err := grpc.NewClient("127.0.0.1:7443", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer grpcConn.Close()

	// Only WebSocket: go-socket.io v1.7.0 breaks the upgrade from HTTP
	// long-polling, so clients connect with transports: ['websocket'].
	server := gosocketio.NewServer(&engineio.Options{
		Transports: []transport.Transport{gosocketio.NewWebSocketTransport()},
	})
	binding, err := gosocketio.New(server, adapter.Config{
		Authority:   sockauthv1.NewAuthorityServiceClient(grpcConn),
		AuthTimeout: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer binding.Close()

	binding.OnAuthenticated(func(conn socketio.Conn, id adapter.Identity) {
		conn.Join("chat")
		conn.Emit("welcome", id.Subject)
	})
	binding.OnEvent("message", func(conn socketio.Conn, id adapter.Identity, text string) {
		server.BroadcastToRoom("/", "chat", "message", id.Subject, text)
	})
	binding.OnDisconnect(func(conn socketio.Conn, id adapter.Identity, reason string) {
		if id.SessionID != "" {
			log.Printf("%s left: %s", id.Subject, reason)
		}
	})

	go func() {
		if err := server.Serve(); err != nil {
			log.Print(err)
		}
	}()
	defer server.Close()

	http.Handle("/socket.io/", server)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}
