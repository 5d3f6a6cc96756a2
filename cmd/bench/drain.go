package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

const (
	readyTimeout = time.Minute
	stopTimeout  = time.Minute
	// pollEvery is how often the broker is asked how much it holds while a
	// backlog drains: the resolution of every drain time.
	pollEvery = 5 * time.Millisecond
	// lostStall ends the wait for a backlog once its queue was lost and
	// nothing reached the broker for this long since the loss was seen
	// and since the last message: the backfill is over and the rest of
	// the backlog is gone with the queue.
	lostStall = 15 * time.Second
)

// lane is one sink's bridge and broker sharing the backlog of one
// simulator with the other sinks' lanes: every queue gets the same events
// from one injection.
type lane struct {
	sink    string
	dir     string
	broker  broker
	spec    *bridgeSpec
	queueID string
	// backlog is how many events wait in the queue.
	backlog int64
	// ready is how long the bridge took to register its queue and poll
	// it, from a fresh state directory.
	ready time.Duration
	// known holds every queue of the simulator that this lane's bridge
	// did not register after prepare: the lanes' queues, and those of
	// bridges that ran before. Shared by the lanes of one simulator.
	known map[string]bool
}

// close stops the lane's broker and removes its files: a million-event
// stream takes a gigabyte of disk.
func (l *lane) close() {
	l.broker.close()
	_ = os.RemoveAll(l.dir)
}

// prepare starts a broker and a bridge per sink against sim, lets each
// bridge register its queue and stops it again (the queues are kept),
// then injects n events of the mix (of its messages only with
// messagesOnly), which queue up in every queue. The bridges run with
// BRIDGE_SPOOL=spoolMode.
func (b *bench) prepare(ctx context.Context, sim *zuliptest.Server, what string, sinks []string, n int, messagesOnly bool, spoolMode string) ([]*lane, error) {
	var lanes []*lane
	known := map[string]bool{}
	fail := func(err error) ([]*lane, error) {
		for _, l := range lanes {
			l.close()
		}
		return nil, err
	}
	tr, err := newTraffic(sim, b.cfg.mix, b.cfg.seed, messagesOnly)
	if err != nil {
		return nil, err
	}
	for _, s := range sinks {
		dir, err := tempDir(b.dir, what+"-"+s+"-")
		if err != nil {
			return fail(err)
		}
		br, err := startBroker(s, filepath.Join(dir, "broker"))
		if err != nil {
			return fail(err)
		}
		l := &lane{sink: s, dir: dir, broker: br, known: known}
		lanes = append(lanes, l)
		if err := br.prepare(ctx, tr.types()); err != nil {
			return fail(fmt.Errorf("%s: %w", s, err))
		}
		if l.spec, err = b.newSpec(sim, filepath.Join(dir, "state"), br, spoolMode); err != nil {
			return fail(err)
		}
		p, err := l.spec.start("")
		if err != nil {
			return fail(err)
		}
		l.queueID, err = p.waitReady(ctx, sim, known, readyTimeout)
		if err != nil {
			p.kill()
			return fail(fmt.Errorf("%s: %w", s, err))
		}
		l.ready = time.Since(p.started)
		known[l.queueID] = true
		if err := p.stop(stopTimeout); err != nil {
			return fail(fmt.Errorf("%s: %w", s, err))
		}
	}
	began := time.Now()
	for i := 0; i < n; i++ {
		if _, err := tr.step(); err != nil {
			return fail(err)
		}
		if i%10000 == 9999 && ctx.Err() != nil {
			return fail(ctx.Err())
		}
	}
	pending := map[string]int64{}
	for _, q := range sim.Queues() {
		pending[q.ID] = int64(q.Pending)
	}
	for _, l := range lanes {
		l.backlog = pending[l.queueID]
		if l.backlog == 0 {
			return fail(fmt.Errorf("%s: queue %s holds no events after injecting %d", l.sink, l.queueID, n))
		}
	}
	b.logf("%s: injected %d events in %.1fs; backlog per queue %d", what, n, time.Since(began).Seconds(), lanes[0].backlog)
	return lanes, nil
}

