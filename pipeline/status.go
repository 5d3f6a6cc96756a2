package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Status is what the pipeline tells health probes and operators. It is safe
// for concurrent use.
type Status struct {
	mu           sync.Mutex
	queueID      string
	lastEventID  int64
	maxMessageID int64
	registered   bool
	brokerErr    error
	spoolErr     error
	lastProgress time.Time
	running      bool
}

// Snapshot is a copy of the status at one moment.
type Snapshot struct {
	QueueID      string
	LastEventID  int64
	MaxMessageID int64
	Registered   bool      // a queue is registered (or resumed) and polled
	BrokerErr    error     // last publish failure, nil once the broker confirms again
	SpoolErr     error     // last failure to append to the spool (full), nil once it takes events again
	LastProgress time.Time // last time the loop moved: poll returned, publish tried
	Running      bool
}

// Snapshot returns the current status.
func (s *Status) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		QueueID: s.queueID, LastEventID: s.lastEventID, MaxMessageID: s.maxMessageID,
		Registered: s.registered, BrokerErr: s.brokerErr, SpoolErr: s.spoolErr, LastProgress: s.lastProgress,
		Running: s.running,
	}
}

// Live reports an error when the loop has made no progress for longer than
// stall: it is wedged, and restarting the process is the cure.
func (s Snapshot) Live(now time.Time, stall time.Duration) error {
	if !s.Running {
		return nil
	}
	if idle := now.Sub(s.LastProgress); idle > stall {
		return fmt.Errorf("poll loop made no progress for %s (limit %s)", idle.Round(time.Second), stall)
	}
	return nil
}

// Ready reports an error unless a queue is registered and the broker (and
// the spool, if any) takes messages.
func (s Snapshot) Ready() error {
	switch {
	case !s.Registered:
		return errors.New("no event queue registered yet")
	case s.SpoolErr != nil:
		return fmt.Errorf("spool: %w", s.SpoolErr)
	case s.BrokerErr != nil:
		return fmt.Errorf("broker: %w", s.BrokerErr)
	}
	return nil
}

func (s *Status) update(fn func(s *Status)) {
	s.mu.Lock()
	fn(s)
	s.mu.Unlock()
}
