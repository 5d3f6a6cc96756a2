package faultproxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/faultproxy"
)

// upstream is a loopback server whose handler runs once per connection.
func upstream(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

func newProxy(t *testing.T, upstream string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wait waits for cond on the proxy's counters, failing after a generous
// bound (a hang, not a timing assertion).
func wait(t *testing.T, p *faultproxy.Proxy, what string, cond func(faultproxy.Stats) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// roundTrip writes msg and reads as many bytes back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("read back %q, want %q", got, msg)
	}
}

// refused connects and checks that the proxy resets the connection: at
// once (the reset can beat the end of the dial) or at the first read.
func refused(t *testing.T, p *faultproxy.Proxy) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v; want a connection reset", err)
		}
		return
	}
	defer c.Close()
	readReset(t, c)
}

// readReset reads from c until an error and checks that it is a reset.
func readReset(t *testing.T, c net.Conn) []byte {
	t.Helper()
	b, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %d bytes, then %v; want a connection reset", len(b), err)
	}
	return b
}

func TestForward(t *testing.T) {
	p := newProxy(t, upstream(t, echo))
	c := dial(t, p)
	msg := string(bytes.Repeat([]byte("0123456789"), 10_000))
	roundTrip(t, c, msg)
	wait(t, p, "the bytes both ways", func(s faultproxy.Stats) bool {
		return s.Up == int64(len(msg)) && s.Down == int64(len(msg))
	})
	if s := p.Stats(); s.Accepted != 1 || s.Active != 1 || s.Reset+s.Refused+s.Cut != 0 {
		t.Errorf("stats %+v; want one live connection, no fault", s)
	}
	c.Close()
	wait(t, p, "the connection to end", func(s faultproxy.Stats) bool { return s.Active == 0 })
}

// TestHalfClose: the end of the client's writing is passed on and the
// server's answer after it still arrives, as an HTTP/1.0 exchange needs.
func TestHalfClose(t *testing.T) {
	p := newProxy(t, upstream(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		_, _ = c.Write(append([]byte("got "), b...))
	}))
	c := dial(t, p)
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got request" {
		t.Fatalf("read %q, %v; want %q and the end", b, err, "got request")
	}
}

func TestReset(t *testing.T) {
	serverErr := make(chan error, 1)
	p := newProxy(t, upstream(t, func(c net.Conn) {
		_, err := io.Copy(c, c)
		serverErr <- err
	}))
	c := dial(t, p)
	roundTrip(t, c, "before")

	p.Set(faultproxy.Faults{Reset: true})
	readReset(t, c)
	if err := <-serverErr; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the upstream saw %v, want a connection reset", err)
	}
	// New connections are reset while Reset is on.
	refused(t, p)
	wait(t, p, "the refused connection", func(s faultproxy.Stats) bool { return s.Refused == 1 })
	if s := p.Stats(); s.Reset != 1 || s.Accepted != 2 {
		t.Errorf("stats %+v; want 1 reset of 2 accepted", s)
	}

	p.Set(faultproxy.Faults{})
	roundTrip(t, dial(t, p), "after")
}

// TestBlackhole: bytes the blackhole takes never arrive, the other
// direction flows, and the end of the blackhole resets the connection
// that lost bytes, which a new connection replaces.
func TestBlackhole(t *testing.T) {
	const greeting, request = "hello", "request"
	for _, dir := range []faultproxy.Direction{faultproxy.Up, faultproxy.Down, faultproxy.Both} {
		t.Run(dir.String(), func(t *testing.T) {
			received := make(chan int, 2) // bytes each upstream connection read in all
			p := newProxy(t, upstream(t, func(c net.Conn) {
				_, _ = c.Write([]byte(greeting))
				n, _ := io.Copy(io.Discard, c)
				received <- int(n)
			}))
			p.Set(faultproxy.Faults{Blackhole: dir})
			c := dial(t, p)
			if _, err := c.Write([]byte(request)); err != nil {
				t.Fatal(err)
			}
			var wantUp, wantDown, droppedUp, droppedDown int64 = int64(len(request)), int64(len(greeting)), 0, 0
			if dir&faultproxy.Up != 0 {
				wantUp, droppedUp = 0, int64(len(request))
			}
			if dir&faultproxy.Down != 0 {
				wantDown, droppedDown = 0, int64(len(greeting))
			}
			wait(t, p, "the bytes passed and dropped", func(s faultproxy.Stats) bool {
				return s.Up == wantUp && s.Down == wantDown && s.DroppedUp == droppedUp && s.DroppedDown == droppedDown
			})
			if wantDown > 0 {
				got := make([]byte, len(greeting))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != greeting {
					t.Fatalf("read %q, %v; want the greeting through", got, err)
				}
			}

			p.Set(faultproxy.Faults{})
			if b := readReset(t, c); len(b) != 0 {
				t.Errorf("the client got %q after the blackhole", b)
			}
			if n := <-received; n != int(wantUp) {
				t.Errorf("the upstream read %d bytes, want %d", n, wantUp)
			}
			if s := p.Stats(); s.Reset != 1 {
				t.Errorf("%d connections reset at the end of the blackhole, want 1", s.Reset)
			}
			c = dial(t, p)
			got := make([]byte, len(greeting))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != greeting {
				t.Fatalf("new connection read %q, %v; want the greeting", got, err)
			}
		})
	}
}

