package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DiscordBotSpec is what the user asks for: a bot, its token, and how to shard it.
// +kubebuilder:validation:XValidation:rule="type(self.shards) != int || self.shardsPerPod <= self.shards",message="shardsPerPod must not be greater than shards"
// +kubebuilder:validation:XValidation:rule="!has(self.gatewayProxy) || !self.gatewayProxy.enabled || !has(self.health.mode) || self.health.mode == 'Lease'",message="gatewayProxy renews the heartbeat Lease for the bot: it needs health.mode Lease, not Probes"
// +kubebuilder:validation:XValidation:rule="!has(self.gatewayProxy) || !self.gatewayProxy.enabled || (has(self.image) && size(self.image) > 0)",message="gatewayProxy needs spec.image: the bot's own image, which connects through the proxy (the default bot image connects to Discord itself)"
// +kubebuilder:validation:XValidation:rule="!has(self.gatewayProxy) || !self.gatewayProxy.enabled || !has(self.podTemplate) || !has(self.podTemplate.env) || self.podTemplate.env.all(e, !(e.name in ['DISCORD_GATEWAY_URL', 'DISCORD_API_URL', 'DISCORD_TOKEN_FILE']))",message="with gatewayProxy enabled, env DISCORD_GATEWAY_URL, DISCORD_API_URL and DISCORD_TOKEN_FILE are set by the operator"
type DiscordBotSpec struct {
	// TokenSecretRef names the Secret (in the bot's namespace) holding the bot token.
	// The token is mounted into bot pods as a file; it never appears in env, status or events.
	TokenSecretRef SecretKeySelector `json:"tokenSecretRef"`

	// Image is the bot container image. When empty, the operator's --default-bot-image is used.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// ImagePullPolicy for the bot container.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Shards is the total number of gateway shards: a whole number >= 1, or "auto" for the
	// count Discord recommends (GET /gateway/bot), checked again periodically and whenever a
	// pod is told that sharding is required (close code 4011). A change of the count
	// reshards without downtime: the new shards start beside the old ones, and the old ones
	// stop once every new shard is ready.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int || self == 'auto'",message="shards must be a whole number (for example 4) or \"auto\""
	// +kubebuilder:validation:XValidation:rule="type(self) != int || (self >= 1 && self <= 100000)",message="shards must be between 1 and 100000"
	Shards intstr.IntOrString `json:"shards,omitempty"`

	// ShardsPerPod is how many consecutive shard IDs one pod runs.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	ShardsPerPod int32 `json:"shardsPerPod,omitempty"`

	// Intents are the gateway intents the bot identifies with, by Discord's names
	// (GUILDS, GUILD_MESSAGES, MESSAGE_CONTENT, ...).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Intents []Intent `json:"intents,omitempty"`

	// Gateway overrides where bots connect: a gateway proxy or a self-hosted test server.
	// +optional
	Gateway *GatewaySpec `json:"gateway,omitempty"`

	// GatewayProxy runs the gateway proxy (docs/gateway-proxy.md) beside the bot's own
	// image, for bots not built on botruntime (discord.py, discord.js, ...): the proxy holds
	// the Discord sessions, renews the heartbeat Lease and serves the bot's process a local
	// Discord-compatible gateway and REST API; the bot's process gets a placeholder token.
	// A change rolls the pods.
	// +optional
	GatewayProxy *GatewayProxySpec `json:"gatewayProxy,omitempty"`

	// Health tunes how bot pods prove they are alive.
	// +kubebuilder:default={}
	Health HealthSpec `json:"health,omitempty"`

	// SessionStartReserve is how many of Discord's daily session starts
	// (session_start_limit.remaining) the operator keeps in reserve. While no more than this
	// remain, it holds back every restart, new pod and reshard that would need a new session
	// (an identify), sets the SessionStartLimitLow condition, and carries on after Discord's
	// reset time. Restarts that resume a session do not count and are never held.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	SessionStartReserve int32 `json:"sessionStartReserve,omitempty"`

	// Suspend stops every bot pod while true. Nothing else is deleted; setting it back to
	// false starts the pods again.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// PodTemplate is the part of the bot pods the user may shape.
	// +optional
	PodTemplate BotPodTemplate `json:"podTemplate,omitempty"`
}

// ShardsAuto is the spec.shards value that follows Discord's recommended shard count.
const ShardsAuto = "auto"

