package v1

import "strings"

// Every reason a user can see, in a condition, an event, status.halted or status.problems,
// is named here: a CamelCase word to search for, valid as a metav1.Condition reason
// (reasons_test.go), since most of them end up in a condition sooner or later. The one
// exception is the kubelet's own reasons (CrashLoopBackOff, ImagePullBackOff...), which
// status.problems quotes as the kubelet says them.

// Condition types and their reasons.
const (
	ConditionReady       = "Ready"
	ConditionProgressing = "Progressing"
	ConditionDegraded    = "Degraded"

	ReasonAllShardsReady     = "AllShardsReady"
	ReasonOldLayoutServing   = "OldLayoutServing"
	ReasonShardsNotReady     = "ShardsNotReady"
	ReasonTokenSecretMissing = "TokenSecretMissing"
	ReasonSuspended          = "Suspended"
	ReasonCreatingPods       = "CreatingPods"
	ReasonRollingUpdate      = "RollingUpdate"
	ReasonReshardingPods     = "RecreatingShardGroups"
	ReasonRolloutComplete    = "RolloutComplete"
	ReasonPodsStarting       = "PodsStarting"
	ReasonPodsFailing        = "PodsFailing"
	ReasonAsExpected         = "AsExpected"
	// ReasonInvalidSpec: the spec passed the installed CRD's rules but not the operator's
	// (a CRD older than the operator). Ready says why; nothing else changes.
	ReasonInvalidSpec = "InvalidSpec"

	// ConditionRemediationRestricted is True while the operator holds back restarts because
	// too many pods look unhealthy at once (an API server or Discord outage).
	ConditionRemediationRestricted = "RemediationRestricted"
	ReasonTooManyUnhealthy         = "TooManyUnhealthy"
	ReasonRestartsAllowed          = "RestartsAllowed"
	ReasonLeaseStale               = "LeaseStale"
	ReasonLeaseNeverWritten        = "LeaseNeverWritten"
	ReasonContainerRestarting      = "ContainerRestarting"

	// ConditionResharding is True while a new shard layout runs beside the old one.
	ConditionResharding     = "Resharding"
	ReasonStartingNewShards = "StartingNewShards"
	ReasonStoppingOldShards = "StoppingOldShards"
	ReasonLayoutSettled     = "LayoutSettled"

	// ConditionSessionStartLimitLow is True while Discord's remaining session starts are at
	// or below spec.sessionStartReserve and restarts that would identify are held.
	ConditionSessionStartLimitLow = "SessionStartLimitLow"
	ReasonSessionStartsLow        = "SessionStartsLow"
	ReasonSessionStartsAvailable  = "SessionStartsAvailable"

	// Gateway information (GET /gateway/bot).
	ReasonGatewayInfoUnavailable = "GatewayInfoUnavailable"
	ReasonAskingDiscord          = "AskingDiscord"
	// ReasonGatewayAnswerRejected: GET /gateway/bot answered numbers out of any plausible
	// range; the operator acts on none of them.
	ReasonGatewayAnswerRejected = "GatewayAnswerRejected"

	// ReasonUntrustedEndpoint: spec.gateway names a host the operator does not send bot
	// tokens to (its --trusted-hosts and --plain-http-hosts); no pod is created for it and
	// Discord is not asked.
	ReasonUntrustedEndpoint = "UntrustedEndpoint"
)

// Reasons of the operator's pod actions: their events, and the reason label of the
// shardkeeper_pod_actions_total metric. Restarts of unhealthy pods go by the condition
// reasons above (LeaseStale, LeaseNeverWritten, ContainerRestarting).
const (
	ReasonPodCreated = "PodCreated"
	// ReasonShardGroupsChanged: a pod of an old shard layout goes, every shard of the new
	// layout being ready.
	ReasonShardGroupsChanged = "ShardGroupsChanged"
	// ReasonPodFailed: the pod's phase is Failed (or Succeeded): restartPolicy Always will
	// not bring it back, so it is recreated. It names the pod's problem in status.problems too.
	ReasonPodFailed = "PodFailed"
	// ReasonHalted: the bot's pods go because it is halted (status.halted says why).
	ReasonHalted = "Halted"
	// ReasonOrphanPodDeleted: the pod belongs to no shard group of the layout.
	ReasonOrphanPodDeleted = "OrphanPodDeleted"
	// ReasonRestartBackoff: an unhealthy pod is not restarted yet: it used its restart
	// budget, and the next restart waits.
	ReasonRestartBackoff = "RestartBackoff"
)

