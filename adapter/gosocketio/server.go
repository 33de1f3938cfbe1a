package gosocketio

import (
	"crypto/rand"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/session"
)

// RandomSessionIDs generates engine.io session ids from crypto/rand. The
// default generator of go-socket.io v1.7.0 counts up from 1, so a client
// could guess the session id of another connection. It is safe for
// concurrent use.
type RandomSessionIDs struct{}

var _ session.IDGenerator = RandomSessionIDs{}

// NewID returns a random id of at least 128 bits in base32 (A-Z, 2-7).
func (RandomSessionIDs) NewID() string {
	return rand.Text()
}

// NewServer returns a go-socket.io server whose engine.io session ids come
// from RandomSessionIDs, unless opts sets its own SessionIDGenerator. opts
// may be nil and is not modified.
func NewServer(opts *engineio.Options) *socketio.Server {
	var copied engineio.Options
	if opts != nil {
		copied = *opts
	}
	if copied.SessionIDGenerator == nil {
		copied.SessionIDGenerator = RandomSessionIDs{}
	}
	return socketio.NewServer(&copied)
}
