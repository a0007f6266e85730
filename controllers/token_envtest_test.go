package controllers

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// secretRequests records the operator's requests for Secrets, by the shape a reader of the
// API server's audit log would sort them in.
type secretRequests struct {
	mu sync.Mutex
	// values are reads of a Secret collection (list or watch) that carry the Secrets'
	// values; metadata are those that carry metadata only; byName are reads of one Secret.
	values, metadata, byName []string
}

// operatorSecretRequests sees every request of the suite's operator.
var operatorSecretRequests = &secretRequests{}

func (r *secretRequests) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		path := req.URL.Path
		if req.Method == http.MethodGet && (strings.HasSuffix(path, "/secrets") || strings.Contains(path, "/secrets/")) {
			seen := req.Method + " " + req.URL.RequestURI()
			r.mu.Lock()
			switch {
			case !strings.HasSuffix(path, "/secrets"):
				r.byName = append(r.byName, seen)
			case strings.Contains(req.Header.Get("Accept"), "as=PartialObjectMetadata"):
				r.metadata = append(r.metadata, seen)
			default:
				r.values = append(r.values, seen)
			}
			r.mu.Unlock()
		}
		return next.RoundTrip(req)
	})
}

func (r *secretRequests) snapshot() (values, metadata, byName []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.values...), append([]string(nil), r.metadata...), append([]string(nil), r.byName...)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// The operator lists and watches Secrets as metadata only: a token change still wakes the
// bot, and the only Secret values it ever receives are the ones it reads by name.
func TestSecretValuesAreReadOnlyByName(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	secret := &corev1.Secret{}
	secret.Namespace, secret.Name = ns, "named-token"
	secret.Data = map[string][]byte{"other": []byte("x")}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	bot := newBot(ns, "named", 1, 1)
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	// The key is missing: read by name, the Secret says so. The metadata watch then sees
	// the Secret change, and the bot starts.
	g.Eventually(func(g Gomega) string {
		ready := meta.FindStatusCondition(getBot(g, ns, "named").Status.Conditions, shardkeeperv1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		return ready.Message
	}, wait, tick).Should(ContainSubstring(`has no key "token"`))
	g.Expect(botPods(g, ns, "named")).To(BeEmpty())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.Data["token"] = []byte(testToken)
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "named")).To(HaveLen(1)) }, wait, tick).Should(Succeed())

	values, metadata, byName := operatorSecretRequests.snapshot()
	g.Expect(values).To(BeEmpty(), "the operator listed or watched Secrets with their values")
	g.Expect(metadata).NotTo(BeEmpty(), "the operator never watched Secret metadata: did the recorder see its requests?")
	g.Expect(byName).To(ContainElement(ContainSubstring("/namespaces/" + ns + "/secrets/named-token")))
}
