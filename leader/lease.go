package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jonboulle/clockwork"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// LeaseElector elects a leader with a Kubernetes Lease through client-go's
// leaderelection package.
type LeaseElector struct {
	cfg    Config
	client kubernetes.Interface
	ns     string
	log    *slog.Logger
	clock  clockwork.Clock
}

// NewLease returns an elector on the Lease cfg names. A nil rc means the
// kubeconfig file cfg.Kubeconfig names or, without one, the in-cluster
// configuration of the pod's service account. log may be nil.
func NewLease(cfg Config, rc *rest.Config, log *slog.Logger) (*LeaseElector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Election != Lease {
		return nil, fmt.Errorf("leader: NewLease with BRIDGE_LEADER_ELECTION=%s", cfg.Election)
	}
	if rc == nil && cfg.Kubeconfig != "" {
		var err error
		if rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("KUBECONFIG: %w", err)
		}
	}
	if rc == nil {
		var err error
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("leader: Kubernetes in-cluster configuration (outside a cluster, set KUBECONFIG): %w", err)
		}
	}
	rc = rest.CopyConfig(rc)
	// No request may outlive the renew deadline.
	if rc.Timeout == 0 || rc.Timeout > cfg.RenewDeadline {
		rc.Timeout = cfg.RenewDeadline
	}
	client, err := kubernetes.NewForConfig(rc)
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
	return &LeaseElector{cfg: cfg, client: client, ns: ns, log: discard(log), clock: clockwork.NewRealClock()}, nil
}

// Run implements Elector.
func (e *LeaseElector) Run(ctx context.Context, onLead func(context.Context, *Term), onLose func(*Term)) error {
	for ctx.Err() == nil {
		if err := e.candidacy(ctx, onLead, onLose); err != nil {
			return err
		}
	}
	return nil
}

// Current implements Elector: a get of the Lease (the Role the chart
// creates grants it), then whether this identity may also update and
// create it, asked with SelfSubjectAccessReview: a missing grant shows
// before the first election needs it.
func (e *LeaseElector) Current(ctx context.Context) (Record, error) {
	r := Record{Where: "Lease " + e.ns + "/" + e.cfg.LeaseName}
	l, err := e.client.CoordinationV1().Leases(e.ns).Get(ctx, e.cfg.LeaseName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return r, fmt.Errorf("leader: %s: %w", r.Where, err)
	case l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "":
		r.Holder = *l.Spec.HolderIdentity
		if l.Spec.RenewTime != nil {
			r.Renewed = l.Spec.RenewTime.Time
		}
		d := e.cfg.LeaseDuration
		if l.Spec.LeaseDurationSeconds != nil {
			d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
		}
		r.Expired = !r.Renewed.IsZero() && e.clock.Since(r.Renewed) > d
	}
	for verb, name := range map[string]string{"update": e.cfg.LeaseName, "create": ""} {
		// A create names no object to the authorizer: a Role cannot
		// restrict it to one name.
		review, err := e.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: e.ns, Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Name: name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return r, fmt.Errorf("leader: %s: may this identity %s it: %w", r.Where, verb, err)
		}
		if !review.Status.Allowed {
			return r, fmt.Errorf("leader: %s: this identity may not %s it (grant coordination.k8s.io leases get, create and update in %s)", r.Where, verb, e.ns)
		}
	}
	return r, nil
}

// candidacy runs one client-go LeaderElector, under a fresh identity, until
// ctx is done or one term has ended.
func (e *LeaseElector) candidacy(ctx context.Context, onLead func(context.Context, *Term), onLose func(*Term)) error {
	lock := &recordingLock{
		LeaseLock: resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: e.cfg.LeaseName, Namespace: e.ns},
			Client:     e.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: candidateID(e.cfg.Identity)},
		},
		clock:  e.clock,
		window: e.cfg.RenewDeadline,
		term:   make(chan *Term, 1),
	}
	leading := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: e.cfg.LeaseDuration,
		RenewDeadline: e.cfg.RenewDeadline,
		RetryPeriod:   e.cfg.RetryPeriod,
		// Released only once onLead has returned: the elector's context is
		// not ctx but one cancelled after that.
		ReleaseOnCancel: true,
		Name:            e.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(c context.Context) { leading <- c },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	// client-go logs through klog; send it to our logger.
	leCtx, stop := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logr.FromSlogHandler(e.log.Handler())))
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(leCtx)
	}()

	var leCtxLeading context.Context
	select {
	case <-ctx.Done():
		stop()
		<-done
		return nil
	case <-done: // cannot happen before leading unless leCtx ended
		return nil
	case leCtxLeading = <-leading:
	}
	term := <-lock.term // sent by the acquiring write, before OnStartedLeading
	go func() {
		select {
		case <-leCtxLeading.Done():
			term.end("renewal failed")
		case <-done:
		}
	}()
	lead(ctx, e.log, term, onLead, onLose)
	stop() // releases the lease if this replica still holds it
	<-done
	return nil
}

// recordingLock is a LeaseLock that turns the writes client-go makes into
// a Term: the first write of this candidate's identity acquires (its
// leaseTransitions + 1 is the term's number), every later one renews it
// from the instant the write started, and a release ends it first.
type recordingLock struct {
	resourcelock.LeaseLock
	clock  clockwork.Clock
	window time.Duration
	term   chan *Term // receives the term once

	mu      sync.Mutex
	current *Term
	lastGot *resourcelock.LeaderElectionRecord
}

var errNotHolder = errors.New("leader: not releasing a lease another replica holds")

func (l *recordingLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.LeaseLock.Get(ctx)
	if err == nil {
		l.mu.Lock()
		l.lastGot = rec
		l.mu.Unlock()
	}
	return rec, raw, err
}

func (l *recordingLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	start := l.clock.Now()
	if err := l.LeaseLock.Create(ctx, rec); err != nil {
		return err
	}
	l.wrote(rec, start)
	return nil
}

func (l *recordingLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if rec.HolderIdentity == "" { // a release
		l.mu.Lock()
		t, got := l.current, l.lastGot
		l.mu.Unlock()
		if t != nil {
			t.end("released")
		}
		// client-go releases after a fresh Get but judges by the record it
		// last wrote: never blank a record another replica holds.
		if got == nil || got.HolderIdentity != l.Identity() {
			return errNotHolder
		}
		return l.LeaseLock.Update(ctx, rec)
	}
	start := l.clock.Now()
	if err := l.LeaseLock.Update(ctx, rec); err != nil {
		return err
	}
	l.wrote(rec, start)
	return nil
}

// wrote records a successful write of this identity that started at start.
func (l *recordingLock) wrote(rec resourcelock.LeaderElectionRecord, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current == nil {
		l.current = newTerm(uint64(rec.LeaderTransitions)+1, rec.HolderIdentity, l.clock, l.window, start)
		l.term <- l.current
		return
	}
	l.current.extend(start)
}
