package socketio

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockauth/sockauth/adapter"
)

// errNoHandshakeToken reports a handshake without a token, whose socket
// must then authenticate with the authenticate event.
var errNoHandshakeToken = errors.New("no token in the handshake")

// errClosedMessage is the connect_error message of a socket that arrives
// after Close.
const errClosedMessage = "server closing"

// authenticateHandshake is the namespace middleware. A socket without a
// handshake token is admitted unauthenticated. A socket with one is
// admitted only when the authority accepts the token, and otherwise fails
// with connect_error carrying the unauthorized message and data.
//
// The middleware runs on the goroutine that reads the client's packets, and
// so does the authority call: the client sends nothing else before its
// namespace is connected, and holding the reader keeps the order of
// packets (see connectOrder).
func (b *Binding) authenticateHandshake(s *socket.Socket, next func(*socket.ExtendedError)) {
	token, err := tokenFromHandshake(s)
	if errors.Is(err, errNoHandshakeToken) {
		b.order.admit(s, next)
		return
	}
	if err != nil {
		b.log.Info("handshake token rejected", "socket", s.Id(), "reason", string(adapter.CodeInvalidToken), "error", err)
		rejection := &adapter.HandshakeError{Code: adapter.CodeInvalidToken}
		next(socket.NewExtendedError(rejection.Message(), rejection.Data()))
		return
	}

	admission, err := b.authenticateToken(s, token)
	var rejection *adapter.HandshakeError
	switch {
	case errors.As(err, &rejection):
		next(socket.NewExtendedError(rejection.Message(), rejection.Data()))
	case err != nil:
		next(socket.NewExtendedError(errClosedMessage, nil))
	case !b.keepAdmission(s, admission):
		next(socket.NewExtendedError(errClosedMessage, nil))
	default:
		b.order.admit(s, next)
	}
}

// authenticateToken exchanges the handshake token of s unless the binding
// is closed, with the client address for the flow's per-address limit.
// Close cancels the call and waits for it.
func (b *Binding) authenticateToken(s *socket.Socket, token string) (*adapter.Admission, error) {
	b.admissionsMu.Lock()
	if b.closed {
		b.admissionsMu.Unlock()
		return nil, adapter.ErrClosed
	}
	b.handshakes.Add(1)
	b.admissionsMu.Unlock()
	defer b.handshakes.Done()

	ctx := adapter.WithClientAddress(b.handshakeCtx, clientAddress(b.flow, s))
	return b.flow.AuthenticateHandshake(ctx, string(s.Id()), token)
}

// keepAdmission files the admission of s until its connection handler
// takes it, for at most the auth timeout. It returns false after Close.
func (b *Binding) keepAdmission(s *socket.Socket, admission *adapter.Admission) bool {
	b.admissionsMu.Lock()
	defer b.admissionsMu.Unlock()

	if b.closed {
		return false
	}
	pending := &pendingAdmission{admission: admission}
	pending.expiry = time.AfterFunc(b.flow.Config().AuthTimeout, func() {
		b.admissionsMu.Lock()
		defer b.admissionsMu.Unlock()
		if b.admissions[s] == pending {
			delete(b.admissions, s)
		}
	})
	b.admissions[s] = pending
	return true
}

// takeAdmission removes and returns the admission of s, or nil when its
// handshake carried no token.
func (b *Binding) takeAdmission(s *socket.Socket) *adapter.Admission {
	b.admissionsMu.Lock()
	defer b.admissionsMu.Unlock()

	pending, ok := b.admissions[s]
	if !ok {
		return nil
	}
	pending.expiry.Stop()
	delete(b.admissions, s)
	return pending.admission
}

// tokenFromHandshake returns the token of the handshake: the token member
// of the client's auth payload, else the token query parameter of the
// Engine.IO handshake request, else the credentials of its Authorization
// header with the Bearer scheme. It returns errNoHandshakeToken when there
// is none, and another error for a token in the wrong form, such as a
// non-string auth token or a repeated query parameter.
func tokenFromHandshake(s *socket.Socket) (string, error) {
	if auth := s.Handshake().Auth; auth != nil {
		if value, ok := auth["token"]; ok && value != nil {
			token, ok := value.(string)
			if !ok {
				return "", fmt.Errorf("invalid auth payload: token of type %T, expected a string", value)
			}
			return token, nil
		}
	}

	request := s.Request().Request()
	if values, ok := request.URL.Query()["token"]; ok && len(values) > 0 {
		if len(values) > 1 {
			return "", errors.New("invalid query: the token parameter is given more than once")
		}
		return values[0], nil
	}

	return bearerToken(request.Header)
}

// bearerToken returns the credentials of an Authorization header with the
// Bearer scheme, whose name HTTP compares without regard to case. A header
// with another scheme, such as the Basic credentials that a browser adds
// behind a password-protected proxy, is no token.
func bearerToken(header http.Header) (string, error) {
	var tokens []string
	for _, value := range header.Values("Authorization") {
		scheme, credentials, found := strings.Cut(strings.TrimSpace(value), " ")
		if found && strings.EqualFold(scheme, "Bearer") {
			tokens = append(tokens, strings.TrimSpace(credentials))
		}
	}

	switch len(tokens) {
	case 0:
		return "", errNoHandshakeToken
	case 1:
		return tokens[0], nil
	}
	return "", errors.New("invalid Authorization header: more than one Bearer token")
}
