package e2e

import (
	"encoding/json"
	"testing"
)

// clientJSStep holds the fields of the clientjs scenario's output.
type clientJSStep struct {
	Handshake          bool      `json:"handshake"`
	Info               *authInfo `json:"info"`
	TokenIsCode        bool      `json:"token_is_code"`
	StoredTokenMatches bool      `json:"stored_token_matches"`
	Sent               string    `json:"sent"`
	Rotated            bool      `json:"rotated"`
	Sessions           []string  `json:"sessions"`
	SocketsConnected   []bool    `json:"sockets_connected"`
	Confirmed          bool      `json:"confirmed"`
	Others             []struct {
		Reason string `json:"reason"`
		Remote bool   `json:"remote"`
	} `json:"others"`
	Stored       *string `json:"stored"`
	ConnectError string  `json:"connect_error"`
}

func decodeClientJSStep(t *testing.T, s step) clientJSStep {
	t.Helper()
	var decoded clientJSStep
	if err := json.Unmarshal([]byte(s.Raw), &decoded); err != nil {
		t.Fatalf("step %s: %v; line: %s", s.Step, err, s.Raw)
	}
	return decoded
}

// TestClientHelperInNode runs client/js with socket.io-client 2.5.0, which
// authenticates with the authenticate event, and 4.8.4, which authenticates
// in the handshake, against an authority whose tokens live 5 s, so that the
// helper must refresh them.
func TestClientHelperInNode(t *testing.T) {
	requireE2E(t)
	chatURL := startStack(t, []string{"--token-ttl", "5s"}, nil)

	clients := []struct {
		name, module, transports string
		handshake                bool
	}{
		{name: "2.5.0", module: "socket.io-client", transports: "websocket"},
		{name: "4.8.4", module: "socket.io-client-v4", transports: "polling,websocket", handshake: true},
	}
	for _, client := range clients {
		t.Run(client.name, func(t *testing.T) {
			t.Parallel()
			result := runScenario(t, "clientjs", chatURL, "SOCKETIO_CLIENT="+client.module, "SOCKET_TRANSPORTS="+client.transports)

			connect := decodeClientJSStep(t, result.get(t, "connect"))
			if connect.Handshake != client.handshake {
				t.Errorf("helper used the handshake: %v, want %v", connect.Handshake, client.handshake)
			}
			if connect.Info == nil || connect.Info.Subject != "alice" || connect.Info.SessionID == "" {
				t.Fatalf("authenticated info %+v, want a session of alice", connect.Info)
			}
			if connect.TokenIsCode {
				t.Error("authenticated returned the login code itself, want a session token")
			}
			if !connect.StoredTokenMatches {
				t.Error("the store does not contain the token of authenticated")
			}

			message := result.get(t, "message")
			if sent := decodeClientJSStep(t, message).Sent; message.Message == nil || message.Message.Text != sent {
				t.Errorf("chat message %+v, want text %q", message.Message, sent)
			}

			refresh := decodeClientJSStep(t, result.get(t, "refresh"))
			if !refresh.Rotated {
				t.Error("the refresh returned the same token, want its successor")
			}
			if refresh.Info == nil || refresh.Info.SessionID != connect.Info.SessionID {
				t.Errorf("refresh info %+v, want session %s", refresh.Info, connect.Info.SessionID)
			}
			if !result.get(t, "refresh").Connected {
				t.Error("the socket was disconnected at the refresh")
			}

			together := decodeClientJSStep(t, result.get(t, "together"))
			for i, sid := range together.Sessions {
				if sid != connect.Info.SessionID {
					t.Errorf("session %d reconnected into %q, want %s", i+2, sid, connect.Info.SessionID)
				}
			}
			for i, connected := range together.SocketsConnected {
				if !connected {
					t.Errorf("session %d was disconnected after two sessions rotated the shared token together", i+1)
				}
			}

			logout := decodeClientJSStep(t, result.get(t, "logout"))
			if !logout.Confirmed {
				t.Error("logout resolved false, want the server's logged_out")
			}
			if len(logout.Others) != 2 {
				t.Fatalf("other sessions reported %d logouts, want 2", len(logout.Others))
			}
			for i, other := range logout.Others {
				if other.Reason != "logout" || !other.Remote {
					t.Errorf("other session %d: logged_out %+v, want reason logout and remote", i+1, other)
				}
			}
			if logout.Stored != nil {
				t.Error("the store still contains a token after the logout")
			}
			if logout.ConnectError == "" {
				t.Error("connect without a code or a stored token did not throw")
			}
		})
	}
}