// SecretKeySelector selects a key of a Secret in the bot's namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="tokenSecretRef.name must be a valid Secret name (lowercase letters, digits, '-' and '.')"
	Name string `json:"name"`

	// Key within the Secret whose value is the bot token.
	// +kubebuilder:default=token
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// GatewaySpec overrides Discord's gateway and REST endpoints.
type GatewaySpec struct {
	// URL of the gateway websocket, for example wss://gateway.discord.gg.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['ws', 'wss'] && url(self).getHostname() != ''",message="gateway.url must be a ws:// or wss:// URL with a host, for example wss://gateway.discord.gg"
	URL string `json:"url,omitempty"`

	// APIURL is the base of the REST API, for example https://discord.com/api/v10.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="gateway.apiURL must be an http:// or https:// URL with a host, for example https://discord.com/api/v10"
	APIURL string `json:"apiURL,omitempty"`

	// Compression is the transport compression bots ask the gateway for: zstd-stream (the
	// fewest bytes on the wire, about 3 MiB more memory per shard), zlib-stream (as many
	// bytes saved, little memory, a little more CPU per event) or none. Unset, the bot
	// image's own default applies (botruntime's: zstd-stream). A change rolls the pods.
	// +optional
	Compression GatewayCompression `json:"compression,omitempty"`
}

// GatewayCompression is a gateway transport compression, as the compress parameter of
// the gateway URL names it (none: no parameter).
// +kubebuilder:validation:Enum=zstd-stream;zlib-stream;none
type GatewayCompression string

const (
	GatewayCompressionZstdStream GatewayCompression = "zstd-stream"
	GatewayCompressionZlibStream GatewayCompression = "zlib-stream"
	GatewayCompressionNone       GatewayCompression = "none"
)

// GatewayProxySpec configures the gateway proxy sidecar.
type GatewayProxySpec struct {
	// Enabled runs the proxy as a native sidecar of every bot pod, and spec.image as the
	// bot container, connected to it: DISCORD_GATEWAY_URL=ws://127.0.0.1:7878,
	// DISCORD_API_URL=http://127.0.0.1:7878/api/v10 and DISCORD_TOKEN_FILE (a placeholder
	// token only this pod's proxy accepts). Ports 7878 and 8081 of the pod are the proxy's.
	Enabled bool `json:"enabled"`

	// Image of the proxy. When empty, the operator's --gateway-proxy-image is used.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// ReplayEvents is how many events each shard's replay buffer holds: what a restarted
	// or resuming bot process is given of what it missed.
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	ReplayEvents int32 `json:"replayEvents,omitempty"`

	// ReplayBytes bounds each shard's replay buffer in bytes (a quantity: 64Mi, or a
	// whole number of bytes), between 1Mi and 4Gi. Count it in the proxy's memory limit
	// once per shard of the pod.
	// +kubebuilder:default="64Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isInteger() && quantity(string(self)).compareTo(quantity('1Mi')) >= 0 && quantity(string(self)).compareTo(quantity('4Gi')) <= 0",message="gatewayProxy.replayBytes must be a whole number of bytes between 1Mi and 4Gi"
	ReplayBytes *resource.Quantity `json:"replayBytes,omitempty"`

	// ClientHeartbeatInterval is the heartbeat interval the proxy tells the bot's process
	// (Go duration, 100ms to 5m). Unset, the proxy's default applies (41.25s, Discord's).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('5m')",message="gatewayProxy.clientHeartbeatInterval must be between 100ms and 5m"
	ClientHeartbeatInterval *metav1.Duration `json:"clientHeartbeatInterval,omitempty"`

	// ClientStartupBound is how long the bot container may go without a client connected
	// (after the proxy starts, or after its client left) before its liveness probe fails
	// (Go duration, 10s to 30m). Unset, the proxy's default applies (2m). Raise it for a
	// bot that takes long to start.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('30m')",message="gatewayProxy.clientStartupBound must be between 10s and 30m"
	ClientStartupBound *metav1.Duration `json:"clientStartupBound,omitempty"`

	// ClientHeartbeatTolerance is how many heartbeat intervals the bot's process may miss
	// before its liveness probe fails and the kubelet restarts the bot container (only
	// it: the Discord sessions stay up).
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	ClientHeartbeatTolerance int32 `json:"clientHeartbeatTolerance,omitempty"`

	// Resources of the proxy container (spec.podTemplate.resources are the bot
	// container's).
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// ExposeRealToken also mounts the real bot token into the bot container, at
	// /var/run/secrets/shardkeeper/token (env SHARDKEEPER_TOKEN_FILE), for bots that must
	// call Discord around the proxy. RISK: the bot container then holds the token, so
	// any code in it (a compromised dependency) can copy it out and use it from
	// anywhere until it is reset; without it, the placeholder it holds works only through
	// this pod's proxy, while the pod lives. Leave it false unless the bot needs it.
	// +optional
	ExposeRealToken bool `json:"exposeRealToken,omitempty"`
}

