package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Direction says which way bytes flow through the proxy.
type Direction uint8

const (
	// Up is client to upstream: requests, publishes.
	Up Direction = 1 << iota
	// Down is upstream to client: responses, acknowledgements.
	Down
	// Both is Up and Down.
	Both = Up | Down
)

func (d Direction) String() string {
	switch d {
	case 0:
		return "none"
	case Up:
		return "up"
	case Down:
		return "down"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Faults is what the proxy does to the traffic. The zero value forwards
// everything untouched.
type Faults struct {
	// Reset closes every live connection with a TCP RST, both sides, and
	// resets each new one as soon as it is accepted.
	Reset bool
	// Blackhole drops the bytes flowing in these directions: they are read
	// and discarded, so the sender's writes succeed and nothing arrives.
	// Down alone is the one-way blackhole in which the server gets every
	// request and the client never hears back. When a direction stops
	// being blackholed, the connections that lost bytes in it are reset.
	Blackhole Direction
	// Stall holds the bytes flowing in these directions (the sender is
	// held back by TCP once the buffers fill) and delivers them in order
	// once the stall ends.
	Stall Direction
	// Latency delays every chunk of bytes, each way, by this much.
	Latency time.Duration
	// CutAfter, above 0, lets each connection pass this many more bytes
	// downstream (counted from when it is set, or from the connection's
	// start), then resets the client's side: a response broken off
	// mid-way. Bytes still in the proxy's send buffer when it resets are
	// lost, so the client gets at most that many. The upstream side is
	// not broken: the proxy reads what the server still sends, drops it,
	// and passes on the end of the client's side, as a load balancer that
	// lost its client does; so a server that counts what it wrote as
	// delivered is not misled about what it wrote.
	CutAfter int64
	// TruncateAfter, above 0 and with CutAfter 0, is CutAfter with a
	// clean end: the client gets exactly that many bytes and then the end
	// of the stream (FIN): a body that ends early.
	TruncateAfter int64
}

// Stats counts what the proxy did. Each counter only grows, except Active
// and Held.
type Stats struct {
	Accepted int64 // connections accepted
	Active   int64 // connections open now
	// Refused counts connections reset as soon as they were accepted:
	// Reset was on, or the upstream could not be reached.
	Refused int64
	// Reset counts live connections a fault reset: Reset switched on, or
	// the end of a blackhole that dropped some of their bytes. A reset
	// passed on from one side to the other is not counted.
	Reset int64
	// Cut counts connections ended by CutAfter or TruncateAfter.
	Cut int64
	// Up and Down are the bytes forwarded each way.
	Up, Down int64
	// DroppedUp and DroppedDown are the bytes a blackhole dropped (and,
	// down, what the server sent after a cut).
	DroppedUp, DroppedDown int64
	// Held is the number of bytes a stall holds now.
	Held int64
}

// Proxy is a TCP proxy from a loopback listener to one upstream address.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	dialer   net.Dialer

	mu sync.Mutex
	// cond is signalled (on mu) when the faults change, a link dies or the
	// proxy closes: what a held chunk waits for.
	cond    *sync.Cond
	faults  Faults
	links   map[*link]struct{}
	stats   Stats
	changed chan struct{} // closed and replaced at every change of stats or faults
	closed  bool

	wg sync.WaitGroup // the accept loop and every connection's goroutines
}

// link is one proxied connection.
type link struct {
	client, server *net.TCPConn
	dead           bool          // reset, cut or closed: nothing more is forwarded
	cut            bool          // dead by a cut: the upstream side is drained, not reset
	done           chan struct{} // closed when dead is set
	dropped        Direction     // directions in which a blackhole dropped bytes
	budget         int64         // downstream bytes left before a cut; -1: no cut armed
	truncate       bool          // the armed cut ends the client's side cleanly
}

// New starts a proxy on 127.0.0.1 (an OS-chosen port) that forwards each
// connection to upstream (host:port). Close stops it.
func New(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		ln:       ln,
		upstream: upstream,
		dialer:   net.Dialer{Timeout: 5 * time.Second},
		links:    map[*link]struct{}{},
		changed:  make(chan struct{}),
	}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Front starts a proxy in front of ln and returns it with a listener that
// accepts from ln but reports the proxy's address as its own: a server
// that advertises its listener's address to clients (a Kafka broker in its
// metadata) then sends them through the proxy. Closing the returned
// listener closes ln and the proxy.
func Front(ln net.Listener) (*Proxy, net.Listener, error) {
	p, err := New(ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	return p, &fronted{Listener: ln, p: p}, nil
}

type fronted struct {
	net.Listener
	p *Proxy
}

func (f *fronted) Addr() net.Addr { return f.p.ln.Addr() }

func (f *fronted) Close() error {
	err := f.Listener.Close()
	f.p.Close()
	return err
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream is the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Set replaces the faults in force. Live connections are affected at once:
// Reset resets them, the end of a blackhole resets those that lost bytes,
// the end of a stall releases what it held, and a new CutAfter or
// TruncateAfter starts counting anew on each of them.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.faults
	p.faults = f
	rearm := old.CutAfter != f.CutAfter || old.TruncateAfter != f.TruncateAfter
	for l := range p.links {
		switch {
		case l.dead:
		case f.Reset, l.dropped&^f.Blackhole != 0:
			p.resetLocked(l)
			p.stats.Reset++
		case rearm:
			p.armLocked(l)
		}
	}
	p.cond.Broadcast()
	p.notifyLocked()
}

// Faults returns the faults in force.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Stats returns the counters now.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Wait blocks until cond holds for the counters, or ctx ends. cond is
// evaluated at every change, without the proxy's lock held.
func (p *Proxy) Wait(ctx context.Context, cond func(Stats) bool) error {
	for {
		p.mu.Lock()
		s, changed := p.stats, p.changed
		p.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("faultproxy: %w (stats %+v)", ctx.Err(), s)
		}
	}
}

// Close stops accepting, resets every connection and waits for the
// proxy's goroutines to end. It may be called more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	for l := range p.links {
		p.resetLocked(l) // a truncated link's client side is still open
	}
	p.cond.Broadcast()
	p.notifyLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed: Accept fails only then on a loopback listener
		}
		tc := c.(*net.TCPConn)
		p.mu.Lock()
		p.stats.Accepted++
		refuse := p.closed || p.faults.Reset
		if refuse {
			p.stats.Refused++
		}
		p.notifyLocked()
		p.mu.Unlock()
		if refuse {
			rst(tc)
			continue
		}
		p.wg.Add(1)
		go p.serve(tc)
	}
}

