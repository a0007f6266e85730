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
