package authority_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
)

func benchClaims() authority.Claims {
	now := time.Now().Truncate(time.Second)
	return authority.Claims{
		Subject: "alice", SessionID: "Q2hhbmdlIHRoaXMgaWQh", TokenID: "VGhpcyBpcyBhIHRva2VuIGlk",
		Type: authority.TypeSession, Generation: 7, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Extra: map[string]string{"role": "member"},
	}
}

func benchCodec(b *testing.B) *authority.PasetoV2 {
	b.Helper()
	codec, err := authority.NewPasetoV2(map[string][]byte{"k1": make([]byte, authority.KeySize)}, "k1")
	if err != nil {
		b.Fatal(err)
	}
	return codec
}

func BenchmarkCodecEncode(b *testing.B) {
	codec := benchCodec(b)
	claims := benchClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Encode(claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecDecode(b *testing.B) {
	codec := benchCodec(b)
	token, err := codec.Encode(benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Decode(token); err != nil {
			b.Fatal(err)
		}
	}
}

// benchService returns a Service on an on-disk Badger store with synced
// writes, as in production, and the store.
func benchService(b *testing.B) (*authority.Service, *badgerstore.Store) {
	b.Helper()
	store, err := badgerstore.Open(b.TempDir(), badgerstore.Options{Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	service, err := authority.NewService(benchCodec(b), store, authority.Config{Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(service.Close)
	return service, store
}

// reportWritesPerSync reports how many writes one sync covered on average
// since before, the store's counters when the measured loop started.
func reportWritesPerSync(b *testing.B, store *badgerstore.Store, before badgerstore.SyncStats) {
	after := store.Stats()
	if syncs := after.Syncs - before.Syncs; syncs > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(syncs), "writes/sync")
	}
}

func benchSession(b *testing.B, service *authority.Service) string {
	b.Helper()
	ctx := context.Background()
	code, err := service.IssueCode(ctx, "alice", nil)
	if err != nil {
		b.Fatal(err)
	}
	first, err := service.Authenticate(ctx, code.Token)
	if err != nil {
		b.Fatal(err)
	}
	return first.Token
}

// BenchmarkMarshalSession measures the encoding of a session record after
// a rotation, which the store does for every write.
func BenchmarkMarshalSession(b *testing.B) {
	now := time.Now().Truncate(time.Second)
	session := &authority.Session{
		ID: authority.NewID(), Subject: "alice", Claims: map[string]string{"role": "member"},
		CurrentTokenID: authority.NewID(), PreviousTokenID: authority.NewID(), CurrentIssuedAt: now, CurrentExpiresAt: now.Add(time.Hour),
		RotatedAt: time.Now(), Generation: 7, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		RetainUntil: now.Add(25 * time.Hour), Version: 7,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authority.MarshalSession(session); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotation measures the whole rotation path, codec and synced store
// included, from parallel callers that each rotate their own session.
func BenchmarkRotation(b *testing.B) {
	service, store := benchService(b)
	b.ReportAllocs()
	const parallelism = 32
	b.SetParallelism(parallelism)
	// Each parallel goroutine rotates a session of its own, created here so
	// that the measured loop holds rotations only.
	tokens := make(chan string, parallelism*runtime.GOMAXPROCS(0))
	for range cap(tokens) {
		tokens <- benchSession(b, service)
	}
	before := store.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		token := <-tokens
		for pb.Next() {
			next, err := service.Authenticate(context.Background(), token)
			if err != nil {
				b.Error(err)
				return
			}
			token = next.Token
		}
	})
	b.StopTimer()
	reportWritesPerSync(b, store, before)
}

func BenchmarkVerify(b *testing.B) {
	service, _ := benchService(b)
	token := benchSession(b, service)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := service.Verify(context.Background(), token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkIssueCode(b *testing.B) {
	service, store := benchService(b)
	b.ReportAllocs()
	b.SetParallelism(32)
	before := store.Stats()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := service.IssueCode(context.Background(), "alice", nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportWritesPerSync(b, store, before)
}