// TestOneWayBlackholeStores: with Down blackholed the server gets and
// answers every request; every answer is lost.
func TestOneWayBlackholeStores(t *testing.T) {
	stored := make(chan string, 10)
	p := newProxy(t, upstream(t, func(c net.Conn) {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			stored <- string(buf[:n])
			if _, err := c.Write([]byte("ack")); err != nil {
				return
			}
		}
	}))
	c := dial(t, p)
	roundTripAck(t, c, "one")
	if got := <-stored; got != "one" {
		t.Fatalf("stored %q", got)
	}

	p.Set(faultproxy.Faults{Blackhole: faultproxy.Down})
	if _, err := c.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := <-stored; got != "two" {
		t.Fatalf("stored %q, want two: requests pass a one-way blackhole", got)
	}
	wait(t, p, "the dropped acknowledgement", func(s faultproxy.Stats) bool { return s.DroppedDown == 3 })

	p.Set(faultproxy.Faults{})
	if b := readReset(t, c); len(b) != 0 {
		t.Errorf("the acknowledgement %q came through", b)
	}
	roundTripAck(t, dial(t, p), "three")
}

func roundTripAck(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ack" {
		t.Fatalf("read %q, %v; want ack", got, err)
	}
}

// TestStall: stalled bytes are held, not lost, and arrive in order once
// the stall ends; a reset ends a stall's hold too.
func TestStall(t *testing.T) {
	for _, dir := range []faultproxy.Direction{faultproxy.Up, faultproxy.Down} {
		t.Run(dir.String(), func(t *testing.T) {
			p := newProxy(t, upstream(t, echo))
			c := dial(t, p)
			roundTrip(t, c, "warm")
			p.Set(faultproxy.Faults{Stall: dir})
			if _, err := c.Write([]byte("held")); err != nil {
				t.Fatal(err)
			}
			// Held back before the upstream (Up) or on the way back (Down):
			// either way nothing more reached the client.
			wantUp := int64(4)
			if dir == faultproxy.Down {
				wantUp = 8
			}
			wait(t, p, "the stall to hold the bytes", func(s faultproxy.Stats) bool {
				return s.Held == 4 && s.Up == wantUp && s.Down == 4
			})
			p.Set(faultproxy.Faults{})
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
				t.Fatalf("read %q, %v after the stall", got, err)
			}
			wait(t, p, "nothing held", func(s faultproxy.Stats) bool { return s.Held == 0 })

			p.Set(faultproxy.Faults{Stall: dir})
			if _, err := c.Write([]byte("more")); err != nil {
				t.Fatal(err)
			}
			wait(t, p, "the stall to hold the bytes", func(s faultproxy.Stats) bool { return s.Held == 4 })
			p.Set(faultproxy.Faults{Reset: true})
			readReset(t, c)
			wait(t, p, "the reset to drop the held bytes", func(s faultproxy.Stats) bool { return s.Held == 0 && s.Active == 0 })
		})
	}
}

// TestLatency: each hop is delayed by at least the latency (a lower bound
// the proxy guarantees, not a timing assumption).
func TestLatency(t *testing.T) {
	const d = 30 * time.Millisecond
	p := newProxy(t, upstream(t, echo))
	c := dial(t, p)
	roundTrip(t, c, "warm")
	p.Set(faultproxy.Faults{Latency: d})
	began := time.Now()
	roundTrip(t, c, "slow")
	if took := time.Since(began); took < 2*d {
		t.Errorf("round trip took %s with %s each way", took, d)
	}
}

// cutServer writes size bytes on each connection once the client asks
// (so that the cut cannot come before the client's dial returned), then
// waits for the client to go, reporting how its write and wait ended.
func cutServer(t *testing.T, size int) (string, chan error) {
	writeErr := make(chan error, 1)
	addr := upstream(t, func(c net.Conn) {
		_, err := io.ReadFull(c, make([]byte, 2))
		if err == nil {
			_, err = c.Write(bytes.Repeat([]byte("x"), size))
		}
		if err == nil {
			_, err = io.Copy(io.Discard, c)
		}
		writeErr <- err
	})
	return addr, writeErr
}

func ask(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("go")); err != nil {
		t.Fatal(err)
	}
}

func TestCutAfter(t *testing.T) {
	addr, serverErr := cutServer(t, 100_000)
	p := newProxy(t, addr)
	p.Set(faultproxy.Faults{CutAfter: 1000})
	c := dial(t, p)
	ask(t, c)
	if b := readReset(t, c); len(b) > 1000 {
		t.Errorf("read %d bytes before the reset, want at most 1000", len(b))
	}
	// The server wrote all of it and then saw the client's end: the
	// proxy drained the rest.
	if err := <-serverErr; err != nil {
		t.Errorf("the upstream's connection ended with %v; want all written and a clean end", err)
	}
	wait(t, p, "the cut connection to end", func(s faultproxy.Stats) bool {
		return s.Active == 0 && s.Cut == 1 && s.Down == 1000 && s.DroppedDown == 99_000
	})
}

