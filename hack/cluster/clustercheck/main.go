// Command clustercheck runs once in a pod of the local cluster (hack/cluster's smoke
// check) and tells, on stdout, whether the pod reaches the API server through the
// `kubernetes` Service with its service account, whether cluster DNS answers, and with
// --peer whether another pod answers through its Service.
// Exit status: 0 all work, 1 the API is unreachable, 2 DNS fails, 3 the peer fails.
//
// With --serve it is that other pod instead: an HTTP server that answers "ok".
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "Usage of clustercheck: takes no arguments; run in a pod, it checks the kubernetes Service and cluster DNS")
	}
	serve := flag.String("serve", "", "Serve HTTP on this address (e.g. :8080) and answer every request with ok.")
	peer := flag.String("peer", "", "After the API and DNS, GET this URL (a Service of a --serve pod).")
	flag.Parse()
	if *serve != "" {
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		fmt.Println("serving on", *serve)
		if err := http.ListenAndServe(*serve, nil); err != nil { //nolint:gosec // a test pod on the cluster's bridge
			fmt.Println(err)
			os.Exit(1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	version, err := apiVersion(ctx)
	if err != nil {
		fmt.Println("api: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("api: ok, server", version)
	addrs, err := net.DefaultResolver.LookupHost(ctx, "kubernetes.default.svc.cluster.local")
	if err != nil {
		fmt.Println("dns: FAIL:", err)
		os.Exit(2)
	}
	fmt.Println("dns: ok, kubernetes.default.svc.cluster.local is", strings.Join(addrs, ","))
	if *peer == "" {
		return
	}
	if err := get(ctx, *peer); err != nil {
		fmt.Println("service: FAIL:", err)
		os.Exit(3)
	}
	fmt.Println("service: ok, pod -> Service -> pod at", *peer)
}

func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// apiVersion asks the API server for /version the way client-go's in-cluster config
// does: the Service's address from the environment, the mounted token and CA.
func apiVersion(ctx context.Context) (string, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return "", fmt.Errorf("KUBERNETES_SERVICE_HOST/PORT not set")
	}
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return "", err
	}
	caPEM, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "", fmt.Errorf("no certificate in %s/ca.crt", serviceAccountDir)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	url := "https://" + net.JoinHostPort(host, port) + "/version"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s at %s", v.GitVersion, url), nil
}
