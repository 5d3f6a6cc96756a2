package leader

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
)

// LeaseElector elects a leader with a Kubernetes coordination.k8s.io/v1
// Lease, written as client-go's leaderelection writes it (so that the
// record reads the same to kubectl and to other tools): holderIdentity,
// leaseDurationSeconds, acquireTime, renewTime and leaseTransitions, each
// write a compare-and-set on the Lease's resourceVersion.
type LeaseElector struct {
	cfg   Config
	kube  *kubeClient
	ns    string
	log   *slog.Logger
	clock clockwork.Clock

	unreadable bool // the last read of the Lease failed; campaign's goroutine only
}

// NewLease returns an elector on the Lease cfg names. A nil k means the
// kubeconfig file cfg.Kubeconfig names or, without one, the in-cluster
// configuration of the pod's service account. log may be nil.
func NewLease(cfg Config, k *Kube, log *slog.Logger) (*LeaseElector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Election != Lease {
		return nil, fmt.Errorf("leader: NewLease with BRIDGE_LEADER_ELECTION=%s", cfg.Election)
	}
	if k == nil && cfg.Kubeconfig != "" {
		var err error
		if k, err = loadKubeconfig(cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("KUBECONFIG: %w", err)
		}
	}
	if k == nil {
		var err error
		if k, err = inCluster(); err != nil {
			return nil, fmt.Errorf("leader: Kubernetes in-cluster configuration (outside a cluster, set KUBECONFIG): %w", err)
		}
	}
	// No request may outlive the renew deadline.
	client, err := newKubeClient(k, cfg.RenewDeadline)
	if err != nil {
		return nil, fmt.Errorf("leader: Kubernetes client: %w", err)
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = "default"
		if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
			ns = strings.TrimSpace(string(b))
		}
	}
	return &LeaseElector{cfg: cfg, kube: client, ns: ns, log: discard(log), clock: clockwork.NewRealClock()}, nil
}

func (e *LeaseElector) where() string { return "Lease " + e.ns + "/" + e.cfg.LeaseName }

// Current implements Elector: a get of the Lease (the Role the chart
// creates grants it), then whether this identity may also update and
// create it, asked with SelfSubjectAccessReview: a missing grant shows
// before the first election needs it.
func (e *LeaseElector) Current(ctx context.Context) (Record, error) {
	r := Record{Where: e.where()}
	l, found, err := e.kube.getLease(ctx, e.ns, e.cfg.LeaseName)
	switch {
	case err != nil:
		return r, fmt.Errorf("leader: %s: %w", r.Where, err)
	case found && l.Spec.holder() != "":
		r.Holder = l.Spec.holder()
		if l.Spec.RenewTime != nil {
			r.Renewed = l.Spec.RenewTime.Time
		}
		r.Expired = !r.Renewed.IsZero() && e.clock.Since(r.Renewed) > e.duration(l)
	}
	for _, verb := range []string{"update", "create"} {
		name := e.cfg.LeaseName
		if verb == "create" {
			// A create names no object to the authorizer: a Role cannot
			// restrict it to one name.
			name = ""
		}
		ok, err := e.kube.allowed(ctx, e.ns, verb, name)
		if err != nil {
			return r, fmt.Errorf("leader: %s: may this identity %s it: %w", r.Where, verb, err)
		}
		if !ok {
			return r, fmt.Errorf("leader: %s: this identity may not %s it (grant coordination.k8s.io leases get, create and update in %s)", r.Where, verb, e.ns)
		}
	}
	return r, nil
}

