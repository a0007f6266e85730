package botruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// ResumeState is what a process needs to resume a shard's session instead of identifying:
// Discord replays what was missed, and no session start is spent.
type ResumeState struct {
	Shard int `json:"shard"`
	// ShardCount is the count the session identified with; after resharding the state is
	// useless (it would resume into the old guild split) and is ignored.
	ShardCount int       `json:"shardCount"`
	SessionID  string    `json:"sessionID"`
	Sequence   int       `json:"sequence"`
	ResumeURL  string    `json:"resumeURL"`
	SavedAt    time.Time `json:"savedAt"`
}

// ResumeStore keeps resume state between processes. The heartbeat Lease will be one; the
// memory and file stores serve tests and running outside Kubernetes.
type ResumeStore interface {
	// Load returns the saved states by shard. A shard without state identifies.
	Load(ctx context.Context) (map[int]ResumeState, error)
	// Save stores the states of the shards given, keeping other shards' states (runtimes
	// with different shards may share a store).
	Save(ctx context.Context, states []ResumeState) error
}

// ResumeMaxAge is how old saved state may be and still be worth a resume attempt.
// Discord keeps a disconnected session for a short while; older state would only earn an
// invalid session. The operator judges restarts by the same age.
const ResumeMaxAge = shardkeeperv1.ResumeMaxAge

// ResumeClockSkew is how far in the future saved state may be dated (another node's clock
// wrote it). Anything later is refused: it would never age out.
const ResumeClockSkew = shardkeeperv1.ResumeClockSkew

// resumeRefusal says why saved state must not be resumed ("" when it may): too old, dated
// in the future, for another shard count, or pointing the token at a host the gateway
// configuration does not vouch for. Saved state is only as trustworthy as the store, so
// a refused URL refuses the whole state: the shard identifies at the configured gateway.
func resumeRefusal(st ResumeState, shardCount int, gatewayURL string, now time.Time) string {
	switch {
	case now.Sub(st.SavedAt) > ResumeMaxAge:
		return fmt.Sprintf("saved %s ago, more than %s", now.Sub(st.SavedAt).Round(time.Second), ResumeMaxAge)
	case st.SavedAt.Sub(now) > ResumeClockSkew:
		return fmt.Sprintf("dated %s in the future, more than the %s clock skew allowed", st.SavedAt.Sub(now).Round(time.Second), ResumeClockSkew)
	case st.ShardCount != shardCount:
		return fmt.Sprintf("saved for %d shards, not %d", st.ShardCount, shardCount)
	}
	if st.ResumeURL != "" {
		if err := checkResumeURL(gatewayURL, st.ResumeURL); err != nil {
			return "resume URL refused: " + err.Error()
		}
	}
	return ""
}

// checkResumeURL accepts a resume URL (saved state, or READY's resume_gateway_url) only
// where the configured gateway vouches for it, since op 6 carries the token there:
//   - wss, on the gateway's host or a host under the gateway host's parent domain, when
//     that parent is more than a public suffix (gateway.discord.gg vouches for
//     gateway-us-east1-b.discord.gg; gw.example.co.uk vouches for no other host), on the
//     gateway's port;
//   - ws only when the gateway itself is ws (tests, the emulator), and then on exactly the
//     gateway's host and port: nothing unencrypted goes anywhere else.
func checkResumeURL(gatewayURL, resumeURL string) error {
	gw, err := url.Parse(gatewayURL)
	if err != nil {
		return fmt.Errorf("gateway URL: %w", err)
	}
	u, err := url.Parse(resumeURL)
	if err != nil {
		return err
	}
	if u.User != nil {
		return fmt.Errorf("%q carries user information", u.Redacted())
	}
	host, gwHost := normalHost(u), normalHost(gw)
	switch {
	case u.Scheme == "ws" && gw.Scheme == "ws":
		if host != gwHost || port(u) != port(gw) {
			return fmt.Errorf("%q: plain ws is only accepted on the gateway's own host and port (%s)", resumeURL, gw.Host)
		}
		return nil
	case u.Scheme != "wss":
		return fmt.Errorf("%q: only wss is accepted (ws only when the gateway URL is ws)", resumeURL)
	case port(u) != port(gw):
		return fmt.Errorf("%q: not on the gateway's port %s", resumeURL, port(gw))
	case host == gwHost:
		return nil
	}
	if parent, ok := vouchedDomain(gwHost); ok && strings.HasSuffix(host, "."+parent) {
		return nil
	}
	return fmt.Errorf("%q: host %s is neither the gateway's host %s nor under its domain", resumeURL, host, gwHost)
}

// vouchedDomain is the parent domain of the gateway host, when it is a registrable domain
// or below one (a public suffix such as co.uk is anyone's).
func vouchedDomain(gwHost string) (string, bool) {
	if net.ParseIP(gwHost) != nil {
		return "", false
	}
	_, parent, found := strings.Cut(gwHost, ".")
	if !found {
		return "", false
	}
	registrable, err := publicsuffix.EffectiveTLDPlusOne(gwHost)
	if err != nil || len(parent) < len(registrable) {
		return "", false
	}
	return parent, true
}

func normalHost(u *url.URL) string { return strings.TrimSuffix(strings.ToLower(u.Hostname()), ".") }

// port is the URL's port, or its scheme's default.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "wss" {
		return "443"
	}
	return "80"
}

// MemoryResumeStore keeps resume state in memory; several runtimes in one process (tests)
// can share one.
type MemoryResumeStore struct {
	mu     sync.Mutex
	states map[int]ResumeState
}

// NewMemoryResumeStore returns an empty store.
func NewMemoryResumeStore() *MemoryResumeStore {
	return &MemoryResumeStore{states: map[int]ResumeState{}}
}

func (m *MemoryResumeStore) Load(context.Context) (map[int]ResumeState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int]ResumeState, len(m.states))
	for k, v := range m.states {
		out[k] = v
	}
	return out, nil
}

func (m *MemoryResumeStore) Save(_ context.Context, states []ResumeState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range states {
		m.states[s.Shard] = s
	}
	return nil
}

// FileResumeStore keeps resume state in a JSON file (mode 0600: a session ID is not a
// token, but it is nobody else's business either). Writes are atomic.
type FileResumeStore struct{ Path string }

func (f FileResumeStore) Load(context.Context) (map[int]ResumeState, error) {
	raw, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[int]ResumeState{}, nil
	}
	if err != nil {
		return nil, err
	}
	var list []ResumeState
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("resume state file %s: %w", f.Path, err)
	}
	out := make(map[int]ResumeState, len(list))
	for _, s := range list {
		out[s.Shard] = s
	}
	return out, nil
}

func (f FileResumeStore) Save(ctx context.Context, states []ResumeState) error {
	merged, err := f.Load(ctx)
	if err != nil {
		merged = map[int]ResumeState{} // an unreadable file is replaced, not kept
	}
	for _, s := range states {
		merged[s.Shard] = s
	}
	list := make([]ResumeState, 0, len(merged))
	for _, s := range merged {
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b ResumeState) int { return a.Shard - b.Shard })
	raw, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".resume-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}