func TestTruncateAfter(t *testing.T) {
	addr, serverErr := cutServer(t, 100_000)
	p := newProxy(t, addr)
	p.Set(faultproxy.Faults{TruncateAfter: 1000})
	c := dial(t, p)
	ask(t, c)
	b, err := io.ReadAll(c)
	if err != nil || len(b) != 1000 {
		t.Fatalf("read %d bytes, then %v; want exactly 1000 and the end", len(b), err)
	}
	c.Close()
	if err := <-serverErr; err != nil {
		t.Errorf("the upstream's connection ended with %v; want all written and a clean end", err)
	}
	wait(t, p, "the truncated connection to end", func(s faultproxy.Stats) bool {
		return s.Active == 0 && s.Cut == 1 && s.Down == 1000 && s.DroppedDown == 99_000
	})
}

// TestCutCountsFromSet: a cut set on a live connection counts the bytes
// from then on; switching it off disarms it.
func TestCutCountsFromSet(t *testing.T) {
	p := newProxy(t, upstream(t, echo))
	c := dial(t, p)
	roundTrip(t, c, "0123456789")
	p.Set(faultproxy.Faults{TruncateAfter: 15})
	p.Set(faultproxy.Faults{})
	roundTrip(t, c, "0123456789abcdef") // disarmed: 16 bytes pass
	p.Set(faultproxy.Faults{TruncateAfter: 15})
	if _, err := c.Write([]byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "0123456789abcde" {
		t.Fatalf("read %q, %v; want the 15 bytes after the Set and the end", b, err)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newProxy(t, addr)
	refused(t, p)
	wait(t, p, "the refused connection", func(s faultproxy.Stats) bool { return s.Refused == 1 && s.Active == 0 })
}

// TestFront: the fronted listener accepts what the proxy forwards and
// names the proxy as its address; closing it closes the proxy.
func TestFront(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, ln, err := faultproxy.Front(real)
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != p.Addr() || p.Upstream() != real.Addr().String() {
		t.Fatalf("listener at %s, proxy at %s to %s, real listener %s", ln.Addr(), p.Addr(), p.Upstream(), real.Addr())
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		echo(c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "through the proxy")
	if s := p.Stats(); s.Accepted != 1 {
		t.Errorf("stats %+v; want the connection through the proxy", s)
	}
	ln.Close()
	readReset(t, c)
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("the proxy still accepts after its listener closed")
	}
}

// TestClose resets live connections, stalled ones included, and returns
// once every goroutine of the proxy is done.
func TestClose(t *testing.T) {
	p := newProxy(t, upstream(t, echo))
	a, b := dial(t, p), dial(t, p)
	roundTrip(t, a, "a")
	roundTrip(t, b, "b")
	p.Set(faultproxy.Faults{Stall: faultproxy.Both})
	if _, err := b.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	wait(t, p, "the held bytes", func(s faultproxy.Stats) bool { return s.Held == 4 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	readReset(t, a)
	readReset(t, b)
	if s := p.Stats(); s.Active != 0 || s.Held != 0 {
		t.Errorf("stats after Close %+v", s)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	p := newProxy(t, upstream(t, echo))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx, func(s faultproxy.Stats) bool { return s.Accepted > 0 }); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait returned %v, want context.Canceled", err)
	}
}

// TestFaultsWhileTrafficFlows switches every fault on and off while
// clients exchange data, for the race detector and for the proxy's own
// bookkeeping: in the end it holds nothing and Close returns.
func TestFaultsWhileTrafficFlows(t *testing.T) {
	p := newProxy(t, upstream(t, echo))
	stop := make(chan struct{})
	clients := make(chan struct{}, 4)
	for range cap(clients) {
		go func() {
			defer func() { clients <- struct{}{} }()
			buf := make([]byte, 512)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					continue
				}
				// Errors are expected here: the faults break connections,
				// and the deadline ends those a blackhole or a stall holds.
				_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
				for i := 0; i < 20; i++ {
					if _, err := c.Write(buf); err != nil {
						break
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						break
					}
				}
				c.Close()
			}
		}()
	}
	faults := []faultproxy.Faults{
		{Reset: true}, {Blackhole: faultproxy.Both}, {Blackhole: faultproxy.Down}, {Stall: faultproxy.Up},
		{Stall: faultproxy.Down}, {Latency: time.Millisecond}, {CutAfter: 700}, {TruncateAfter: 300}, {},
	}
	for i := range 5 * len(faults) {
		before := p.Stats().Accepted
		p.Set(faults[i%len(faults)])
		wait(t, p, "a connection under the fault", func(s faultproxy.Stats) bool { return s.Accepted > before })
	}
	p.Set(faultproxy.Faults{})
	close(stop)
	for range cap(clients) {
		<-clients
	}
	wait(t, p, "every connection to end", func(s faultproxy.Stats) bool { return s.Active == 0 && s.Held == 0 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
