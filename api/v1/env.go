package v1

// Environment variables the operator sets in every bot container. botruntime reads them;
// they are the contract between the two, so they live with the API.
const (
	EnvBotName              = "SHARDKEEPER_BOT_NAME"
	EnvNamespace            = "SHARDKEEPER_NAMESPACE"
	EnvPodName              = "SHARDKEEPER_POD_NAME"
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

// Labels the operator puts on what it creates.
const (
	LabelBot        = "shardkeeper.dev/bot"
	LabelShardGroup = "shardkeeper.dev/shard-group"
	LabelRevision   = "shardkeeper.dev/revision"
	LabelTopology   = "shardkeeper.dev/topology"
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedByValue  = "shardkeeper"
)

// Reasons a bot pod stops for good, written by botruntime to the container's termination
// message as "<Reason>: <message>" and shown by the operator in status.
const (
	ReasonTokenInvalid      = "TokenInvalid"
	ReasonInvalidShard      = "InvalidShard"
	ReasonShardingRequired  = "ShardingRequired"
	ReasonInvalidAPIVersion = "InvalidAPIVersion"
	ReasonIntentsInvalid    = "IntentsInvalid"
	ReasonIntentsDisallowed = "IntentsDisallowed"
	ReasonBadConfiguration  = "BadConfiguration"
)

// IsFatalBotReason tells whether a reason is one of the above.
func IsFatalBotReason(reason string) bool {
	switch reason {
	case ReasonTokenInvalid, ReasonInvalidShard, ReasonShardingRequired, ReasonInvalidAPIVersion,
		ReasonIntentsInvalid, ReasonIntentsDisallowed, ReasonBadConfiguration:
		return true
	}
	return false
}