// HealthMode says how the operator judges a bot pod's health.
// +kubebuilder:validation:Enum=Lease;Probes
type HealthMode string

const (
	// HealthModeLease: the bot renews a heartbeat Lease (botruntime does); the operator
	// restarts pods whose Lease goes stale, on top of the kubelet's probes.
	HealthModeLease HealthMode = "Lease"
	// HealthModeProbes: only the kubelet's probes; for bot images not built on botruntime.
	HealthModeProbes HealthMode = "Probes"
)

// HealthSpec tunes the heartbeat Lease each bot pod renews.
type HealthSpec struct {
	// Mode is Lease (default: stale heartbeat Leases get pods restarted) or Probes (the
	// kubelet's probes only, for bot images that do not renew a Lease).
	// +kubebuilder:default=Lease
	Mode HealthMode `json:"mode,omitempty"`

	// LeaseDurationSeconds is how long a pod's heartbeat Lease stays valid without renewal.
	// Pods renew every quarter of it; the operator restarts a pod whose Lease expires.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=300
	LeaseDurationSeconds int32 `json:"leaseDurationSeconds,omitempty"`
}

// BotPodTemplate is the curated part of a bot pod that users may set. Everything else
// (command, probes, security context, token mount) belongs to the operator.
type BotPodTemplate struct {
	// Metadata adds labels and annotations to bot pods.
	// +optional
	Metadata PodMetadata `json:"metadata,omitempty"`

	// Resources of the bot container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Env adds environment variables to the bot container. Names starting with
	// SHARDKEEPER_ are reserved for the operator.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('SHARDKEEPER_'))",message="env names starting with SHARDKEEPER_ are reserved for the operator"
	Env []corev1.EnvVar `json:"env,omitempty"`

	// NodeSelector constrains bot pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of bot pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity of bot pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// PriorityClassName of bot pods.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// ImagePullSecrets used to pull the bot image.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// PodMetadata is the labels and annotations added to bot pods.
type PodMetadata struct {
	// Labels added to bot pods. Keys under shardkeeper.dev/ are reserved.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('shardkeeper.dev/'))",message="label keys under shardkeeper.dev/ are reserved for the operator"
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations added to bot pods. Keys under shardkeeper.dev/ are reserved.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('shardkeeper.dev/'))",message="annotation keys under shardkeeper.dev/ are reserved for the operator"
	Annotations map[string]string `json:"annotations,omitempty"`
}

// BotPhase is a one-word summary of a bot's state.
// +kubebuilder:validation:Enum=Pending;Starting;Running;Updating;Degraded;Suspended;Failed
type BotPhase string

const (
	// PhasePending: the bot cannot start yet (for example its token Secret is missing).
	PhasePending BotPhase = "Pending"
	// PhaseStarting: pods are being created and not every shard is ready yet.
	PhaseStarting BotPhase = "Starting"
	// PhaseRunning: every shard is ready and every pod runs the current spec.
	PhaseRunning BotPhase = "Running"
	// PhaseUpdating: pods are being replaced to match a changed spec.
	PhaseUpdating BotPhase = "Updating"
	// PhaseDegraded: some shards are not ready and no rollout explains it.
	PhaseDegraded BotPhase = "Degraded"
	// PhaseSuspended: spec.suspend is true; no pods run.
	PhaseSuspended BotPhase = "Suspended"
	// PhaseFailed: the bot stopped for a reason restarts cannot fix (invalid token,
	// disallowed intents...); it starts again when its spec or token Secret changes.
	PhaseFailed BotPhase = "Failed"
)

// MaxReportedProblems bounds status.problems so the status stays small at any shard count.
const MaxReportedProblems = 10

