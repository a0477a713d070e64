// Command coredns is CoreDNS (github.com/coredns/coredns/coredns.go) with only the
// plugins the test node's Corefile uses. Leaving out forward, grpc, etcd and the
// cloud back ends means this binary cannot send a query off the machine whatever
// its Corefile says, and it builds in a fraction of the full plugin set's time.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