// outcome is how one bridge process fared with a backlog.
type outcome struct {
	took     time.Duration // process start until the last message arrived
	inBroker int64
	finished bool // the broker holds the whole backlog
	lost     bool // the bridge registered a new queue
	mem      memory
	log      string // the end of the bridge's output when the queue was lost
	// bridgeCPU is the CPU time the bridge used (start-up included),
	// benchCPU what this process (simulator, broker) used meanwhile.
	bridgeCPU, benchCPU time.Duration
}

// describe tells, for a progress line, what went wrong with a backlog of
// want events; nothing when all went well.
func (o outcome) describe(want int64) string {
	switch {
	case o.lost:
		return fmt.Sprintf("; QUEUE LOST: %d of %d events reached the broker; the bridge said:\n%s", o.inBroker, want, o.log)
	case !o.finished:
		return fmt.Sprintf("; DID NOT FINISH: %d of %d events in the broker", o.inBroker, want)
	}
	return ""
}

// drain starts the lane's bridge and waits until the broker holds the
// backlog, the queue was lost and the broker stopped growing, or
// b.cfg.timeout passed; the bridge is stopped before it returns.
func (b *bench) drain(ctx context.Context, sim *zuliptest.Server, l *lane, want int64, what string) (outcome, error) {
	start, err := l.broker.count(ctx)
	if err != nil {
		return outcome{}, err
	}
	benchStart := selfCPU()
	profile := b.profilePath(l.sink + "-" + what)
	p, err := l.spec.start(profile)
	if err != nil {
		return outcome{}, err
	}
	defer p.kill()
	stopProfile := func() {}
	if profile != "" {
		// The bench process too (the simulator, the broker), beside the
		// bridge's: where the other half of the CPU per event goes.
		if stopProfile, err = profileSelf(strings.TrimSuffix(profile, ".pprof") + "-bench.pprof"); err != nil {
			return outcome{}, err
		}
	}
	defer func() { stopProfile() }()
	var o outcome
	last, lastAt, lastLossCheck, lostAt := start, p.started, time.Time{}, time.Time{}
	for {
		n, err := l.broker.count(ctx)
		if err != nil {
			return outcome{}, err
		}
		now := time.Now()
		if n > last {
			last, lastAt = n, now
		}
		if n-start >= want {
			o.finished = true
			break
		}
		if !o.lost && now.Sub(lastLossCheck) >= 100*time.Millisecond {
			lastLossCheck = now
			if o.lost = l.queueLost(sim); o.lost {
				lostAt = now
			}
		}
		if o.lost && now.Sub(lastAt) >= lostStall && now.Sub(lostAt) >= lostStall {
			break
		}
		if now.Sub(p.started) >= b.cfg.timeout {
			break
		}
		if p.exited() {
			return outcome{}, p.failed("%s: bridge exited while draining (%d of %d in the broker)", l.sink, n-start, want)
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return outcome{}, err
		}
	}
	stopProfile()
	stopProfile = func() {}
	o.took, o.inBroker = lastAt.Sub(p.started), last-start
	o.benchCPU = selfCPU() - benchStart
	if o.bridgeCPU, err = p.cpu(); err != nil {
		return outcome{}, err
	}
	o.lost = o.lost || l.queueLost(sim)
	if o.lost {
		o.log = tail(p.out.String(), 5)
	}
	if o.mem, err = p.memory(); err != nil {
		return outcome{}, err
	}
	if err := p.stop(stopTimeout); err != nil {
		return outcome{}, err
	}
	// Queues this bridge registered belong to no later lane.
	for _, q := range sim.Queues() {
		l.known[q.ID] = true
	}
	return o, nil
}

// queueLost reports whether the lane's bridge gave up its queue: the
// queue is gone, or the bridge registered another one.
func (l *lane) queueLost(sim *zuliptest.Server) bool {
	mine := false
	for _, q := range sim.Queues() {
		if !l.known[q.ID] {
			return true
		}
		mine = mine || q.ID == l.queueID
	}
	return !mine
}