// DiscordBotStatus is what the operator observed. It stays bounded in size whatever the
// shard count: healthy shards are counted, only problems are listed.
type DiscordBotStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is a one-word summary: Pending, Starting, Running, Updating, Degraded or Suspended.
	// +optional
	Phase BotPhase `json:"phase,omitempty"`

	// Shards is the total number of shards the bot should run.
	// +optional
	Shards int32 `json:"shards,omitempty"`

	// ReadyShards is the number of shards whose pod is ready.
	// +optional
	// +kubebuilder:default=0
	ReadyShards int32 `json:"readyShards"`

	// ShardsSummary is "ready/total", for kubectl get.
	// +optional
	ShardsSummary string `json:"shardsSummary,omitempty"`

	// Pods is the number of bot pods that exist.
	// +optional
	// +kubebuilder:default=0
	Pods int32 `json:"pods"`

	// ReadyPods is the number of bot pods that are ready.
	// +optional
	// +kubebuilder:default=0
	ReadyPods int32 `json:"readyPods"`

	// UpdatedPods is the number of bot pods that run the current spec.
	// +optional
	// +kubebuilder:default=0
	UpdatedPods int32 `json:"updatedPods"`

	// Restarts counts bot container restarts and pod replacements after failures, since the
	// bot was created. Replacements for a spec change are not restarts.
	// +optional
	// +kubebuilder:default=0
	Restarts int64 `json:"restarts"`

	// ClientsConnected is, with spec.gatewayProxy enabled, the number of shards of the
	// current layout whose bot process is connected to its pod's proxy (the bot container
	// is ready); unset without the proxy.
	// +optional
	ClientsConnected *int32 `json:"clientsConnected,omitempty"`

	// StaleShards is the number of shards whose pod's heartbeat Lease is stale.
	// +optional
	StaleShards int32 `json:"staleShards,omitempty"`

	// LastRestartReason is why the operator last restarted a pod (LeaseStale, ...).
	// +optional
	LastRestartReason string `json:"lastRestartReason,omitempty"`

	// MaxHeartbeatLatencyMillis is the highest gateway heartbeat round trip any shard
	// reported on its Lease.
	// +optional
	MaxHeartbeatLatencyMillis int64 `json:"maxHeartbeatLatencyMillis,omitempty"`

	// Image is the bot image pods run (spec.image or the operator's default).
	// +optional
	Image string `json:"image,omitempty"`

	// Revision is the hash of the current pod template; pods carry it as a label.
	// +optional
	Revision string `json:"revision,omitempty"`

	// Halted is set when a pod reported a reason restarts cannot fix (TokenInvalid,
	// IntentsDisallowed, ShardingRequired...). The bot's pods are stopped instead of
	// crash-looping, until the spec or the token Secret changes.
	// +optional
	Halted *BotHalt `json:"halted,omitempty"`

	// HaltedPods are shard groups halted for a reason that concerns them alone while the
	// rest of the bot runs: ShardingRequired (close 4011) is about the guilds of one shard,
	// and halting the whole bot for it would leave every other shard's guilds unserved too.
	// A halted group whose process exited for it (podStopped) is not started again until
	// the spec or the token Secret changes; halts of a layout being replaced last as long
	// as that layout.
	// +optional
	// +listType=map
	// +listMapKey=pod
	// +kubebuilder:validation:MaxItems=1000
	HaltedPods []BotHalt `json:"haltedPods,omitempty"`

	// Problems lists shard groups that are not healthy, at most MaxReportedProblems of them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Problems []ShardGroupProblem `json:"problems,omitempty"`

	// ProblemCount is how many shard groups have problems, including those not listed.
	// +optional
	ProblemCount int32 `json:"problemCount,omitempty"`

	// Gateway is what Discord's GET /gateway/bot answered when the operator last asked.
	// +optional
	Gateway *GatewayStatus `json:"gateway,omitempty"`

	// Resharding is set while a new shard layout starts beside the old one.
	// +optional
	Resharding *ReshardingStatus `json:"resharding,omitempty"`

	// Conditions: Ready, Progressing, Degraded, RemediationRestricted, Resharding and
	// SessionStartLimitLow.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// GatewayStatus is Discord's answer to GET /gateway/bot for the bot's token.
type GatewayStatus struct {
	// RecommendedShards is the shard count Discord recommends.
	RecommendedShards int32 `json:"recommendedShards"`
	// MaxConcurrency is how many identify buckets the bot has (shard_id % maxConcurrency);
	// each allows one identify every 5 seconds.
	MaxConcurrency int32 `json:"maxConcurrency"`
	// SessionStartLimit is the bot's budget of new sessions.
	SessionStartLimit SessionStartLimit `json:"sessionStartLimit"`
	// CheckedAt is when the operator asked.
	CheckedAt metav1.Time `json:"checkedAt"`
}