// duration is the lease duration the holder of l promised, or ours.
func (e *LeaseElector) duration(l *lease) time.Duration {
	if l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds > 0 {
		return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return e.cfg.LeaseDuration
}

// Run implements Elector.
func (e *LeaseElector) Run(ctx context.Context, onLead func(context.Context, *Term), onLose func(*Term)) error {
	for ctx.Err() == nil {
		term, l := e.campaign(ctx, candidateID(e.cfg.Identity))
		if term == nil {
			return nil
		}
		renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
		renewed := make(chan *lease, 1)
		go func() { renewed <- e.renew(renewCtx, term, l) }()
		lead(ctx, e.log, term, onLead, onLose)
		stopRenew()
		e.release(ctx, <-renewed, term.Holder())
	}
	return nil
}

// campaign tries, every RetryPeriod with up to jitterFactor more, until it
// acquires the Lease, and returns the new term and the Lease as written;
// nil once ctx is done. It takes the Lease when there is none, when its
// holder released it (holder empty), or when its resourceVersion has not
// changed for the holder's lease duration since this candidate first saw
// it, by its monotonic clock. Each write is a compare-and-set: of two
// standbys, one wins.
func (e *LeaseElector) campaign(ctx context.Context, id string) (*Term, *lease) {
	var seenRV string
	var seenAt time.Time
	for {
		if term, l := e.try(ctx, id, &seenRV, &seenAt); term != nil {
			return term, l
		}
		wait := time.Duration(float64(e.cfg.RetryPeriod) * (1 + jitterFactor*rand.Float64()))
		select {
		case <-ctx.Done():
			return nil, nil
		case <-e.clock.After(wait):
		}
	}
}

func (e *LeaseElector) try(ctx context.Context, id string, seenRV *string, seenAt *time.Time) (*Term, *lease) {
	l, found, err := e.kube.getLease(ctx, e.ns, e.cfg.LeaseName)
	if e.unreadable && err == nil {
		e.log.Info("leader: the Lease is readable again", "lease", e.where())
		e.unreadable = false
	}
	var start time.Time
	var out *lease
	switch {
	case err != nil:
		if !e.unreadable && ctx.Err() == nil {
			// Once per outage: a standby that cannot read the Lease cannot take over.
			e.log.Warn("leader: cannot read the Lease; retrying every retry period", "lease", e.where(), "error", err)
			e.unreadable = true
		}
		return nil, nil
	case !found:
		start = e.clock.Now()
		out, err = e.kube.createLease(ctx, &lease{
			Metadata: leaseMeta{Name: e.cfg.LeaseName, Namespace: e.ns},
			Spec:     e.held(leaseSpec{LeaseTransitions: new(int32(0))}, id, start, true),
		})
	case l.Spec.holder() != "" && l.Metadata.ResourceVersion != *seenRV:
		*seenRV, *seenAt = l.Metadata.ResourceVersion, e.clock.Now()
		return nil, nil
	case l.Spec.holder() != "" && e.clock.Since(*seenAt) < e.duration(l):
		return nil, nil
	default: // released, or not renewed for its duration
		start = e.clock.Now()
		next := *l
		next.Spec = e.held(l.Spec, id, start, true)
		next.Spec.LeaseTransitions = new(l.Spec.transitions() + 1)
		out, err = e.kube.updateLease(ctx, &next)
	}
	if err != nil {
		e.log.Debug("leader: acquire the Lease", "lease", e.where(), "error", err)
		return nil, nil
	}
	return newTerm(uint64(out.Spec.transitions())+1, id, e.clock, e.cfg.RenewDeadline, start), out
}

// held is spec as holder id writes it at now: its identity, its lease
// duration and renew time, and, on acquiring, the acquire time.
func (e *LeaseElector) held(spec leaseSpec, id string, now time.Time, acquire bool) leaseSpec {
	spec.HolderIdentity = &id
	spec.LeaseDurationSeconds = new(int32(e.cfg.LeaseDuration / time.Second))
	spec.RenewTime = &microTime{now}
	if acquire {
		spec.AcquireTime = &microTime{now}
	}
	return spec
}

// renew rewrites the Lease every RetryPeriod, each write at the
// resourceVersion of the last, until ctx is done or the term ends, and
// returns the Lease as this term last wrote it. A write whose answer was
// lost leaves the Lease at a version this replica did not see: the next
// write conflicts, and the Lease is read back; if it still holds this
// term's identity, renewing carries on from there (without extending the
// term by the lost write, whose start is unknown).
func (e *LeaseElector) renew(ctx context.Context, term *Term, l *lease) *lease {
	ended := make(chan struct{})
	term.whenEnded(func() { close(ended) })
	for {
		select {
		case <-ctx.Done():
			return l
		case <-ended:
			return l
		case <-e.clock.After(e.cfg.RetryPeriod):
		}
		start := e.clock.Now()
		wctx, cancel := context.WithDeadline(ctx, term.Deadline())
		next := *l
		next.Spec = e.held(l.Spec, term.Holder(), start, false)
		out, err := e.kube.updateLease(wctx, &next)
		if err == nil {
			l = out
			term.extend(start)
			cancel()
			continue
		}
		e.log.Debug("leader: renew the Lease", "lease", e.where(), "term", term.Number(), "error", err)
		if kubeStatus(err, http.StatusConflict) || kubeStatus(err, http.StatusNotFound) {
			got, found, gerr := e.kube.getLease(wctx, e.ns, e.cfg.LeaseName)
			switch {
			case gerr != nil:
			case !found:
				term.end("the Lease was deleted")
			case got.Spec.holder() == term.Holder():
				l = got // our own write, whose answer was lost
			default:
				term.end("another replica holds the Lease")
			}
		}
		cancel()
	}
}

// release empties the Lease's holder (with a lease duration of one second,
// as client-go releases), if this term still holds it, so that a standby
// takes over at its next try instead of after the lease duration. It is
// called once the term has ended. A release is never written over a Lease
// another replica holds: on a conflict the Lease is read back, and
// released only if it still names holder (a renewal cancelled in flight
// that was written all the same).
func (e *LeaseElector) release(ctx context.Context, l *lease, holder string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RenewDeadline)
	defer cancel()
	for range 2 {
		now := microTime{e.clock.Now()}
		next := *l
		next.Spec.HolderIdentity = new("")
		next.Spec.LeaseDurationSeconds = new(int32(1))
		next.Spec.AcquireTime, next.Spec.RenewTime = &now, &now
		_, err := e.kube.updateLease(ctx, &next)
		if err == nil {
			return
		}
		e.log.Debug("leader: release the Lease", "lease", e.where(), "error", err)
		if !kubeStatus(err, http.StatusConflict) {
			return
		}
		got, found, gerr := e.kube.getLease(ctx, e.ns, e.cfg.LeaseName)
		if gerr != nil || !found || got.Spec.holder() != holder {
			return
		}
		l = got
	}
}