func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	s, err := p.dialer.Dial("tcp", p.upstream)
	if err != nil {
		p.mu.Lock()
		p.stats.Refused++
		p.notifyLocked()
		p.mu.Unlock()
		rst(client)
		return
	}
	l := &link{client: client, server: s.(*net.TCPConn), done: make(chan struct{}), budget: -1}
	p.mu.Lock()
	if p.closed || p.faults.Reset {
		p.stats.Refused++
		p.notifyLocked()
		p.mu.Unlock()
		rst(l.client)
		rst(l.server)
		return
	}
	p.armLocked(l)
	p.links[l] = struct{}{}
	p.stats.Active++
	p.notifyLocked()
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(l, Up, l.client, l.server) }()
	go func() { defer pumps.Done(); p.pump(l, Down, l.server, l.client) }()
	pumps.Wait()

	p.mu.Lock()
	delete(p.links, l)
	p.stats.Active--
	if !l.dead {
		l.dead = true
		close(l.done)
	}
	p.notifyLocked()
	p.mu.Unlock()
	l.client.Close()
	l.server.Close()
}

// pump copies src to dst through the faults until src ends or the link
// dies. The end of src is passed on as the end of dst's writing side; an
// error of src (a reset) resets the link. After a cut, the upstream's
// bytes are read and dropped until it ends, and the end of the client's
// side is passed on to it.
func (p *Proxy) pump(l *link, dir Direction, src, dst *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.forward(l, dir, dst, buf[:n]) {
			break
		}
		if errors.Is(err, io.EOF) {
			_ = dst.CloseWrite()
			return
		}
		if err != nil {
			if !p.isCut(l) {
				p.kill(l)
				return
			}
			break
		}
	}
	if !p.isCut(l) {
		return // reset
	}
	if dir == Up {
		_ = dst.CloseWrite() // the client is gone: the server reads the end
		return
	}
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		p.stats.DroppedDown += int64(n)
		p.notifyLocked()
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *Proxy) isCut(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return l.cut
}

