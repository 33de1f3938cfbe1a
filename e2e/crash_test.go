package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

// crashLedger records what the authority acknowledged before it was killed.
type crashLedger struct {
	mu sync.Mutex // guards the fields below
	// deadTokens were replaced by a confirmed rotation.
	deadTokens []string
	// loggedOut are tokens whose Logout was acknowledged.
	loggedOut []string
	// latest is the newest acknowledged token of each session that had no
	// logout in flight when the authority died.
	latest map[string]string
}

// TestCrashKeepsAcknowledgedState kills `sockauth serve` with SIGKILL in the
// middle of a stream of rotations and logouts, restarts it on the same data
// folder, and checks that no acknowledged rotation or revocation was lost.
func TestCrashKeepsAcknowledgedState(t *testing.T) {
	requireE2E(t)
	dataDir := t.TempDir()
	addr, authority := startAuthorityIn(t, dataDir)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := sockauthv1.NewAuthorityServiceClient(conn)

	ledger := &crashLedger{latest: map[string]string{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const workers = 8
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runRotationWorker(ctx, client, ledger)
		}()
	}

	// Let the workers build up state, then kill the authority mid-stream.
	time.Sleep(1500 * time.Millisecond)
	if err := authority.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	<-authority.exited
	stop()
	wg.Wait()

	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	if len(ledger.deadTokens) < 10 || len(ledger.loggedOut) < 2 {
		t.Fatalf("only %d confirmed rotations and %d logouts before the kill; the stream was too short to test",
			len(ledger.deadTokens), len(ledger.loggedOut))
	}

	addr, _ = startAuthorityIn(t, dataDir)
	restarted, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	client = sockauthv1.NewAuthorityServiceClient(restarted)
	check := context.Background()

	// Live sessions first: presenting a replaced token below revokes its
	// session, as reuse detection must.
	for sessionID, token := range ledger.latest {
		if _, err := client.Authenticate(check, &sockauthv1.AuthenticateRequest{Token: token}); err != nil {
			t.Errorf("newest acknowledged token of session %s rejected after the crash: %v", sessionID, err)
		}
	}
	for i, token := range ledger.deadTokens {
		_, err := client.Verify(check, &sockauthv1.VerifyRequest{Token: token})
		if err != nil {
			continue // revoked meanwhile by a logout or reuse: also dead
		}
		reply, err := client.Authenticate(check, &sockauthv1.AuthenticateRequest{Token: token})
		if err == nil {
			t.Errorf("replaced token %d authenticated again after the crash (jti %s)", i, reply.GetInfo().GetTokenId())
		}
	}
	for i, token := range ledger.loggedOut {
		_, err := client.Verify(check, &sockauthv1.VerifyRequest{Token: token})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("logged-out token %d after the crash: %v, expected PermissionDenied", i, err)
		}
	}
	t.Logf("checked %d replaced tokens, %d logouts and %d live sessions after SIGKILL",
		len(ledger.deadTokens), len(ledger.loggedOut), len(ledger.latest))
}

// runRotationWorker logs in, rotates and confirms five times, logs out, and
// starts again, until ctx ends or the authority dies.
func runRotationWorker(ctx context.Context, client sockauthv1.AuthorityServiceClient, ledger *crashLedger) {
	for ctx.Err() == nil {
		code, err := client.IssueCode(ctx, &sockauthv1.IssueCodeRequest{Subject: "crash-user"})
		if err != nil {
			return
		}
		sessionID := code.GetInfo().GetSessionId()
		token := code.GetCode()

		for range 5 {
			next, err := client.Authenticate(ctx, &sockauthv1.AuthenticateRequest{Token: token})
			if err != nil {
				return
			}
			ledger.setLatest(sessionID, next.GetToken())
			if _, err := client.ConfirmRotation(ctx, &sockauthv1.ConfirmRotationRequest{Token: next.GetToken()}); err != nil {
				return
			}
			ledger.addDead(token)
			token = next.GetToken()
		}

		// A logout in flight at the kill may or may not have landed, so the
		// session leaves the set of live sessions before the call.
		ledger.forget(sessionID)
		_, err = client.Logout(ctx, &sockauthv1.LogoutRequest{Token: token})
		if err != nil {
			return
		}
		ledger.addLoggedOut(token)
	}
}

func (l *crashLedger) setLatest(sessionID, token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latest[sessionID] = token
}

func (l *crashLedger) forget(sessionID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.latest, sessionID)
}

func (l *crashLedger) addDead(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deadTokens = append(l.deadTokens, token)
}

func (l *crashLedger) addLoggedOut(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loggedOut = append(l.loggedOut, token)
}
