// Package testenv starts a real kube-apiserver and etcd (envtest) with Shardkeeper's CRDs
// installed, and applies manifests to it. The binaries come from hack/envtest-assets.sh;
// `make test` builds them.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// K8sVersion is the control plane version hack/envtest-assets.sh builds.
const K8sVersion = "v1.37.2"

// Env is a running control plane.
type Env struct {
	env    *envtest.Environment
	Config *rest.Config
	Scheme *k8sruntime.Scheme
}

// RepoRoot is the repository's top directory, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// assetsDir is KUBEBUILDER_ASSETS, or the cache hack/envtest-assets.sh fills.
func assetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cache := os.Getenv("SHARDKEEPER_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(base, "shardkeeper")
	}
	dir := filepath.Join(cache, "k8s-"+K8sVersion)
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no envtest binaries in %s: run `make test` (or hack/envtest-assets.sh) to build them", dir)
	}
	return dir, nil
}

// Start starts the control plane and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	return start([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")})
}

// StartEmpty starts the control plane with no CRDs, for tests that install them the way a
// user would (kustomize, helm).
func StartEmpty() (*Env, error) {
	return start(nil)
}

func start(crdPaths []string) (*Env, error) {
	dir, err := assetsDir()
	if err != nil {
		return nil, err
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := shardkeeperv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     crdPaths,
		ErrorIfCRDPathMissing: len(crdPaths) > 0,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", dir, err)
	}
	return &Env{env: env, Config: cfg, Scheme: scheme}, nil
}

// AdminKubeconfig returns a kubeconfig for a cluster-admin user, for kubectl.
func (e *Env) AdminKubeconfig() ([]byte, error) {
	admin, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("creating the admin user: %w", err)
	}
	return admin.KubeConfig()
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }
