package leader

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // one line per problem, in order
	}{
		{"zero value is off", Config{}, nil},
		{"off ignores the rest", Config{Election: Off, LeaseDuration: -1}, nil},
		{"lease defaults", Config{Election: Lease, Identity: "a"}, nil},
		{"nats-kv defaults", Config{Election: NATSKV, Identity: "a"}, nil},
		{"unknown backend", Config{Election: "etcd"},
			[]string{`BRIDGE_LEADER_ELECTION: "etcd" is not off, lease or nats-kv (example: BRIDGE_LEADER_ELECTION=lease)`}},
		{"every lease problem at once", Config{Election: Lease, LeaseName: "Bridge_1", Namespace: "a.b", LeaseDuration: 1500 * time.Millisecond, Identity: "a"},
			[]string{
				`BRIDGE_LEADER_LEASE_NAME: "Bridge_1" is not a Kubernetes object name`,
				`BRIDGE_LEADER_LEASE_NAMESPACE: "a.b" is not a namespace name`,
				`BRIDGE_LEADER_LEASE_DURATION: 1.5s is not a whole number of seconds, which a Lease stores (example: BRIDGE_LEADER_LEASE_DURATION=15s)`,
				`BRIDGE_LEADER_RENEW_DEADLINE: 10s is not shorter than BRIDGE_LEADER_LEASE_DURATION=1.5s`,
			}},
		{"nats-kv names", Config{Election: NATSKV, LeaseName: "a b", Bucket: "x.y", Identity: "a"},
			[]string{
				`BRIDGE_LEADER_LEASE_NAME: "a b" is not a NATS KV key`,
				`BRIDGE_LEADER_NATS_BUCKET: "x.y" is not a NATS KV bucket name`,
			}},
		{"negative durations", Config{Election: NATSKV, LeaseDuration: -time.Second, RetryPeriod: -time.Second, Identity: "a"},
			[]string{
				`BRIDGE_LEADER_LEASE_DURATION: -1s is negative (example: BRIDGE_LEADER_LEASE_DURATION=15s)`,
				`BRIDGE_LEADER_RETRY_PERIOD: -1s is negative (example: BRIDGE_LEADER_RETRY_PERIOD=2s)`,
			}},
		{"retry period too long for the deadline", Config{Election: NATSKV, RenewDeadline: 2 * time.Second, Identity: "a"},
			[]string{`BRIDGE_LEADER_RETRY_PERIOD: 2s leaves no retry within BRIDGE_LEADER_RENEW_DEADLINE=2s`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %d problems", len(tc.want))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate: %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], w)
				}
			}
			var e *envconfig.Error
			if !errors.As(err, &e) {
				t.Errorf("Validate: %T is no *envconfig.Error", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	d := Config{}.withDefaults()
	if d.Election != Off || d.LeaseName != "zulip-bridge" || d.Bucket != "zulip-bridge-leader" ||
		d.LeaseDuration != 15*time.Second || d.RenewDeadline != 10*time.Second || d.RetryPeriod != 2*time.Second || d.Identity == "" {
		t.Errorf("defaults: %+v", d)
	}
	if (Config{}).Enabled() || !(Config{Election: Lease}).Enabled() {
		t.Error("Enabled: only a backend other than off enables the election")
	}
	// The envDefault tags say the same as the zero value.
	var parsed Config
	if err := envconfig.Parse(&parsed, nil); err != nil {
		t.Fatal(err)
	}
	if got := parsed.withDefaults(); got != d {
		t.Errorf("parsed from an empty environment: %+v, want %+v", got, d)
	}
}

// TestNew: the constructors validate their Config and refuse the other
// backend's.
func TestNew(t *testing.T) {
	if _, err := NewNATSKV(Config{Election: NATSKV, Bucket: "a.b", Identity: "a"}, nil, nil); err == nil ||
		!strings.HasPrefix(err.Error(), "BRIDGE_LEADER_NATS_BUCKET: ") {
		t.Errorf("NewNATSKV with a bad bucket: %v", err)
	}
	if _, err := NewNATSKV(Config{Election: Lease, Identity: "a"}, nil, nil); err == nil {
		t.Error("NewNATSKV accepted BRIDGE_LEADER_ELECTION=lease")
	}
	if _, err := NewLease(Config{Election: NATSKV, Identity: "a"}, nil, nil); err == nil {
		t.Error("NewLease accepted BRIDGE_LEADER_ELECTION=nats-kv")
	}
	if _, err := NewLease(Config{Identity: "a"}, nil, nil); err == nil {
		t.Error("NewLease accepted BRIDGE_LEADER_ELECTION=off")
	}
}
