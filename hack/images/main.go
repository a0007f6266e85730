// Command images builds Shardkeeper's container images without Docker, as docker-archive
// tarballs for a local cluster to import:
//
//	go run ./hack/images                  # bin/images/operator.tar, bin/images/bot.tar
//	ctr -n k8s.io images import bin/images/operator.tar   # or: docker load -i ...
//
// SOURCE_DATE_EPOCH, when set, is the images' timestamp; otherwise it is 1970-01-01.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
)

func main() {
	o, err := parseOptions(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, err := imagebuild.Build(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, r := range results {
		fmt.Printf("%s  %s  %s  %.1f MB\n", r.Path, r.Ref, r.Digest, float64(r.Size)/1e6)
	}
}

func parseOptions(args []string, getenv func(string) string, usageOut io.Writer) (imagebuild.Options, error) {
	var (
		o    imagebuild.Options
		only string
	)
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&o.RepositoryPrefix, "repository-prefix", imagebuild.DefaultRepositoryPrefix, "Images are named <prefix>/<image>:<tag>.")
	fs.StringVar(&o.Tag, "tag", imagebuild.DefaultTag, "Tag of every image.")
	fs.StringVar(&o.Version, "version", "dev", "Version stamped into the binaries (main.version) and the version label.")
	fs.StringVar(&o.GOARCH, "arch", runtime.GOARCH, "GOARCH to build for; the OS is always linux.")
	fs.StringVar(&o.OutDir, "out", "bin/images", "Directory that receives <image>.tar.")
	fs.StringVar(&only, "only", "", "Comma-separated images to build (default all: "+imageNames()+").")
	fs.StringVar(&o.CABundle, "ca-bundle", imagebuild.CABundlePath, "Host CA bundle copied into the images.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.Only = append(o.Only, n)
		}
	}
	if epoch := getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		secs, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil || secs < 0 {
			return o, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a count of seconds since 1970", epoch)
		}
		o.Created = time.Unix(secs, 0)
	}
	return o, nil
}

func imageNames() string {
	names := make([]string, len(imagebuild.Images))
	for i, img := range imagebuild.Images {
		names[i] = img.Name
	}
	return strings.Join(names, ", ")
}
