//go:build !linux

package wssproxy

import (
	"errors"
	"net"
)

// pollFD is the socket under one side of a connection, for the poller:
// only Linux has one, so elsewhere copiers block in their reads.
type pollFD struct{}

func newPollFD(net.Conn) *pollFD { return nil }

type poller struct{}

var thePoller poller

func (*poller) park(*copier) error { return errors.New("wssproxy: no poller on this platform") }
func (*poller) claim(*copier) bool { return false }
