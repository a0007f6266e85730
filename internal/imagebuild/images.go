package imagebuild

// Image is one container image: a Go command and where its binary sits in the image, or
// an interpreter from Debian's packages with an application directory on top.
type Image struct {
	// Name names the tarball (<Name>.tar) and the repository under the prefix.
	Name string
	// Package is the Go command to build, relative to the module root. Empty for an
	// image of Debian packages.
	Package string
	// Entrypoint is the absolute path of the binary (or the interpreter) in the image.
	Entrypoint string
	// Args become the image's Cmd: arguments after the entrypoint that a pod may override.
	Args []string
	// Debian are packages installed, with everything they depend on as apt resolves it on
	// an empty system, into one layer (debian.go).
	Debian []string
	// App is a directory of the module copied to AppDir, the image's working directory;
	// one with a package-lock.json gets its npm dependencies installed (app.go).
	App string
	// Env are variables the image sets besides PATH and SSL_CERT_FILE.
	Env []string
}

// The names every install path uses: <DefaultRepositoryPrefix>/<Image.Name>:<tag>, where a
// release's tag is the chart's appVersion and a local build's is DefaultTag. The Makefile,
// config/ (kustomize) and the chart's values name the same images.
const (
	DefaultRepositoryPrefix = "ghcr.io/shardkeeper"
	DefaultTag              = "dev"
)

// The Debian packages of the interpreted runtimes: discord.py as Debian ships it, and
// Node, whose bots bring their libraries in their own lock file.
var (
	pythonPackages = []string{"python3", "python3-discord", "python3-aiohttp"}
	nodePackages   = []string{"nodejs"}
	// Python writes no bytecode next to read-only sources and does not buffer its log.
	pythonEnv = []string{"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}
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
	// Runtimes for bots in other languages, run behind the gateway proxy: a user's image
	// starts FROM one and adds its code to /app (docs/gateway-proxy.md).
	{Name: "python-runtime", Entrypoint: "/usr/bin/python3", Debian: pythonPackages, Env: pythonEnv},
	{Name: "node-runtime", Entrypoint: "/usr/bin/node", Debian: nodePackages},
	// The example bots of examples/ on those runtimes.
	{Name: "python-bot", Entrypoint: "/usr/bin/python3", Args: []string{AppDir + "/bot.py"}, Debian: pythonPackages, App: "examples/python-bot", Env: pythonEnv},
	{Name: "node-bot", Entrypoint: "/usr/bin/node", Args: []string{AppDir + "/bot.js"}, Debian: nodePackages, App: "examples/node-bot"},
}

// GoImages are the images of Images built from Go commands alone.
func GoImages() []Image {
	var out []Image
	for _, img := range Images {
		if img.Package != "" {
			out = append(out, img)
		}
	}
	return out
}
