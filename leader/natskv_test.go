package leader

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/internal/faultproxy"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// kvConfig is short enough for the tests to take over in about two
// seconds, and long enough that a renewal is not missed on two busy cores
// under the race detector.
var kvConfig = Config{
	Election:      NATSKV,
	LeaseDuration: 2 * time.Second,
	RenewDeadline: time.Second,
	RetryPeriod:   200 * time.Millisecond,
}

func kvBackend(t *testing.T) backend {
	srv := testutil.StartNATS(t)
	return backend{cfg: kvConfig, new: func(t *testing.T, lease, identity string, viaProxy bool) (Elector, *faultproxy.Proxy) {
		url := srv.URL()
		var proxy *faultproxy.Proxy
		if viaProxy {
			var err error
			proxy, err = faultproxy.New(strings.TrimPrefix(url, "nats://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			url = "nats://" + proxy.Addr()
		}
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		cfg := kvConfig
		cfg.LeaseName, cfg.Identity = lease, identity
		el, err := NewNATSKV(cfg, js, nil)
		if err != nil {
			t.Fatal(err)
		}
		return el, proxy
	}}
}

func TestNATSKV(t *testing.T) {
	testElection(t, kvBackend(t))
}

// TestNATSKVBucketTTL: the bucket the elector creates expires the key after
// LeaseDuration, and a bucket with another TTL is refused.
func TestNATSKVBucketTTL(t *testing.T) {
	srv := testutil.StartNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	cfg := kvConfig
	cfg.Identity = "a"
	el, err := NewNATSKV(cfg, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := el.bucket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != cfg.LeaseDuration || st.History() != 1 {
		t.Errorf("bucket TTL %v history %d, want %v and 1", st.TTL(), st.History(), cfg.LeaseDuration)
	}

	cfg.LeaseDuration = 3 * time.Second
	other, err := NewNATSKV(cfg, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = other.Run(ctx, func(context.Context, *Term) { t.Error("elected on a bucket with another TTL") }, nil)
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_LEADER_LEASE_DURATION=3s") {
		t.Errorf("Run on a bucket with a TTL of 2s and a lease of 3s: %v", err)
	}
}
