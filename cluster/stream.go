package cluster

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStream is raft's TCP stream layer, built here so that tests can wrap
// it (Config.WrapStream) to cut a node off at the transport.
type tcpStream struct {
	net.Listener
	advertise net.Addr
}

func (s *tcpStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}

func (s *tcpStream) Addr() net.Addr { return s.advertise }

func newTransport(cfg Config, advertise *net.TCPAddr) (*raft.NetworkTransport, error) {
	if advertise.IP == nil || advertise.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %s is not one peers can dial", advertise)
	}
	ln, err := net.Listen("tcp", cfg.RaftBind)
	if err != nil {
		return nil, err
	}
	var stream raft.StreamLayer = &tcpStream{Listener: ln, advertise: advertise}
	if cfg.WrapStream != nil {
		stream = cfg.WrapStream(stream)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 4, Timeout: 10 * time.Second, Logger: cfg.Logger.Named("transport"),
	}), nil
}