// drainRun is one run of the drain measurement for every sink, the
// bridges with BRIDGE_SPOOL=spoolMode. With the spool off the baseline is
// the raw client (rawRun); with it on, the raw work of the spool and the
// raw client together (rawSpoolRun).
func (b *bench) drainRun(ctx context.Context, run int, spoolMode string) (map[string]drainRun, error) {
	sim, err := newSimulator()
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	what, raw := fmt.Sprintf("drain-run%d", run+1), b.rawRun
	if spoolMode == spoolOn {
		what, raw = fmt.Sprintf("drain-spool-run%d", run+1), b.rawSpoolRun
	}
	lanes, err := b.prepare(ctx, sim, what, b.cfg.sinks, b.cfg.events, false, spoolMode)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, l := range lanes {
			l.close()
		}
	}()
	if run%2 == 1 {
		// Alternate which sink drains first too.
		slices.Reverse(lanes)
	}
	out := map[string]drainRun{}
	for _, l := range lanes {
		r := drainRun{Events: l.backlog, ReadySeconds: l.ready.Seconds()}
		prev := b.prev[l.sink+"/"+spoolMode]
		rawFirst := run%2 == 1 && prev != nil
		if rawFirst {
			if err := raw(ctx, l, prev, &r); err != nil {
				return nil, err
			}
			r.RawFirst, r.RawEvents = true, int64(prev.len())
		}
		o, err := b.drain(ctx, sim, l, l.backlog, what)
		if err != nil {
			return nil, err
		}
		r.Finished, r.QueueLost, r.InBroker = o.finished && !o.lost, o.lost, o.inBroker
		r.BridgeSeconds, r.PeakRSSMiB = o.took.Seconds(), o.mem.PeakMiB
		r.cpu(o)
		// With the queue lost, what reached the broker (the backfilled
		// messages and the resync event) is what the raw client gets.
		stored, err := l.broker.readBack(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.sink, err)
		}
		if int64(stored.len()) != o.inBroker {
			return nil, fmt.Errorf("%s: read back %d messages, the broker counted %d", l.sink, stored.len(), o.inBroker)
		}
		b.prev[l.sink+"/"+spoolMode] = stored
		if !rawFirst {
			if err := raw(ctx, l, stored, &r); err != nil {
				return nil, err
			}
			r.RawEvents = int64(stored.len())
		}
		r.rates()
		b.logf("%s %s (BRIDGE_SPOOL=%s): bridge %.0f events/s, raw %.0f events/s, ratio %.3f, peak RSS %.1f MiB%s",
			what, l.sink, spoolMode, r.BridgeEPS, r.RawEPS, r.Ratio, r.PeakRSSMiB, o.describe(l.backlog))
		out[l.sink] = r
	}
	return out, nil
}

// rawRun publishes stored with the raw client and records in r how long
// it took and the CPU time per message this process (broker and client)
// spent on it.
func (b *bench) rawRun(ctx context.Context, l *lane, stored backlog, r *drainRun) error {
	dir, err := tempDir(l.dir, "raw-")
	if err != nil {
		return err
	}
	began := selfCPU()
	took, err := l.broker.raw(ctx, stored, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", l.sink, err)
	}
	r.RawSeconds, r.RawCPUMicros = took.Seconds(), micros(selfCPU()-began, stored.len())
	return nil
}

// micros is d per event, in microseconds.
func micros(d time.Duration, events int) float64 {
	if events == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(events)
}

// bigBacklog drains -big events per sink, with a wait capped at -timeout.
// Each sink gets a simulator of its own: a million events in two queues
// would double the bench's memory, gigabytes of it.
func (b *bench) bigBacklog(ctx context.Context, sink string) (*bigResult, error) {
	sim, err := newSimulator()
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	lanes, err := b.prepare(ctx, sim, "big", []string{sink}, b.cfg.big, false, spoolOff)
	if err != nil {
		return nil, err
	}
	l := lanes[0]
	defer l.close()
	o, err := b.drain(ctx, sim, l, l.backlog, "big")
	if err != nil {
		return nil, err
	}
	r := &bigResult{
		Events: l.backlog, InBroker: o.inBroker, Finished: o.finished, QueueLost: o.lost,
		Seconds: o.took.Seconds(), PeakRSSMiB: o.mem.PeakMiB,
	}
	if o.took > 0 {
		r.EPS = float64(o.inBroker) / o.took.Seconds()
	}
	b.logf("big %s: %d of %d events in the broker after %.1fs (%.0f/s), peak RSS %.1f MiB%s",
		sink, r.InBroker, r.Events, r.Seconds, r.EPS, r.PeakRSSMiB, o.describe(l.backlog))
	return r, nil
}

// profileSelf profiles this process's CPU into path until stop is called.
func profileSelf(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
