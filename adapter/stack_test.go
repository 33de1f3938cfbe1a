package adapter

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// goroutineID returns the number of the calling goroutine from the first
// line of its stack trace, "goroutine N [running]:".
func goroutineID(t *testing.T) uint64 {
	t.Helper()
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := bytes.Fields(buf)
	if len(fields) < 2 {
		t.Fatalf("unexpected stack trace %q", buf)
	}
	id, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		t.Fatalf("unexpected stack trace %q: %v", buf, err)
	}
	return id
}

func TestOnOwnStackRaisesPanicInCaller(t *testing.T) {
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, expected the panic value boom", p)
		}
	}()
	onOwnStack(func() { panic("boom") })
	t.Error("onOwnStack returned after fn panicked")
}

func TestAuthorityCallsLeaveCallerStack(t *testing.T) {
	var mu sync.Mutex
	callers := map[string]uint64{}
	note := func(rpc string) {
		mu.Lock()
		defer mu.Unlock()
		callers[rpc] = goroutineID(t)
	}
	authority := &fakeAuthority{}
	authority.authenticate = func(ctx context.Context, token string) (*sockauthv1.AuthenticateResponse, error) {
		note("Authenticate " + token)
		return sessionResponse(1, "sid-1", "alice", time.Now().Add(time.Hour)), nil
	}
	authority.confirm = func(ctx context.Context, token string) (*sockauthv1.ConfirmRotationResponse, error) {
		note("ConfirmRotation")
		return &sockauthv1.ConfirmRotationResponse{Confirmed: true}, nil
	}
	f := newTestFlow(t, authority, Config{}, Hooks{})
	s := connect(t, f, "s1")
	self := goroutineID(t)

	f.Authenticate(context.Background(), "s1", "code-1")
	s.waitFor(t, 1, wait).ack()
	if _, err := f.AuthenticateHandshake(context.Background(), "s2", "code-2"); err != nil {
		t.Fatalf("AuthenticateHandshake: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, rpc := range []string{"Authenticate code-1", "ConfirmRotation", "Authenticate code-2"} {
		id, ok := callers[rpc]
		switch {
		case !ok:
			t.Errorf("%s was not called before the handler returned", rpc)
		case id == self:
			t.Errorf("%s ran on the goroutine that delivered the event, whose stack it grows for the life of the socket", rpc)
		}
	}
}
