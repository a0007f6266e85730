package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// certSpec is one certificate signed by the cluster's CA. Existing files are kept, so
// that up reuses a running cluster's identities.
type certSpec struct {
	name   string // pki/<name>.crt and pki/<name>.key
	cn     string
	orgs   []string
	server bool
	dns    []string
	ips    []string
}

// clientCerts are the identities that talk to the API server; each gets a kubeconfig.
var clientCerts = []certSpec{
	{name: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}},
	{name: "kube-controller-manager", cn: "system:kube-controller-manager"},
	{name: "kube-scheduler", cn: "system:kube-scheduler"},
	{name: "kubelet", cn: "system:node:" + nodeName, orgs: []string{"system:nodes"}},
	{name: "kube-proxy", cn: "system:kube-proxy"},
	{name: "coredns", cn: "shardkeeper:coredns"},
}

var serverCerts = []certSpec{
	{
		name: "kube-apiserver", cn: "kube-apiserver", server: true,
		dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		ips: []string{nodeIP, kubernetesServiceIP, "127.0.0.1"},
	},
	{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
	{name: "kubelet-serving", cn: nodeName, server: true, dns: []string{nodeName}, ips: []string{nodeIP}},
}

func (c *cluster) pki(name string) string { return c.path("pki", name) }

// ensurePKI makes the CA, every certificate, the service account key and a kubeconfig
// per client, keeping what exists.
func (c *cluster) ensurePKI() error {
	if err := os.MkdirAll(c.path("pki"), 0o700); err != nil {
		return err
	}
	caCert, caKey, err := c.ensureCA()
	if err != nil {
		return err
	}
	for _, spec := range append(append([]certSpec{}, serverCerts...), clientCerts...) {
		if err := c.ensureCert(spec, caCert, caKey); err != nil {
			return fmt.Errorf("certificate %s: %w", spec.name, err)
		}
	}
	if _, err := os.Stat(c.pki("sa.key")); errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return err
		}
		if err := writePEM(c.pki("sa.pub"), "PUBLIC KEY", pub, 0o644); err != nil {
			return err
		}
		if err := writeKey(c.pki("sa.key"), key); err != nil {
			return err
		}
	}
	for _, spec := range clientCerts {
		path := c.path("kubeconfigs", spec.name+".kubeconfig")
		if spec.name == "admin" {
			path = c.kubeconfig()
		}
		if err := c.writeKubeconfig(path, spec.name); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) ensureCA() (*x509.Certificate, crypto.Signer, error) {
	if _, err := os.Stat(c.pki("ca.key")); errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "shardkeeper-local-cluster-ca"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, nil, err
		}
		if err := writePEM(c.pki("ca.crt"), "CERTIFICATE", der, 0o644); err != nil {
			return nil, nil, err
		}
		if err := writeKey(c.pki("ca.key"), key); err != nil {
			return nil, nil, err
		}
	}
	return loadPair(c.pki("ca"))
}

func (c *cluster) ensureCert(spec certSpec, ca *x509.Certificate, caKey crypto.Signer) error {
	if _, err := os.Stat(c.pki(spec.name + ".key")); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     spec.dns,
	}
	if spec.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	for _, ip := range spec.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	if err := writePEM(c.pki(spec.name+".crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeKey(c.pki(spec.name+".key"), key)
}

func (c *cluster) writeKubeconfig(path, identity string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["shardkeeper-local"] = &clientcmdapi.Cluster{
		Server:               apiserverURL,
		CertificateAuthority: c.pki("ca.crt"),
	}
	cfg.AuthInfos[identity] = &clientcmdapi.AuthInfo{
		ClientCertificate: c.pki(identity + ".crt"),
		ClientKey:         c.pki(identity + ".key"),
	}
	cfg.Contexts["shardkeeper-local"] = &clientcmdapi.Context{Cluster: "shardkeeper-local", AuthInfo: identity}
	cfg.CurrentContext = "shardkeeper-local"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Embedded, so that the admin kubeconfig can be copied elsewhere.
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func writePEM(path, blockType string, der []byte, perm os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), perm)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func loadPair(base string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(base + ".crt")
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(base + ".key")
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s.crt or .key holds no PEM block", base)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s.key is no signing key", base)
	}
	return cert, signer, nil
}
