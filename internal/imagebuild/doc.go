// Package imagebuild builds Shardkeeper's container images without Docker: it compiles
// each image's Go command with the Dockerfile's flags and writes a docker-archive tarball
// that `docker load` and `ctr images import` read. The runtimes for bots in Python and
// Node (and the example bots on them) are made of Debian's packages instead, downloaded
// by apt into a cache and unpacked without running their maintainer scripts (debian.go).
//
// It never talks to a registry: the distroless-like base layer (a nonroot user, /tmp and
// the host's CA bundle) is made here from scratch. Nothing in an image may depend on when
// or where it was built: the same sources and options must give the same image digest.
package imagebuild