// Reasons in status.problems of a pod that is not ready, beside ReasonPodFailed, a bot's
// fatal reason and the kubelet's own.
const (
	ReasonUnschedulable = "Unschedulable"
	ReasonNotReady      = "NotReady"
)

// Events about the objects the operator makes for a bot, and about its passes.
const (
	ReasonCreatedServiceAccount = "CreatedServiceAccount"
	ReasonUpdatedServiceAccount = "UpdatedServiceAccount"
	ReasonCreatedRole           = "CreatedRole"
	ReasonUpdatedRole           = "UpdatedRole"
	ReasonCreatedRoleBinding    = "CreatedRoleBinding"
	ReasonUpdatedRoleBinding    = "UpdatedRoleBinding"
	ReasonCreatedLease          = "CreatedLease"
	// ReasonCreatedSecret: the Secret of the gateway proxy's placeholder tokens.
	ReasonCreatedSecret = "CreatedSecret"
	// ReasonBotContainerRestarted: behind the gateway proxy, the bot container restarted
	// while the proxy kept the Discord sessions up.
	ReasonBotContainerRestarted = "BotContainerRestarted"
	// ReasonLeaseTakenOver: a Lease the operator did not make for this bot was taken over
	// and reset.
	ReasonLeaseTakenOver = "LeaseTakenOver"
	// ReasonResumed: a halted bot starts again, its spec or token Secret having changed.
	ReasonResumed = "Resumed"
	// ReasonReconcileError: a pass failed; the event says how, and the pass is retried.
	ReasonReconcileError = "ReconcileError"
)

// Reasons a bot pod stops for good, reported by botruntime on its heartbeat Lease
// (LeaseShardState.FatalReason) and by the bot in its container's termination message as
// "<Reason>: <message>". The operator halts the bot for them (status.halted).
const (
	ReasonTokenInvalid      = "TokenInvalid"
	ReasonInvalidShard      = "InvalidShard"
	ReasonShardingRequired  = "ShardingRequired"
	ReasonInvalidAPIVersion = "InvalidAPIVersion"
	ReasonIntentsInvalid    = "IntentsInvalid"
	ReasonIntentsDisallowed = "IntentsDisallowed"
	ReasonBadConfiguration  = "BadConfiguration"
)

// ReasonPodReplaced: a pod gave way to a new pod of the same name. The operator's event
// when it replaces a pod for a new revision; and why a bot process stops when another pod
// of its name took over its heartbeat Lease (it was force-deleted and replaced), which is
// not a fatal reason: the replacement runs the shards, so nothing is halted.
const ReasonPodReplaced = "PodReplaced"

// IsFatalBotReason tells whether a reason is one a bot pod stops for good with.
func IsFatalBotReason(reason string) bool {
	switch reason {
	case ReasonTokenInvalid, ReasonInvalidShard, ReasonShardingRequired, ReasonInvalidAPIVersion,
		ReasonIntentsInvalid, ReasonIntentsDisallowed, ReasonBadConfiguration:
		return true
	}
	return false
}

// StopReport is why a bot pod stopped, as it reported it: on its heartbeat Lease
// (LeaseShardState.FatalReason and FatalMessage) or in its container's termination message.
// +kubebuilder:object:generate=false
type StopReport struct {
	Reason  string // CamelCase, e.g. TokenInvalid
	Message string
}

// Fatal says whether restarts cannot fix what the pod stopped for.
func (r StopReport) Fatal() bool { return IsFatalBotReason(r.Reason) }

// TerminationMessage is the report as a bot writes it to its container's termination
// message: "<Reason>: <message>".
func (r StopReport) TerminationMessage() string { return r.Reason + ": " + r.Message }

// ParseTerminationMessage reads a termination message written by TerminationMessage, by a
// bot of this version or an older one; ok is false for any other text.
func ParseTerminationMessage(msg string) (r StopReport, ok bool) {
	r.Reason, r.Message, ok = strings.Cut(strings.TrimSpace(msg), ": ")
	if !ok {
		return StopReport{}, false
	}
	return r, true
}
