package leader

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// Backends of BRIDGE_LEADER_ELECTION.
const (
	Off    = "off"     // no election: the one replica always works
	Lease  = "lease"   // a Kubernetes coordination.k8s.io/v1 Lease
	NATSKV = "nats-kv" // a key of a NATS JetStream key-value bucket
)

// Defaults of the zero Config.
const (
	DefaultLeaseName     = "zulip-bridge"
	DefaultBucket        = "zulip-bridge-leader"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// jitterFactor is client-go's leaderelection.JitterFactor, kept so that the
// settings mean what they mean there: a standby waits up to
// RetryPeriod*(1+jitterFactor) between tries, and a RenewDeadline must be
// above RetryPeriod*jitterFactor.
const jitterFactor = 1.2

// Config is the leader election part of the bridge's configuration. Like
// every Config of the bridge, its zero value means the documented defaults
// (each written on its field, as the envDefault tag): no election.
type Config struct {
	// Election is the backend: off, lease (a Kubernetes Lease) or nats-kv
	// (a NATS JetStream key-value bucket). Empty means off.
	Election string `env:"BRIDGE_LEADER_ELECTION" envDefault:"off" example:"lease" help:"leader election: off, lease (Kubernetes Lease) or nats-kv (NATS KV key)"`

	// LeaseName names the Lease object (a DNS subdomain) or, with nats-kv,
	// the key in Bucket. Empty means zulip-bridge.
	LeaseName string `env:"BRIDGE_LEADER_LEASE_NAME" envDefault:"zulip-bridge" example:"zulip-bridge" help:"name of the Lease, or of the NATS KV key"`

	// Namespace is the Lease's namespace. Empty means the namespace of the
	// pod's service account (in-cluster), or default.
	Namespace string `env:"BRIDGE_LEADER_LEASE_NAMESPACE" example:"zulip" help:"namespace of the Lease; unset = the pod's own"`

	// Bucket is the NATS KV bucket holding the key (nats-kv), created with
	// a TTL of LeaseDuration when missing. Empty means zulip-bridge-leader.
	Bucket string `env:"BRIDGE_LEADER_NATS_BUCKET" envDefault:"zulip-bridge-leader" example:"zulip-bridge-leader" help:"NATS KV bucket of the leader key (TTL = lease duration)"`

	// LeaseDuration is how long a standby waits, by its own clock, after it
	// last saw the record change before it takes the leadership over. With
	// lease it must be a whole number of seconds (the Lease stores
	// seconds). Zero means 15s.
	LeaseDuration time.Duration `env:"BRIDGE_LEADER_LEASE_DURATION" envDefault:"15s" example:"15s" help:"how long a standby waits for a silent leader before taking over"`

	// RenewDeadline is how long a term stays valid after the start of the
	// leader's last successful renewal; it must be shorter than
	// LeaseDuration, the difference being the safety margin. Zero means 10s.
	RenewDeadline time.Duration `env:"BRIDGE_LEADER_RENEW_DEADLINE" envDefault:"10s" example:"10s" help:"a leader that could not renew for this long stops leading"`

	// RetryPeriod is the interval of the leader's renewals and of the
	// standbys' tries. Zero means 2s.
	RetryPeriod time.Duration `env:"BRIDGE_LEADER_RETRY_PERIOD" envDefault:"2s" example:"2s" help:"interval of renewals and of a standby's tries"`

	// Identity names this replica in the record (the pod name). Empty
	// means the host name, which is the pod name in Kubernetes. Each
	// candidacy appends a random suffix, so that a restarted replica is a
	// new holder (see the package documentation).
	Identity string `env:"BRIDGE_LEADER_IDENTITY" example:"zulip-bridge-7d9f-x2x4q" help:"this replica's name in the election; unset = host name"`

	// Kubeconfig is a kubeconfig file through which the lease backend
	// reaches the API server, for a bridge run outside the cluster. Empty
	// means the in-cluster configuration of the pod's service account.
	Kubeconfig string `env:"KUBECONFIG" example:"/home/me/.kube/config" help:"with BRIDGE_LEADER_ELECTION=lease, the kubeconfig file to reach the API server with, outside a cluster (its current context; a token, token file or client certificate, no exec plugin); unset = the pod's service account"`
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	c.Election = cmp.Or(c.Election, Off)
	c.LeaseName = cmp.Or(c.LeaseName, DefaultLeaseName)
	c.Bucket = cmp.Or(c.Bucket, DefaultBucket)
	c.LeaseDuration = cmp.Or(c.LeaseDuration, DefaultLeaseDuration)
	c.RenewDeadline = cmp.Or(c.RenewDeadline, DefaultRenewDeadline)
	c.RetryPeriod = cmp.Or(c.RetryPeriod, DefaultRetryPeriod)
	if c.Identity == "" {
		c.Identity, _ = os.Hostname()
	}
	return c
}

// Enabled reports whether an election runs (Election is not off).
func (c Config) Enabled() bool { return c.withDefaults().Election != Off }

var (
	// dnsSubdomain is the name a Lease may have (RFC 1123 subdomain).
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// kvKey and kvBucket are what NATS KV accepts as a key and a bucket.
	kvKey    = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	kvBucket = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// Validate reports every problem of the configuration at once, each in the
// bridge's format, VAR: problem (example: VAR=value).
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	add := func(key, example, format string, args ...any) {
		errs = append(errs, &envconfig.Error{Key: key, Problem: fmt.Sprintf(format, args...), Example: example})
	}
	switch d.Election {
	case Off:
		return nil
	case Lease:
		if len(d.LeaseName) > 253 || !dnsSubdomain.MatchString(d.LeaseName) {
			add("BRIDGE_LEADER_LEASE_NAME", DefaultLeaseName, "%q is not a Kubernetes object name (lower-case letters, digits, '-' and '.')", d.LeaseName)
		}
		if d.Namespace != "" && (len(d.Namespace) > 63 || !dnsLabel.MatchString(d.Namespace)) {
			add("BRIDGE_LEADER_LEASE_NAMESPACE", "zulip", "%q is not a namespace name (lower-case letters, digits and '-', at most 63)", d.Namespace)
		}
		if d.LeaseDuration%time.Second != 0 {
			add("BRIDGE_LEADER_LEASE_DURATION", "15s", "%v is not a whole number of seconds, which a Lease stores", d.LeaseDuration)
		}
	case NATSKV:
		if !kvKey.MatchString(d.LeaseName) || strings.HasPrefix(d.LeaseName, ".") || strings.HasSuffix(d.LeaseName, ".") {
			add("BRIDGE_LEADER_LEASE_NAME", DefaultLeaseName, "%q is not a NATS KV key (letters, digits and -/_=.)", d.LeaseName)
		}
		if !kvBucket.MatchString(d.Bucket) {
			add("BRIDGE_LEADER_NATS_BUCKET", DefaultBucket, "%q is not a NATS KV bucket name (letters, digits, '-' and '_')", d.Bucket)
		}
	default:
		add("BRIDGE_LEADER_ELECTION", Lease, "%q is not off, lease or nats-kv", d.Election)
		return errors.Join(errs...)
	}
	if d.Identity == "" {
		add("BRIDGE_LEADER_IDENTITY", "zulip-bridge-0", "empty and the host name is unknown")
	}
	for _, v := range []struct {
		key, example string
		d            time.Duration
	}{
		{"BRIDGE_LEADER_LEASE_DURATION", "15s", c.LeaseDuration},
		{"BRIDGE_LEADER_RENEW_DEADLINE", "10s", c.RenewDeadline},
		{"BRIDGE_LEADER_RETRY_PERIOD", "2s", c.RetryPeriod},
	} {
		if v.d < 0 {
			add(v.key, v.example, "%v is negative", v.d)
		}
	}
	if c.LeaseDuration < 0 || c.RenewDeadline < 0 || c.RetryPeriod < 0 {
		return errors.Join(errs...)
	}
	if d.RenewDeadline >= d.LeaseDuration {
		add("BRIDGE_LEADER_RENEW_DEADLINE", "10s", "%v is not shorter than BRIDGE_LEADER_LEASE_DURATION=%v: a standby could take over while the leader still believes it leads", d.RenewDeadline, d.LeaseDuration)
	}
	if float64(d.RenewDeadline) <= jitterFactor*float64(d.RetryPeriod) {
		add("BRIDGE_LEADER_RETRY_PERIOD", "2s", "%v leaves no retry within BRIDGE_LEADER_RENEW_DEADLINE=%v (it must be below the deadline / %v)", d.RetryPeriod, d.RenewDeadline, jitterFactor)
	}
	return errors.Join(errs...)
}
