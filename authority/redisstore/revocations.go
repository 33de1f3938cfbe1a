package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockauth/sockauth/authority"
)

var _ authority.RevocationPublisher = (*Store)(nil)

// revocationsChannel is the pub/sub channel of revocation events.
func (s *Store) revocationsChannel() string { return s.prefix + "revocations" }

// PublishRevocation publishes the event to every authority on this Redis.
func (s *Store) PublishRevocation(ctx context.Context, event authority.RevocationEvent) error {
	payload, err := json.Marshal(event)
	if err != nil {
		return fmt.Errorf("encode revocation event: %w", err)
	}
	if err := s.client.Publish(ctx, s.revocationsChannel(), payload).Err(); err != nil {
		return fmt.Errorf("publish revocation of session %s to Redis: %w", event.SessionID, err)
	}
	return nil
}

// SubscribeRevocations subscribes to the revocation channel and delivers its
// events until ctx ends. Pub/sub delivers nothing that was published while the
// connection was down, so gap is called after every broken connection.
func (s *Store) SubscribeRevocations(ctx context.Context, deliver func(authority.RevocationEvent), gap func()) error {
	pubsub := s.client.Subscribe(ctx, s.revocationsChannel())
	if _, err := pubsub.Receive(ctx); err != nil {
		pubsub.Close()
		return fmt.Errorf("subscribe to %s: %w", s.revocationsChannel(), err)
	}

	go s.receiveRevocations(ctx, pubsub, deliver, gap)
	return nil
}

func (s *Store) receiveRevocations(ctx context.Context, pubsub *redis.PubSub, deliver func(authority.RevocationEvent), gap func()) {
	defer pubsub.Close()
	broken := false
	backoff := 100 * time.Millisecond

	for {
		message, err := pubsub.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !broken {
				s.log.Warn("revocation subscription to Redis broken; reconnecting", "error", err)
				broken = true
				gap()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}

		switch m := message.(type) {
		case *redis.Subscription:
			if broken {
				s.log.Info("revocation subscription to Redis restored")
				broken = false
				backoff = 100 * time.Millisecond
				// Events published before the subscription was back are lost.
				gap()
			}
		case *redis.Message:
			var event authority.RevocationEvent
			if err := json.Unmarshal([]byte(m.Payload), &event); err != nil {
				s.log.Warn("ignoring a malformed revocation event from Redis", "error", err)
				continue
			}
			deliver(event)
		}
	}
}
