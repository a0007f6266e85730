package imagebuild

// Image is one container image: a Go command, and where its binary sits in the image.
type Image struct {
	// Name names the tarball (<Name>.tar) and the repository under the prefix.
	Name string
	// Package is the Go command to build, relative to the module root.
	Package string
	// Entrypoint is the absolute path of the binary in the image.
	Entrypoint string
	// Args become the image's Cmd: arguments after the entrypoint that a pod may override.
	Args []string
}

// The names every install path uses: <DefaultRepositoryPrefix>/<Image.Name>:<tag>, where a
// release's tag is the chart's appVersion and a local build's is DefaultTag. The Makefile,
// config/ (kustomize) and the chart's values name the same images.
const (
	DefaultRepositoryPrefix = "ghcr.io/shardkeeper"
	DefaultTag              = "dev"
)

// Images are the images `make images` builds. Another image is one more entry.
var Images = []Image{
	{Name: "operator", Package: "./cmd/operator", Entrypoint: "/operator"},
	{Name: "bot", Package: "./cmd/bot", Entrypoint: "/bot"},
	// The gateway proxy the operator runs beside bots not built on botruntime.
	{Name: "gateway-proxy", Package: "./cmd/gateway-proxy", Entrypoint: "/gateway-proxy"},
	// The fake Discord as a server, for bots in a local cluster with no Discord account.
	{Name: "discord-emulator", Package: "./cmd/discord-emulator", Entrypoint: "/discord-emulator"},
	// The local cluster's sandbox image (hack/cluster): no registry serves one here.
	{Name: "pause", Package: "./hack/cluster/pause", Entrypoint: "/pause"},
	// A one-shot pod that checks in-cluster API access and DNS (hack/cluster's smoke check).
	{Name: "clustercheck", Package: "./hack/cluster/clustercheck", Entrypoint: "/clustercheck"},
}
