package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/leader"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

// This file is the hot standby (docs/standby.md): with
// BRIDGE_LEADER_ELECTION on, every replica starts its components and
// campaigns; the one elected runs a pipeline under its term, and every
// request to Zulip, publish and checkpoint write checks the term first.

// newElector returns the elector BRIDGE_LEADER_ELECTION names, nil when it
// is off. nc is the NATS connection for nats-kv.
func (a *app) newElector(nc *nats.Conn) (leader.Elector, error) {
	log := a.log.With("component", "leader")
	switch a.cfg.Leader.Election {
	case leader.Lease:
		e, err := leader.NewLease(a.cfg.Leader, nil, log)
		if err != nil {
			return nil, fmt.Errorf("leader election: %w", err)
		}
		return e, nil
	case leader.NATSKV:
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("leader election: %w", err)
		}
		e, err := leader.NewNATSKV(a.cfg.Leader, js, log)
		if err != nil {
			return nil, fmt.Errorf("leader election: %w", err)
		}
		return e, nil
	}
	return nil, nil
}

// errStandby is what a request to Zulip fails with outside a term.
var errStandby = fmt.Errorf("%w: standing by", pipeline.ErrFenced)

// fenced returns nil when this replica may talk to Zulip: without
// election always, with it only under a term still current.
func (a *app) fenced() error {
	if a.elector == nil {
		return nil
	}
	t := a.term.Load()
	if t == nil {
		return errStandby
	}
	return pipeline.CheckFence(t)
}

// run runs the bridge until ctx is done or a fatal error: the pipeline,
// or with leader election the campaign and a pipeline per term.
func (a *app) run(ctx context.Context) error {
	if a.elector == nil {
		return a.pipeline.Load().Run(ctx)
	}
	a.log.Info("leader election on: standing by until elected", "backend", a.cfg.Leader.Election)
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	err := a.elector.Run(ctx, func(ctx context.Context, term *leader.Term) {
		if err := a.lead(ctx, term); err != nil {
			fail(err)
		}
	}, nil)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// lead runs a new pipeline for one term. It returns an error only for a
// failure that would have stopped the bridge without election: one that
// comes from the term having ended is the normal end of a term (the
// elector logs it), and the replica stands by again.
func (a *app) lead(ctx context.Context, term *leader.Term) error {
	a.term.Store(term)
	a.leading.Store(true)
	a.changes.Add(1)
	defer func() {
		a.pipeline.Store(nil)
		a.term.Store(nil)
		a.leading.Store(false)
		a.changes.Add(1)
	}()
	deps := a.pipelineDeps
	deps.Fence = term
	deps.Logger = a.log.With("term", term.Number())
	p, err := pipeline.New(a.cfg.Pipeline, deps)
	if err != nil {
		return err
	}
	a.pipeline.Store(p)
	err = p.Run(ctx)
	if errors.Is(err, checkpoint.ErrStaleTerm) {
		// The store holds a checkpoint of a later term: another replica
		// leads although this term has not run out by this clock.
		a.log.Warn("checkpoint store refused this term's checkpoint: another replica leads; standing by", "term", term.Number(), "error", err)
		return nil
	}
	if err != nil && term.Check() != nil {
		a.log.Debug("pipeline stopped at the end of its term", "term", term.Number(), "error", err)
		return nil
	}
	return err
}
