package v1

import (
	"slices"
	"strings"
	"time"
)

// Environment variables the operator sets in every bot container. botruntime reads them;
// they are the contract between the two, so they live with the API.
const (
	EnvBotName              = "SHARDKEEPER_BOT_NAME"
	EnvNamespace            = "SHARDKEEPER_NAMESPACE"
	EnvPodName              = "SHARDKEEPER_POD_NAME"
	EnvPodUID               = "SHARDKEEPER_POD_UID"
	EnvShardGroup           = "SHARDKEEPER_SHARD_GROUP"
	EnvShardIDs             = "SHARDKEEPER_SHARD_IDS"
	EnvShardCount           = "SHARDKEEPER_SHARD_COUNT"
	EnvIntents              = "SHARDKEEPER_INTENTS"
	EnvGatewayURL           = "SHARDKEEPER_GATEWAY_URL"
	EnvAPIURL               = "SHARDKEEPER_API_URL"
	EnvTokenFile            = "SHARDKEEPER_TOKEN_FILE"
	EnvHealthPort           = "SHARDKEEPER_HEALTH_PORT"
	EnvLeaseName            = "SHARDKEEPER_LEASE_NAME"
	EnvLeaseDurationSeconds = "SHARDKEEPER_LEASE_DURATION_SECONDS"
)

// EnvGatewayCompression is the transport compression botruntime asks the gateway for:
// zstd-stream (the default when unset), zlib-stream or none. The operator sets it from
// spec.gateway.compression, and only then: unset, a bot image's own ENV applies.
const EnvGatewayCompression = "SHARDKEEPER_GATEWAY_COMPRESSION"

// Environment variables of the gateway proxy sidecar (cmd/gateway-proxy), beside the ones
// above; each has a flag of the same meaning outside Kubernetes.
const (
	// EnvProxyListen is where the bot container connects: host:port, loopback by default.
	EnvProxyListen = "SHARDKEEPER_PROXY_LISTEN"
	// EnvProxyClientTokenFile holds the placeholder token the bot container presents.
	EnvProxyClientTokenFile = "SHARDKEEPER_PROXY_CLIENT_TOKEN_FILE"
	// EnvProxyReplayEvents and EnvProxyReplayBytes bound each shard's replay buffer.
	EnvProxyReplayEvents = "SHARDKEEPER_PROXY_REPLAY_EVENTS"
	EnvProxyReplayBytes  = "SHARDKEEPER_PROXY_REPLAY_BYTES"
	// EnvProxyClientHeartbeatInterval is the interval the proxy's Hello tells the client.
	EnvProxyClientHeartbeatInterval = "SHARDKEEPER_PROXY_CLIENT_HEARTBEAT_INTERVAL"
	// EnvProxyClientTolerance is how many heartbeat intervals the client may miss before
	// its liveness probe fails.
	EnvProxyClientTolerance = "SHARDKEEPER_PROXY_CLIENT_TOLERANCE"
	// EnvProxyClientStartupBound is how long the client's liveness passes with no client
	// connected, after the proxy starts or a client leaves.
	EnvProxyClientStartupBound = "SHARDKEEPER_PROXY_CLIENT_STARTUP_BOUND"
)

// Annotations botruntime writes on its heartbeat Lease.
const (
	// AnnotationShards is the pod's per-shard state, JSON: a list of LeaseShardState.
	AnnotationShards = "shardkeeper.dev/shards"
	// AnnotationResume is the resume state (session ID, sequence, resume URL per shard),
	// JSON, so a replacement pod resumes instead of identifying. Never the token.
	AnnotationResume = "shardkeeper.dev/resume"
	// AnnotationPodUID is the UID of the pod that last wrote the Lease. A replacement pod
	// has the same name and so the same Lease; what its predecessor wrote says nothing
	// about it. (The Lease is owned by the DiscordBot, so it outlives the pod and the
	// replacement can resume from it.)
	AnnotationPodUID = "shardkeeper.dev/pod-uid"
	// AnnotationReplacedPodUIDs lists, newest first, the UIDs of pods that wrote the Lease
	// before its current writer took it over. A process of a listed pod (one force-deleted
	// and replaced, still running on a partitioned node) stops instead of writing.
	AnnotationReplacedPodUIDs = "shardkeeper.dev/replaced-pod-uids"
	// AnnotationCreatedPodUID is the UID of the pod the operator last created for the Lease.
	// Before it creates the next pod of that name, the operator lists it (and the Lease's
	// last writer) as replaced: a process that never wrote the Lease, partitioned from the
	// API server since it started, is fenced too, instead of taking the Lease from its
	// replacement when the partition heals.
	AnnotationCreatedPodUID = "shardkeeper.dev/created-pod-uid"
	// AnnotationRenewalHeld says why the pod does not renew its Lease (a shard that cannot
	// recover, a stuck dispatcher worker...); absent while it renews.
	AnnotationRenewalHeld = "shardkeeper.dev/renewal-held"
)

