package botruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

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
