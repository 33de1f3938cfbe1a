package callerauth

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sockauth/sockauth/internal/logthrottle"
)

// reloadInterval bounds how often the key file's modification time is checked.
const reloadInterval = time.Second

// Method prefixes of the services that need a key.
const (
	authorityServicePrefix = "/sockauth.v1.AuthorityService/"
	adminServicePrefix     = "/sockauth.v1.AdminService/"
	issueCodeMethod        = authorityServicePrefix + "IssueCode"
)

// Authenticator checks service keys against a key file. It is safe for
// concurrent use.
type Authenticator struct {
	path string
	log  *slog.Logger
	// rejections limits the log lines about rejected callers, which anyone
	// who reaches the port can cause at any rate.
	rejections *logthrottle.Throttle

	mu        sync.Mutex // guards the fields below
	keys      *KeySet
	modTime   time.Time
	size      int64
	checkedAt time.Time
}

// NewAuthenticator loads the key file at path. A nil logger means slog.Default().
func NewAuthenticator(path string, logger *slog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = slog.Default()
	}
	a := &Authenticator{path: path, log: logger, rejections: logthrottle.New(rejectionLogBurst, time.Second)}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	keys, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	a.keys, a.modTime, a.size, a.checkedAt = keys, info.ModTime(), info.Size(), time.Now()
	logger.Info("service keys loaded", "file", path, "keys", keys.Len())
	return a, nil
}

// currentKeys returns the key set, reloading the file when it changed. A file
// that cannot be read keeps the previous keys in force and logs the failure.
// A file with an invalid line keeps only those previous keys whose lines it
// still holds unchanged, so removing a key takes effect even when another
// edit broke a line.
func (a *Authenticator) currentKeys() *KeySet {
	a.mu.Lock()
	defer a.mu.Unlock()

	now := time.Now()
	if now.Sub(a.checkedAt) < reloadInterval {
		return a.keys
	}
	a.checkedAt = now

	info, err := os.Stat(a.path)
	if err != nil {
		a.log.Error("service key file unreadable; keeping the previous keys", "file", a.path, "error", err)
		return a.keys
	}
	if info.ModTime().Equal(a.modTime) && info.Size() == a.size {
		return a.keys
	}
	keys, err := readKeyFile(a.path)
	var invalid *invalidKeyFileError
	if errors.As(err, &invalid) {
		retained := a.keys.retain(invalid.valid)
		a.log.Error("service key file invalid; keeping the previous keys that it still lists unchanged",
			"file", a.path, "retained", retained.Len(), "dropped", a.keys.Len()-retained.Len(), "error", err)
		a.keys, a.modTime, a.size = retained, info.ModTime(), info.Size()
		return a.keys
	}
	if err != nil {
		a.log.Error("service key file unreadable; keeping the previous keys", "file", a.path, "error", err)
		return a.keys
	}
	a.keys, a.modTime, a.size = keys, info.ModTime(), info.Size()
	a.log.Info("service keys reloaded", "file", a.path, "keys", keys.Len())
	return a.keys
}

// authorize checks the caller of method. Methods outside the sockauth
// services (health, reflection) need no key.
func (a *Authenticator) authorize(ctx context.Context, method string) error {
	var needed string
	switch {
	case strings.HasPrefix(method, adminServicePrefix):
		needed = ScopeAdmin
	case method == issueCodeMethod:
		needed = ScopeToken
	case strings.HasPrefix(method, authorityServicePrefix):
		needed = ScopeSocket
	default:
		return nil
	}

	presented, ok := bearerToken(ctx)
	if !ok {
		a.logRejection(ctx, method, "missing service key", "")
		return callerError(codes.Unauthenticated, "CALLER_UNAUTHENTICATED",
			"missing service key: send it as authorization: Bearer KEY metadata")
	}
	key, ok := a.currentKeys().Match(presented)
	if !ok {
		a.logRejection(ctx, method, "unknown service key", "")
		return callerError(codes.Unauthenticated, "CALLER_UNAUTHENTICATED", "invalid service key")
	}
	if scopeRank[key.Scope] < scopeRank[needed] {
		a.logRejection(ctx, method, "service key lacks the "+needed+" scope", key.Name)
		return callerError(codes.PermissionDenied, "CALLER_FORBIDDEN",
			"service key "+key.Name+" has scope "+key.Scope+", and "+method+" needs scope "+needed)
	}
	return nil
}

// rejectionLogBurst is how many rejected callers are logged at once, before
// the log falls to one line a second.
const rejectionLogBurst = 10

// logRejection logs a rejected caller, unless the throttle holds the line
// back. Each line counts the rejections that were not logged before it.
func (a *Authenticator) logRejection(ctx context.Context, method, reason, keyName string) {
	address := ""
	if p, ok := peer.FromContext(ctx); ok {
		address = p.Addr.String()
	}
	a.rejections.Log(func(suppressed int64) {
		a.log.Warn("caller rejected", "method", method, "reason", reason, "key_name", keyName, "peer", address,
			"rejections_not_logged", suppressed)
	})
}

// UnaryInterceptor rejects unary calls without a valid service key.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.authorize(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor rejects streams without a valid service key. A stream
// checks its caller's key again before each message it sends, so a key
// removed from the key file ends the streams opened with it at their next
// message, such as the next revocation event.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, stream grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.authorize(stream.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, &authorizedStream{ServerStream: stream, authenticator: a, method: info.FullMethod})
	}
}

// authorizedStream is a server stream whose caller was authorized when it
// opened.
type authorizedStream struct {
	grpc.ServerStream
	authenticator *Authenticator
	method        string
}

// SendMsg sends m if the caller's key still allows the stream's method.
func (s *authorizedStream) SendMsg(m any) error {
	if err := s.authenticator.authorize(s.Context(), s.method); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

func bearerToken(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", false
	}
	values := md.Get("authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}

func callerError(code codes.Code, reason, message string) error {
	st := status.New(code, message)
	detailed, err := st.WithDetails(&errdetails.ErrorInfo{Domain: "sockauth", Reason: reason})
	if err != nil {
		return st.Err()
	}
	return detailed.Err()
}
