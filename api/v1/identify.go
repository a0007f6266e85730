package v1

import "fmt"

// Identify buckets shared by a bot's pods. Discord lets one shard per bucket
// (shard_id % max_concurrency) identify every 5 seconds; each bucket is a Lease that the
// operator creates and botruntime takes for one identify at a time.
const (
	// EnvMaxConcurrency is Discord's max_concurrency as the operator learned it.
	EnvMaxConcurrency = "SHARDKEEPER_MAX_CONCURRENCY"
	// AnnotationIdentifiedShard is the shard that took the bucket last, so the next shard
	// of the bucket in shard ID order can go first.
	AnnotationIdentifiedShard = "shardkeeper.dev/identified-shard"
	// LabelIdentifyBucket marks a bucket Lease with its bucket number.
	LabelIdentifyBucket = "shardkeeper.dev/identify-bucket"
)

// IdentifyBucketLeaseName is the Lease of one identify bucket of a bot, "<bot>-identify3".
// No pod's heartbeat Lease can have that name: those end in "-<digits>" or "-g<digits>".
func IdentifyBucketLeaseName(botName string, bucket int) string {
	return fmt.Sprintf("%s-identify%d", botName, bucket)
}
