// Command pause is the local cluster's sandbox image: containerd runs it as every pod's
// first process, which only holds the pod's namespaces. It sleeps until SIGTERM or SIGINT,
// so that stopping a sandbox is quick, and it must never need anything from the image.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "Usage of pause: takes no arguments; holds a pod's namespaces until SIGTERM or SIGINT")
	}
	flag.Parse()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
