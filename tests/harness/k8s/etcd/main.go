// Command etcd is a thin wrapper around the upstream etcd server entrypoint,
// built from Go modules so integration tests need no prebuilt download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