// forward passes b on to dst as the faults say, and reports whether the
// link lives on.
func (p *Proxy) forward(l *link, dir Direction, dst *net.TCPConn, b []byte) bool {
	p.mu.Lock()
	if !l.dead && p.faults.Stall&dir != 0 {
		p.stats.Held += int64(len(b))
		p.notifyLocked()
		for !l.dead && p.faults.Stall&dir != 0 {
			p.cond.Wait()
		}
		p.stats.Held -= int64(len(b))
		p.notifyLocked()
	}
	if l.dead {
		p.mu.Unlock()
		return false
	}
	f := p.faults
	if f.Blackhole&dir != 0 {
		l.dropped |= dir
		if dir == Up {
			p.stats.DroppedUp += int64(len(b))
		} else {
			p.stats.DroppedDown += int64(len(b))
		}
		p.notifyLocked()
		p.mu.Unlock()
		return true
	}
	cut, truncate := false, l.truncate
	if dir == Down && l.budget >= 0 {
		if int64(len(b)) >= l.budget {
			p.stats.DroppedDown += int64(len(b)) - l.budget // what follows the cut is drained
			b, cut = b[:l.budget], true
		}
		l.budget -= int64(len(b))
	}
	p.mu.Unlock()

	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return false
		}
	}
	if len(b) > 0 {
		if _, err := dst.Write(b); err != nil {
			p.kill(l)
			return false
		}
		p.mu.Lock()
		if dir == Up {
			p.stats.Up += int64(len(b))
		} else {
			p.stats.Down += int64(len(b))
		}
		p.notifyLocked()
		p.mu.Unlock()
	}
	if cut {
		p.cut(l, truncate)
		return false
	}
	return true
}

// armLocked sets the link's cut budget from the faults in force.
func (p *Proxy) armLocked(l *link) {
	switch {
	case p.faults.CutAfter > 0:
		l.budget, l.truncate = p.faults.CutAfter, false
	case p.faults.TruncateAfter > 0:
		l.budget, l.truncate = p.faults.TruncateAfter, true
	default:
		l.budget, l.truncate = -1, false
	}
}

// cut ends the client's side of the link once its budget is spent.
func (p *Proxy) cut(l *link, truncate bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.dead {
		return
	}
	p.stats.Cut++
	l.cut = true
	p.dieLocked(l)
	if truncate {
		// The client reads what it was sent and then the end; what it
		// still sends is read and dropped by its pump until it closes.
		_ = l.client.CloseWrite()
	} else {
		rst(l.client)
	}
}

// kill resets a link whose peer failed, passing the failure on.
func (p *Proxy) kill(l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !l.dead {
		p.resetLocked(l)
	}
}

func (p *Proxy) resetLocked(l *link) {
	p.dieLocked(l)
	rst(l.client)
	rst(l.server)
}

func (p *Proxy) dieLocked(l *link) {
	if !l.dead {
		l.dead = true
		close(l.done)
	}
	p.cond.Broadcast()
	p.notifyLocked()
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// rst closes c with a TCP RST instead of a FIN: SO_LINGER 0 discards what
// is unsent.
func rst(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}
