package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/sockauth/sockauth/adapter"
	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

const (
	// maxLoginBodyBytes bounds the JSON body of POST /login. A username and a
	// password of the maximum lengths below fit with room to spare.
	maxLoginBodyBytes = 4 << 10

	// maxUsernameBytes matches the authority's limit on a subject.
	maxUsernameBytes = 256
	maxPasswordBytes = 1024

	// issueCodeTimeout bounds the IssueCode call made for one login request.
	issueCodeTimeout = 5 * time.Second
)

// codeIssuer is the part of the authority's gRPC client that the login handler
// uses. sockauthv1.AuthorityServiceClient implements it, and tests use a fake.
type codeIssuer interface {
	IssueCode(ctx context.Context, in *sockauthv1.IssueCodeRequest, opts ...grpc.CallOption) (*sockauthv1.IssueCodeResponse, error)
}

// userStore checks demo credentials. Its users are fixed when it is built, so it
// is safe for concurrent use.
type userStore struct {
	// passwordHashes maps a username to the SHA-256 hash of its password. Hashing
	// gives every comparison the same length, so the time taken does not depend on
	// the length of the stored password.
	passwordHashes map[string][sha256.Size]byte
}

// newUserStore builds a store from NAME:PASSWORD pairs. It returns an error for a
// pair without a colon, an empty or too long name or password, or a repeated name.
func newUserStore(pairs []string) (*userStore, error) {
	store := &userStore{passwordHashes: make(map[string][sha256.Size]byte, len(pairs))}

	for _, pair := range pairs {
		name, password, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fmt.Errorf("invalid user %q: expected NAME:PASSWORD", redactUser(pair))
		}
		if name == "" || len(name) > maxUsernameBytes {
			return nil, fmt.Errorf("invalid user %q: the name must have 1 to %d bytes", name, maxUsernameBytes)
		}
		if password == "" || len(password) > maxPasswordBytes {
			return nil, fmt.Errorf("invalid user %q: the password must have 1 to %d bytes", name, maxPasswordBytes)
		}
		if _, dup := store.passwordHashes[name]; dup {
			return nil, fmt.Errorf("invalid user %q: the name is given twice", name)
		}
		store.passwordHashes[name] = sha256.Sum256([]byte(password))
	}

	return store, nil
}

// redactUser describes a --user value by its length only, because a value
// without a colon may be a mistyped password.
func redactUser(pair string) string {
	return fmt.Sprintf("<%d bytes>", len(pair))
}

// check reports whether password is the password of username. An unknown
// username is compared against an all-zero hash, so that it takes as long as a
// wrong password and the response time does not reveal which names exist.
func (s *userStore) check(username, password string) bool {
	want, known := s.passwordHashes[username]
	got := sha256.Sum256([]byte(password))

	equal := subtle.ConstantTimeCompare(want[:], got[:]) == 1
	return known && equal
}

// loginRequest is the JSON body of POST /login.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// loginResponse is the JSON body of a successful login. Token is the login
// code, which the page sends with its first `authenticate` event.
type loginResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// errorResponse is the JSON body of every failed request.
type errorResponse struct {
	Error string `json:"error"`
}

// loginHandler serves POST /login: it checks the credentials and returns a login
// code issued by the authority for the username.
type loginHandler struct {
	users     *userStore
	authority codeIssuer
	logger    *slog.Logger
	// clientAddress returns the address of a request's client, read from
	// X-Forwarded-For behind a trusted proxy. Nil logs the TCP peer.
	clientAddress func(r *http.Request) string
}

// client returns the address of r's client for the logs.
func (h *loginHandler) client(r *http.Request) string {
	if h.clientAddress == nil {
		return r.RemoteAddr
	}
	return h.clientAddress(r)
}

func (h *loginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}

	// Requiring application/json makes a cross-site form post impossible, because
	// a browser sends that content type only after a CORS preflight, which this
	// server does not handle. That blocks login CSRF.
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		writeJSONError(w, http.StatusUnsupportedMediaType, "unsupported content type: send application/json")
		return
	}

	req, status, err := decodeLoginRequest(w, r)
	if err != nil {
		writeJSONError(w, status, err.Error())
		return
	}

	if !h.users.check(req.Username, req.Password) {
		h.logger.Info("login rejected", "subject", req.Username, "remote", r.RemoteAddr, "address", h.client(r))
		writeJSONError(w, http.StatusUnauthorized, "invalid username or password")
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), issueCodeTimeout)
	defer cancel()

	resp, err := h.authority.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: req.Username})
	if adapter.CallerRejected(err) {
		h.logger.Error("the authority rejected this server's service key; check --authority-key-file and the "+
			"key's scope, which must be token or admin for logins", "subject", req.Username, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "the server cannot log you in: it is misconfigured")
		return
	}
	if err != nil {
		h.logger.Error("issue code failed", "subject", req.Username, "err", err)
		writeJSONError(w, http.StatusBadGateway, "the authority is unavailable, try again later")
		return
	}

	var expiresAt string
	if info := resp.GetInfo(); info != nil && info.GetExpiresAt() != nil {
		expiresAt = info.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
	}
	h.logger.Info("login", "subject", req.Username, "sid", resp.GetInfo().GetSessionId(), "jti", resp.GetInfo().GetTokenId())

	writeJSON(w, http.StatusOK, loginResponse{Token: resp.GetCode(), ExpiresAt: expiresAt})
}

// decodeLoginRequest reads one JSON object of at most maxLoginBodyBytes from the
// request body. On failure it returns the HTTP status to respond with and an error
// whose message can be shown to the client.
func decodeLoginRequest(w http.ResponseWriter, r *http.Request) (loginRequest, int, error) {
	var req loginRequest

	body := http.MaxBytesReader(w, r.Body, maxLoginBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()

	err := dec.Decode(&req)
	if err == nil {
		// A second value after the object, even a valid one, makes the body malformed.
		if _, tokenErr := dec.Token(); !errors.Is(tokenErr, io.EOF) {
			err = errors.New("expected exactly one object")
			if tokenErr != nil {
				err = tokenErr
			}
		}
	}

	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return req, http.StatusRequestEntityTooLarge, fmt.Errorf("request body too large: the limit is %d bytes", maxLoginBodyBytes)
	}
	if err != nil {
		return req, http.StatusBadRequest, fmt.Errorf("invalid JSON body: %v", err)
	}

	if req.Username == "" || req.Password == "" {
		return req, http.StatusBadRequest, errors.New("missing username or password")
	}
	if len(req.Username) > maxUsernameBytes || len(req.Password) > maxPasswordBytes {
		return req, http.StatusBadRequest, fmt.Errorf("username or password too long: the limits are %d and %d bytes", maxUsernameBytes, maxPasswordBytes)
	}

	return req, 0, nil
}

func writeJSONError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, errorResponse{Error: message})
}

// writeJSON writes v as the JSON body of a response that no cache may store,
// because login responses carry codes.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)

	// An encoding error here means the client went away, and the status is
	// already sent, so there is nothing left to report to it.
	_ = json.NewEncoder(w).Encode(v)
}
