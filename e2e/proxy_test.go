//go:build e2e

package e2e

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyMode is what a raft-link proxy does with the bytes it receives.
type proxyMode int32

const (
	modePass      proxyMode = iota // forward both ways
	modeDrop                       // close every connection and refuse new ones (accept, then close)
	modeDelay                      // forward, each chunk held for the configured latency
	modeBlackhole                  // accept and read, never forward (the peer sees silence, not an error)
)

func (m proxyMode) String() string {
	return [...]string{"pass", "drop", "delay", "blackhole"}[m]
}

// linkProxy is a userspace TCP proxy in front of one node's raft listener.
// The node advertises the proxy's address, so every raft connection *to*
// that node goes through it (see README: on loopback the proxy cannot tell
// senders apart, so it controls inbound traffic of its node only).
type linkProxy struct {
	ln     net.Listener
	target string
	mode   atomic.Int32
	delay  atomic.Int64 // ns, for modeDelay

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newLinkProxy(t testing.TB, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

func (p *linkProxy) Addr() string { return p.ln.Addr().String() }

// Set switches the mode; entering drop closes every open connection.
func (p *linkProxy) Set(m proxyMode, delay time.Duration) {
	p.delay.Store(int64(delay))
	p.mode.Store(int32(m))
	if m == modeDrop {
		p.closeConns()
	}
}

func (p *linkProxy) Mode() proxyMode { return proxyMode(p.mode.Load()) }

func (p *linkProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.closeConns()
	p.wg.Wait()
}

func (p *linkProxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *linkProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *linkProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *linkProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch p.Mode() {
		case modeDrop:
			in.Close()
			continue
		case modeBlackhole:
			if !p.track(in) {
				in.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				io.Copy(io.Discard, in)
				p.untrack(in)
			}()
			continue
		}
		out, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			in.Close() // target down: the dialer sees the connection close
			continue
		}
		if !p.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies src to dst chunk by chunk, applying the mode current at each
// chunk: blackhole discards, delay holds the chunk, drop ends the link.
func (p *linkProxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	defer p.untrack(src, dst)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			switch p.Mode() {
			case modeDrop:
				return
			case modeBlackhole:
				continue
			case modeDelay:
				time.Sleep(time.Duration(p.delay.Load())) // the injected latency itself
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLinkProxyModes checks the proxy on its own against an echo server.
func TestLinkProxyModes(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := newLinkProxy(t, echo.Addr().String())
	roundTrip := func(c net.Conn, timeout time.Duration) (time.Duration, error) {
		t0 := time.Now()
		c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			return 0, err
		}
		b := make([]byte, 4)
		_, err := io.ReadFull(c, b)
		return time.Since(t0), err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	if _, err := roundTrip(c, time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	p.Set(modeDelay, 100*time.Millisecond)
	if d, err := roundTrip(c, 2*time.Second); err != nil || d < 200*time.Millisecond {
		t.Fatalf("delay: %v after %v, want >= 200ms (two chunks)", err, d)
	}
	p.Set(modeBlackhole, 0)
	if _, err := roundTrip(dial(), 300*time.Millisecond); err == nil {
		t.Fatal("blackhole: got an answer")
	}
	p.Set(modeDrop, 0)
	if _, err := roundTrip(c, time.Second); err == nil {
		t.Fatal("drop: old connection still answers")
	}
	if _, err := roundTrip(dial(), time.Second); err == nil {
		t.Fatal("drop: new connection answers")
	}
	p.Set(modePass, 0)
	if _, err := roundTrip(dial(), time.Second); err != nil {
		t.Fatalf("pass again: %v", err)
	}
}
