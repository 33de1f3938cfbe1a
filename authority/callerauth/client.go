package callerauth

import (
	"context"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// ServiceKey is a grpc.PerRPCCredentials that sends a service key as
// "authorization: Bearer KEY". It does not insist on TLS, so that callers on
// loopback work without certificates; Dial refuses to send a key in plain text
// to another host.
type ServiceKey struct {
	key string
}

var _ credentials.PerRPCCredentials = ServiceKey{}

// NewServiceKey returns credentials for key.
func NewServiceKey(key string) ServiceKey { return ServiceKey{key: key} }

// ReadServiceKey reads a key from a file that contains the bare secret, such
// as a mounted secret; surrounding white space is trimmed. A file that other
// users may read is rejected.
func ReadServiceKey(path string) (ServiceKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return ServiceKey{}, fmt.Errorf("service key: %w", err)
	}
	if info.IsDir() {
		return ServiceKey{}, fmt.Errorf("service key file %q is a folder, expected a file", path)
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		return ServiceKey{}, fmt.Errorf("service key file %q has mode %04o, which lets other users read it; run chmod 600 on it", path, mode)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ServiceKey{}, fmt.Errorf("service key: %w", err)
	}
	key := strings.TrimSpace(string(data))
	if len(key) < MinKeyBytes {
		return ServiceKey{}, fmt.Errorf("service key in %q is shorter than %d bytes", path, MinKeyBytes)
	}
	return ServiceKey{key: key}, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (k ServiceKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + k.key}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (ServiceKey) RequireTransportSecurity() bool { return false }