// LeaseResumeState is the part of one shard's resume state (AnnotationResume holds a list)
// the operator reads, to tell a restart that resumes from one that must identify.
// +kubebuilder:object:generate=false
type LeaseResumeState struct {
	Shard      int       `json:"shard"`
	ShardCount int       `json:"shardCount"`
	SessionID  string    `json:"sessionID"`
	SavedAt    time.Time `json:"savedAt"`
}

// ResumeMaxAge is how old saved resume state may be and still be worth a resume attempt:
// Discord keeps a disconnected session only a short while.
const ResumeMaxAge = 2 * time.Minute

// ResumeClockSkew is how far ahead of the reader's clock saved resume state may be dated
// (another node wrote it). NTP keeps nodes within milliseconds; 10 s still covers a node
// whose clock is drifting back into sync, and is small beside ResumeMaxAge: state dated
// ahead looks fresh for ResumeMaxAge+ResumeClockSkew at most, never forever.
const ResumeClockSkew = 10 * time.Second

// LeaseShardState is one shard's state as the bot reports it on its Lease.
type LeaseShardState struct {
	ID    int    `json:"id"`
	State string `json:"state"`
	// LatencyMillis is the last heartbeat round trip.
	LatencyMillis int64 `json:"latencyMs,omitempty"`
	// LastEvent is the time of the last dispatch, RFC 3339.
	LastEvent string `json:"lastEvent,omitempty"`
	Guilds    int    `json:"guilds"`
	// FatalReason and FatalMessage are set when the shard stopped for good.
	FatalReason  string `json:"fatalReason,omitempty"`
	FatalMessage string `json:"fatalMessage,omitempty"`
	// DroppedEvents counts this shard's events the pod dropped because the dispatcher
	// worker of their guild was full (since the process started).
	DroppedEvents int64 `json:"droppedEvents,omitempty"`
	// DroppedGuilds are the guilds that lost events last, most recent first (at most 5).
	DroppedGuilds []string `json:"droppedGuilds,omitempty"`
}

// Labels the operator puts on what it creates.
const (
	LabelBot        = "shardkeeper.dev/bot"
	LabelShardGroup = "shardkeeper.dev/shard-group"
	LabelRevision   = "shardkeeper.dev/revision"
	LabelTopology   = "shardkeeper.dev/topology"
	// LabelGeneration numbers shard layouts, so that a new layout's pods get new names and
	// run beside the old layout's until they are ready. Pods without it are generation 0.
	LabelGeneration = "shardkeeper.dev/generation"
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedByValue  = "shardkeeper"
)

// maxReplacedPodUIDs bounds AnnotationReplacedPodUIDs: more replaced pods of one name
// still running at once is not a failure anyone survives anyway.
const maxReplacedPodUIDs = 8

// ReplacedPodUIDs reads AnnotationReplacedPodUIDs.
func ReplacedPodUIDs(annotations map[string]string) []string {
	raw := annotations[AnnotationReplacedPodUIDs]
	if raw == "" {
		return nil
	}
	return strings.Split(raw, ",")
}

// AddReplacedPodUIDs lists uids, newest first, in AnnotationReplacedPodUIDs (which
// annotations must be able to hold), keeping the list free of repeats and bounded; empty
// UIDs are skipped. It reports whether the annotation changed.
func AddReplacedPodUIDs(annotations map[string]string, uids ...string) bool {
	before := annotations[AnnotationReplacedPodUIDs]
	list := ReplacedPodUIDs(annotations)
	for _, uid := range slices.Backward(uids) {
		if uid == "" {
			continue
		}
		list = slices.DeleteFunc(list, func(u string) bool { return u == uid })
		list = append([]string{uid}, list...)
	}
	list = list[:min(len(list), maxReplacedPodUIDs)]
	if len(list) == 0 {
		return false
	}
	annotations[AnnotationReplacedPodUIDs] = strings.Join(list, ",")
	return annotations[AnnotationReplacedPodUIDs] != before
}