// SessionStartLimit is Discord's daily budget of session starts (identifies).
type SessionStartLimit struct {
	// Total session starts allowed per period.
	Total int32 `json:"total"`
	// Remaining session starts when the operator asked.
	Remaining int32 `json:"remaining"`
	// ResetAt is when Remaining goes back to Total.
	ResetAt metav1.Time `json:"resetAt"`
}

// ReshardingStatus follows a change of shard layout. The new pods run beside the old ones
// until every new shard is ready; then the old pods are deleted.
type ReshardingStatus struct {
	// FromShards and ToShards are the old and the new shard counts.
	FromShards int32 `json:"fromShards"`
	ToShards   int32 `json:"toShards"`
	// ReadyShards is how many shards of the new layout are ready.
	ReadyShards int32 `json:"readyShards"`
	// OldPods is how many pods of the old layout still run.
	OldPods int32 `json:"oldPods"`
	// Since is when the operator first saw the change.
	Since metav1.Time `json:"since"`
}

// BotHalt records why a bot was stopped and what it was stopped at.
type BotHalt struct {
	// Reason is the bot's own CamelCase reason, e.g. TokenInvalid.
	Reason string `json:"reason"`
	// Message says more, in words (what a pod reports is cut at 1 KiB).
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message"`
	// Pod reported it.
	Pod string `json:"pod"`
	// Generation is the spec generation the bot was halted at.
	Generation int64 `json:"generation"`
	// SecretResourceVersion is the token Secret's version the bot was halted at.
	// +optional
	SecretResourceVersion string `json:"secretResourceVersion,omitempty"`
	// Since is when the operator halted the bot.
	Since metav1.Time `json:"since"`
	// PodStopped (haltedPods only) says the pod's process exited because every shard of
	// it stopped for good: the operator deleted it and does not create it again. A pod
	// still running its other shards, or lost for another reason, runs.
	// +optional
	PodStopped bool `json:"podStopped,omitempty"`
}

// ShardGroupProblem describes one unhealthy pod and the shards it holds.
type ShardGroupProblem struct {
	// Pod is the pod name.
	Pod string `json:"pod"`
	// Shards is the shard ID range the pod holds, for example "4-7".
	Shards string `json:"shards"`
	// Reason is a CamelCase word, for example CrashLoopBackOff or NotReady.
	Reason string `json:"reason"`
	// Message says more, in words.
	// +optional
	Message string `json:"message,omitempty"`
}

// DiscordBot runs a Discord bot as sharded gateway sessions in pods the operator manages.
// The bot's token comes from a Secret; the operator runs one pod per group of shards,
// replaces pods whose heartbeat Lease goes stale (without restart storms), asks Discord for
// the recommended shard count and the session start budget, and reports in the status
// whether every shard is connected. `kubectl get discordbots` shows it at a glance.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dbot,categories=shardkeeper
// +kubebuilder:printcolumn:name="Shards",type=string,JSONPath=`.status.shardsSummary`,description="Ready shards / total shards"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Restarts",type=integer,JSONPath=`.status.restarts`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.pods`,priority=1
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.updatedPods`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.clientsConnected`,priority=1,description="Shards whose bot process is connected to its gateway proxy"
// +kubebuilder:printcolumn:name="Stale",type=integer,JSONPath=`.status.staleShards`,priority=1
// +kubebuilder:printcolumn:name="Latency-ms",type=integer,JSONPath=`.status.maxHeartbeatLatencyMillis`,priority=1,description="Highest heartbeat round trip of any shard"
// +kubebuilder:printcolumn:name="Last-Restart",type=string,JSONPath=`.status.lastRestartReason`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Recommended",type=integer,JSONPath=`.status.gateway.recommendedShards`,priority=1,description="Shard count Discord recommends"
// +kubebuilder:printcolumn:name="Session-Starts",type=integer,JSONPath=`.status.gateway.sessionStartLimit.remaining`,priority=1,description="Discord session starts remaining"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 50",message="DiscordBot names are at most 50 characters, so that pod names (<bot>-<index>) stay valid"
type DiscordBot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec DiscordBotSpec `json:"spec"`
	// +optional
	Status DiscordBotStatus `json:"status,omitempty"`
}

// DiscordBotList is a list of DiscordBots.
// +kubebuilder:object:root=true
type DiscordBotList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DiscordBot `json:"items"`
}
