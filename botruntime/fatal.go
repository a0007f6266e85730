package botruntime

import (
	"fmt"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// FatalReason is why a shard stopped for good: reconnecting would fail the same way.
// The Reason strings are the condition reasons the operator shows.
type FatalReason struct {
	CloseCode int
	Reason    string // CamelCase, e.g. TokenInvalid
	Message   string
	ExitCode  int
}

// Exit codes of the bot process when no shard can run. 0 is a clean shutdown, 1 an
// unexpected error, 2 a bad configuration, 3 a pod replaced while it still ran; 10 and up
// are Discord's fatal close codes.
const (
	ExitOK                = 0
	ExitError             = 1
	ExitBadConfig         = 2
	ExitReplaced          = 3  // another pod of the same name took over the heartbeat Lease
	ExitTokenInvalid      = 10 // 4004
	ExitInvalidShard      = 11 // 4010
	ExitShardingRequired  = 12 // 4011
	ExitInvalidAPIVersion = 13 // 4012
	ExitIntentsInvalid    = 14 // 4013
	ExitIntentsDisallowed = 15 // 4014
)

var fatalCloseCodes = map[int]FatalReason{
	4004: {Reason: shardkeeperv1.ReasonTokenInvalid, Message: "Discord rejected the bot token (close 4004 authentication failed)", ExitCode: ExitTokenInvalid},
	4010: {Reason: shardkeeperv1.ReasonInvalidShard, Message: "Discord rejected the shard ID or count (close 4010 invalid shard)", ExitCode: ExitInvalidShard},
	4011: {Reason: shardkeeperv1.ReasonShardingRequired, Message: "the bot is in too many guilds for its shard count (close 4011 sharding required)", ExitCode: ExitShardingRequired},
	4012: {Reason: shardkeeperv1.ReasonInvalidAPIVersion, Message: "Discord rejected the gateway API version (close 4012)", ExitCode: ExitInvalidAPIVersion},
	4013: {Reason: shardkeeperv1.ReasonIntentsInvalid, Message: "Discord rejected the intents (close 4013 invalid intents)", ExitCode: ExitIntentsInvalid},
	4014: {Reason: shardkeeperv1.ReasonIntentsDisallowed, Message: "a privileged intent is not enabled for this application in the developer portal (close 4014 disallowed intents)", ExitCode: ExitIntentsDisallowed},
}

// fatalFor returns the fatal reason of a close code, if the code is fatal.
func fatalFor(code int) (FatalReason, bool) {
	r, ok := fatalCloseCodes[code]
	if ok {
		r.CloseCode = code
	}
	return r, ok
}

// NoShardCanRunError is what Run returns when every shard stopped for a fatal reason.
type NoShardCanRunError struct{ Reason FatalReason }

func (e *NoShardCanRunError) Error() string {
	return fmt.Sprintf("no shard can run: %s: %s", e.Reason.Reason, e.Reason.Message)
}

// ExitCode is the process exit code for this failure.
func (e *NoShardCanRunError) ExitCode() int { return e.Reason.ExitCode }

// ReplacedError is what Run returns when another pod of the same name took over this
// pod's heartbeat Lease: this pod was force-deleted and replaced while its process still
// ran (a partitioned node). Both would handle every event; the older one stops.
type ReplacedError struct {
	Lease  string
	OwnUID string
	ByUID  string // the pod that writes the Lease now
	How    string // what showed it
}

func (e *ReplacedError) Error() string {
	return fmt.Sprintf("another pod of the same name took over heartbeat Lease %s (written by pod UID %s; this process is pod UID %s): %s",
		e.Lease, e.ByUID, e.OwnUID, e.How)
}

// ExitCode is the process exit code for this stop.
func (e *ReplacedError) ExitCode() int { return ExitReplaced }
