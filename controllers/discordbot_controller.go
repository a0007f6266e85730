package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

// annotationCountedRestarts is the container restart count of a pod already added to the
// bot's status.restarts, so that the status counter survives pod replacement.
const annotationCountedRestarts = "shardkeeper.dev/counted-restarts"

// annotationCountedBotRestarts is, behind the gateway proxy, the bot container's share of
// it, so that a restart of the bot container alone is told from one of the proxy.
const annotationCountedBotRestarts = "shardkeeper.dev/counted-bot-restarts"

// DiscordBotReconciler turns a DiscordBot into the bot pods that run its shards, and the
// ServiceAccount, Role and RoleBinding those pods use.
type DiscordBotReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// DefaultBotImage is used when a DiscordBot sets no spec.image.
	DefaultBotImage string
	// DefaultGatewayProxyImage runs the gateway proxy of bots that set no
	// spec.gatewayProxy.image.
	DefaultGatewayProxyImage string
	// Clock drives every time-based decision; nil means the real clock.
	Clock Clock
	// APIReader reads around the cache, to check a Lease before acting on it.
	APIReader client.Reader
	// StartupGrace and MaxUnhealthyPercent tune stale-pod restarts (defaults when zero).
	StartupGrace        time.Duration
	MaxUnhealthyPercent int
	// Gateway asks Discord for GET /gateway/bot (default: a real HTTP client), at
	// DiscordAPIURL unless a bot sets spec.gateway.apiURL, every GatewayCheckInterval
	// (default DefaultGatewayCheckInterval) and whenever something calls for it.
	Gateway              GatewayClient
	DiscordAPIURL        string
	GatewayCheckInterval time.Duration
	// TrustedHosts is where a bot token may be sent: by the operator asking Discord, and by
	// the pods it runs (spec.gateway). nil means Discord's own hosts over TLS only.
	TrustedHosts *trustedhosts.Policy
	// MaxConcurrentReconciles is how many bots are reconciled at once (default 1). One bot
	// is never reconciled twice at once; everything shared between passes is locked.
	MaxConcurrentReconciles int

	leases      *leaseTracker
	gateway     *gatewayChecker
	gatewayOnce sync.Once
	tokens      tokenChecks
}

// initGateway sets up asking Discord, once; a reconciler built by hand gets it on first use.
func (r *DiscordBotReconciler) initGateway() {
	r.gatewayOnce.Do(func() {
		if r.Gateway == nil {
			r.Gateway = discordapi.NewClient("Shardkeeper (https://github.com/shardkeeper/shardkeeper)")
		}
		if r.DiscordAPIURL == "" {
			r.DiscordAPIURL = discordapi.DefaultAPIURL
		}
		if r.TrustedHosts == nil {
			r.TrustedHosts = trustedhosts.Default()
		}
		r.gateway = newGatewayChecker(r.Gateway, r.liveReader(), r.TrustedHosts, r.Clock)
	})
}

// scope is one reconcile's working state, passed from phase to phase.
type scope struct {
	bot          *shardkeeperv1.DiscordBot
	topo         topology
	builder      podBuilder
	pods         []observedPod
	tokenProblem string
	// endpointProblem is why spec.gateway may not have the token ("" when it may).
	endpointProblem string
	plan            rolloutPlan
	now             time.Time
	// newRestarts counts restarts found in this pass; recount holds the pods whose
	// counted-restarts annotations must move once the status carrying them is saved.
	newRestarts int64
	recount     map[*corev1.Pod]restartCounts
	// health is what the heartbeat Leases said, and what judgeHealth made of them.
	health        healthObservation
	leases        map[string]*coordinationv1.Lease // the bot's Leases by name, listed once per pass
	secretVersion string                           // the token Secret's resourceVersion
	// Discord's gateway information (gateway.go) and the shard layout it leads to.
	gatewayErr       error  // why the last GET /gateway/bot with this token failed, nil when it worked
	shardingRequired bool   // a pod was told 4011 and shards is auto: ask Discord again
	layoutProblem    string // why no shard layout can be worked out yet
	layoutReason     string // the condition reason for it, "" for GatewayInfoUnavailable
	// groupHaltReports are 4011 reports that halt only their shard group
	// (reconcileHalt finds them, reconcileGroupHalts records them).
	groupHaltReports []fatalPodReport
	// stoppedGroups are halted shard groups whose pod must not run (reconcileGroupHalts).
	stoppedGroups map[groupKey]bool
	// budget is the session start breaker (sessionbudget.go).
	budget sessionBudget
	// laterErrs fail the pass at its end, after every phase ran: problems with one object
	// that must not hold up the rest (a Lease someone else made).
	laterErrs []error
	// observed is set once the pods were listed; before that the status is not recomputed,
	// so a failed pass never writes a status made of half the facts.
	observed bool
}

// +kubebuilder:rbac:groups=shardkeeper.dev,resources=discordbots,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=shardkeeper.dev,resources=discordbots/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one DiscordBot's pods and access objects in line with its spec.
func (r *DiscordBotReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	// 1. Load the bot. A deleted bot's objects go with it through their owner references.
	bot := &shardkeeperv1.DiscordBot{}
	if err := r.Get(ctx, req.NamespacedName, bot); err != nil {
		if apierrors.IsNotFound(err) {
			forgetBotMetrics(req.Namespace, req.Name)
			if r.gateway != nil {
				r.gateway.forget(req.NamespacedName)
			}
			if r.leases != nil {
				r.leases.keepPods(req.NamespacedName, nil)
			}
			r.tokens.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bot.DeletionTimestamp.IsZero() {
		forgetBotMetrics(req.Namespace, req.Name)
		return ctrl.Result{}, nil
	}

	r.initGateway()

	// 2. Whatever happens below, save the status once on the way out.
	before := bot.DeepCopy()
	s := &scope{bot: bot, now: clockOrReal(r.Clock).Now(), recount: map[*corev1.Pod]restartCounts{}, leases: map[string]*coordinationv1.Lease{}}
	defer func() {
		statusResult, err := r.saveStatus(ctx, before, s)
		retErr = errors.Join(retErr, err)
		// A namespace being deleted refuses new objects, and the bot goes with it: nothing
		// to retry or report (an event could not be written either).
		if namespaceTerminating(retErr) {
			logf.FromContext(ctx).V(1).Info("the namespace is being deleted; not recreating the bot's objects", "error", retErr.Error())
			retErr, result = nil, ctrl.Result{}
			return
		}
		if retErr != nil {
			result = ctrl.Result{} // the error's backoff says when to look again
			if !apierrors.IsConflict(retErr) {
				r.event(bot, nil, corev1.EventTypeWarning, shardkeeperv1.ReasonReconcileError, "Reconcile", "%s", retErr.Error())
			}
			return
		}
		// Look again when a starting pod would turn into a problem too.
		result = lowestNonZeroResult(result, statusResult)
	}()

	// 3. Run the phases in order. Each says when to look again, if time alone would change
	// something (a Lease going stale, Discord's budget reset); the soonest wins, and
	// watches cover the rest. The first error stops the pass and is retried with backoff.
	phases := []func(context.Context, *scope) (ctrl.Result, error){
		r.checkToken,
		r.checkEndpoints,
		r.observePods,
		r.countRestarts,
		r.observeLeases,
		r.takeGatewayAnswer,
		r.reconcileHalt,
		r.checkGateway,
		r.resolveLayout,
		r.reconcileGroupHalts,
		r.checkSessionBudget,
		r.reconcileAccess,
		r.reconcileProxyTokens,
		r.reconcilePodLeases,
		r.judgeHealth,
		r.rollOut,
	}
	for _, phase := range phases {
		phaseResult, err := phase(ctx, s)
		if err != nil && !errors.Is(err, errEndPass) {
			return ctrl.Result{}, err
		}
		result = lowestNonZeroResult(result, phaseResult)
		if err != nil {
			break
		}
	}
	return result, errors.Join(s.laterErrs...)
}

// errEndPass is what a phase returns to end the pass quietly, having set a terminal
// condition itself: no later phase runs, and nothing is retried.
var errEndPass = errors.New("the pass ends here")

// lowestNonZeroResult merges two phases' results: the sooner look again wins.
func lowestNonZeroResult(a, b ctrl.Result) ctrl.Result {
	return ctrl.Result{RequeueAfter: minPositive(a.RequeueAfter, b.RequeueAfter)}
}

// builderFor is the pod builder of an action's layout.
func (s *scope) builderFor(a podAction) podBuilder {
	if a.layout != nil {
		return s.builder.forLayout(*a.layout)
	}
	return s.builder
}

// resolveLayout works out the shard layout: spec.shards, or Discord's recommendation for
// "auto". The CRD's rules reject bad layouts; the error case only trips when the installed
// CRD is older than the operator.
func (r *DiscordBotReconciler) resolveLayout(ctx context.Context, s *scope) (ctrl.Result, error) {
	bot := s.bot
	topo, err := topologyOf(&bot.Spec, bot.Status.Gateway, bot.Status.Shards)
	var unknown *layoutUnknownError
	switch {
	case errors.As(err, &unknown):
		why := unknown.Error()
		if s.gatewayErr != nil {
			why = "asking Discord failed: " + s.gatewayErr.Error()
		}
		var implausible *discordapi.ImplausibleAnswerError
		if errors.As(s.gatewayErr, &implausible) {
			s.layoutReason = shardkeeperv1.ReasonGatewayAnswerRejected
		}
		s.layoutProblem = why
	case err != nil:
		logf.FromContext(ctx).Error(err, "invalid shard layout")
		meta.SetStatusCondition(&bot.Status.Conditions, metav1.Condition{
			Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: shardkeeperv1.ReasonInvalidSpec,
			Message: err.Error(), ObservedGeneration: bot.Generation,
		})
		s.observed = false // keep the status as it was, with this condition
		return ctrl.Result{}, errEndPass
	}
	s.topo = topo
	s.builder = newPodBuilder(bot, podDefaults{image: r.DefaultBotImage, apiURL: r.DiscordAPIURL, proxyImage: r.DefaultGatewayProxyImage}, topo, maxConcurrency(bot))
	s.builder.generation = layoutGeneration(s.pods, s.leases, topo.label())
	return ctrl.Result{}, nil
}

// observePods lists the bot's pods and Leases from the cache, by botIndex.
func (r *DiscordBotReconciler) observePods(ctx context.Context, s *scope) (ctrl.Result, error) {
	var leases coordinationv1.LeaseList
	if err := r.List(ctx, &leases, ofBot(s.bot)...); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing Leases: %w", err)
	}
	for i := range leases.Items {
		s.leases[leases.Items[i].Name] = &leases.Items[i]
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, ofBot(s.bot)...); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !metav1.IsControlledBy(pod, s.bot) {
			continue // a pod of an earlier bot with this name, or someone else's
		}
		s.pods = append(s.pods, observePod(pod))
	}
	s.observed = true
	if r.leases != nil {
		live := make(map[types.UID]bool, len(s.pods))
		for _, p := range s.pods {
			live[p.pod.UID] = true
		}
		r.leases.keepPods(client.ObjectKeyFromObject(s.bot), live)
	}
	return ctrl.Result{}, nil
}

// restartCounts are a pod's container restarts: of all its containers, and of the bot
// container behind a gateway proxy.
type restartCounts struct{ total, bot int32 }

// countRestarts finds container restarts not yet added to status.restarts. Behind the
// gateway proxy, a restart of the bot container alone (the proxy kept running, and the
// Discord sessions with it) gets an event of its own: the sessions lost nothing, but the
// bot's process crashed or stopped heartbeating.
func (r *DiscordBotReconciler) countRestarts(_ context.Context, s *scope) (ctrl.Result, error) {
	for _, p := range s.pods {
		var now restartCounts
		for _, cs := range containerStatuses(p.pod) {
			now.total += cs.RestartCount
			if cs.Name == botContainerName {
				now.bot = cs.RestartCount
			}
		}
		counted, _ := strconv.ParseInt(p.pod.Annotations[annotationCountedRestarts], 10, 32)
		if int64(now.total) <= counted {
			continue
		}
		s.newRestarts += int64(now.total) - counted
		s.recount[p.pod] = now
		if !hasProxy(p.pod) {
			continue
		}
		countedBot, _ := strconv.ParseInt(p.pod.Annotations[annotationCountedBotRestarts], 10, 32)
		if bot := int64(now.bot) - countedBot; bot > 0 && bot == int64(now.total)-counted {
			r.event(s.bot, p.pod, corev1.EventTypeWarning, shardkeeperv1.ReasonBotContainerRestarted, "Restart",
				"the bot container of pod %s restarted (%d times in all)%s; its gateway proxy kept the Discord sessions up",
				p.pod.Name, now.bot, lastTermination(p.pod, botContainerName))
		}
	}
	return ctrl.Result{}, nil
}

// lastTermination says how a container last ended, for an event: ": exit code 1 (Error)".
func lastTermination(pod *corev1.Pod, container string) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.LastTerminationState.Terminated; cs.Name == container && t != nil {
			return fmt.Sprintf(" after exit code %d (%s)", t.ExitCode, t.Reason)
		}
	}
	return ""
}

// rollOut plans the pod changes and carries them out.
func (r *DiscordBotReconciler) rollOut(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.layoutProblem != "" {
		return ctrl.Result{}, nil // nothing to lay out yet; the status says why
	}
	if answer := r.gateway.answer(client.ObjectKeyFromObject(s.bot)); s.bot.Status.Gateway == nil && len(s.pods) == 0 &&
		(answer.inFlight || (answer.info != nil && answer.err == nil)) {
		// A new bot: wait the moment it takes Discord to tell its identify concurrency and
		// session budget (an answer that came during this pass is taken in by the next), so
		// the first pods start with them instead of being rolled for them right after.
		s.plan = rolloutPlan{progress: shardkeeperv1.ReasonAskingDiscord, message: "asking Discord for the bot's gateway information (GET /gateway/bot)"}
		return ctrl.Result{}, nil
	}
	s.plan = planRollout(rolloutInput{
		topo:           s.topo,
		generation:     s.builder.generation,
		revision:       s.builder.revision,
		stop:           stopOf(s.bot),
		tokenAvailable: s.tokenProblem == "" && s.endpointProblem == "",
		pods:           s.pods,
		stopped:        s.stoppedGroups,
	})
	var errs []error
	key := client.ObjectKeyFromObject(s.bot)
	for _, a := range s.plan.actions {
		var need int32
		if a.kind == createPod {
			// The session start breaker: a pod that cannot resume spends identifies.
			b := s.builderFor(a)
			// A pod's Lease outlives it: a new pod of an old name may resume from it.
			need = identifiesNeeded(s.leases[leaseName(b.podName(a.group))], b.topo.shardList(a.group), b.topo.shards, s.now)
			if !s.budget.take(need) {
				continue
			}
		}
		created, err := r.apply(ctx, s, a)
		if err != nil {
			errs = append(errs, err)
		}
		if created && need > 0 {
			r.gateway.spend(key, need, s.now)
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// apply carries out one action; created says a pod was created.
func (r *DiscordBotReconciler) apply(ctx context.Context, s *scope, a podAction) (created bool, err error) {
	switch a.kind {
	case createPod:
		b := s.builderFor(a)
		pod := b.build(a.group)
		if err := controllerutil.SetControllerReference(s.bot, pod, r.Scheme); err != nil {
			return false, err
		}
		if err := r.ensurePodLease(ctx, s.bot, b.topo.label(), b.generation, pod.Name); err != nil {
			return false, err
		}
		if ok, err := r.fenceEarlierPods(ctx, s.bot, pod.Name); !ok {
			return false, err // nil: the cache has not seen the pod yet, or the old one is still going
		}
		if err := r.Create(ctx, pod); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return false, nil // made in between
			}
			return false, fmt.Errorf("creating pod %s: %w", pod.Name, err)
		}
		created = true
		if err := r.recordCreatedPod(ctx, s.bot, pod); err != nil {
			// The next pass records it (reconcilePodLeases); until then an earlier
			// writer is still fenced by the pod itself.
			logf.FromContext(ctx).Error(err, "recording the created pod on its Lease", "pod", pod.Name)
		}
		metricPodActions.WithLabelValues("create", a.reason).Inc()
		logf.FromContext(ctx).Info("created pod", "pod", pod.Name, "shards", b.topo.describeShards(a.group), "revision", b.revision)
		r.event(s.bot, pod, corev1.EventTypeNormal, a.reason, "Create", "created pod %s: %s", pod.Name, a.message)
	case deletePod:
		_, err := r.deletePod(ctx, s, podDeletion{pod: a.pod, reason: a.reason, message: a.message, restart: a.restart, action: actionDelete})
		return false, err
	}
	return created, nil
}

// podDeletion is a pod to delete and why: a step of the rollout, or a restart of an
// unhealthy pod (judgeHealth).
type podDeletion struct {
	pod     *corev1.Pod
	reason  string // the event's, and the metric's
	message string
	// restart: a replacement after a failure, a Warning event counted in status.restarts.
	restart bool
	action  string // the event's: actionDelete or actionRestart
}

// Event actions of pod deletions.
const (
	actionDelete  = "Delete"
	actionRestart = "Restart"
)

// deletePod is the one way the operator deletes a bot pod: only the very pod that was
// judged (its UID), then the metric, the log, the event and the restart count. deleted is
// false when the pod was gone already or is a newer pod of the same name: nothing was
// done, and nothing is recorded.
func (r *DiscordBotReconciler) deletePod(ctx context.Context, s *scope, d podDeletion) (deleted bool, err error) {
	err = r.Delete(ctx, d.pod, podDeleteOptions(d.reason, d.pod.UID)...)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return false, nil // the next pass sees what took its place
	}
	if err != nil {
		return false, fmt.Errorf("deleting pod %s: %w", d.pod.Name, err)
	}
	metricPodActions.WithLabelValues("delete", d.reason).Inc()
	done := "deleted"
	if d.action == actionRestart {
		done = "restarted"
	}
	logf.FromContext(ctx).Info(done+" pod", "pod", d.pod.Name, "reason", d.reason, "detail", d.message)
	eventType := corev1.EventTypeNormal
	if d.restart {
		eventType = corev1.EventTypeWarning
		s.newRestarts++
	}
	r.event(s.bot, d.pod, eventType, d.reason, d.action, "%s pod %s: %s", done, d.pod.Name, d.message)
	return true, nil
}

// podDeleteOptions are how a pod is deleted: only the pod that was judged (its UID), and
// with a short grace when its Lease went stale (a hung process).
func podDeleteOptions(reason string, uid types.UID) []client.DeleteOption {
	opts := []client.DeleteOption{client.Preconditions{UID: &uid}}
	if reason == shardkeeperv1.ReasonLeaseStale || reason == shardkeeperv1.ReasonLeaseNeverWritten {
		opts = append(opts, client.GracePeriodSeconds(staleGracePeriod))
	}
	return opts
}

// saveStatus computes the status, patches it if it changed, and emits an event for every
// condition whose status or reason changed. Then it marks counted restarts on the pods.
func (r *DiscordBotReconciler) saveStatus(ctx context.Context, before *shardkeeperv1.DiscordBot, s *scope) (ctrl.Result, error) {
	bot := s.bot
	var result ctrl.Result
	if s.observed {
		result.RequeueAfter = computeStatus(bot, botObservation{
			topo:            s.topo,
			generation:      s.builder.generation,
			revision:        s.builder.revision,
			image:           s.builder.inputs.Image,
			suspended:       bot.Spec.Suspend,
			tokenProblem:    s.tokenProblem,
			endpointProblem: s.endpointProblem,
			layoutProblem:   s.layoutProblem,
			layoutReason:    s.layoutReason,
			budget:          s.budget,
			pods:            s.pods,
			plan:            s.plan,
			now:             s.now,
			health:          s.health,
			proxy:           s.builder.inputs.GatewayProxy != nil,
		})
	}
	bot.Status.Restarts = before.Status.Restarts + s.newRestarts

	if !equality.Semantic.DeepEqual(before.Status, bot.Status) {
		// Optimistic lock: restarts are a running sum, so a stale base must not win.
		if err := r.Status().Patch(ctx, bot, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("saving status: %w", err)
		}
		r.conditionEvents(before, bot)
	}
	// After the patch: the metrics say what the API server holds, and the restarts of a
	// pass whose patch failed are counted by the pass that saves them.
	recordBotMetrics(bot, s.newRestarts)

	var errs []error
	for pod, counts := range s.recount {
		patch := client.MergeFrom(pod.DeepCopy())
		metav1.SetMetaDataAnnotation(&pod.ObjectMeta, annotationCountedRestarts, strconv.Itoa(int(counts.total)))
		if hasProxy(pod) {
			metav1.SetMetaDataAnnotation(&pod.ObjectMeta, annotationCountedBotRestarts, strconv.Itoa(int(counts.bot)))
		}
		if err := r.Patch(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("marking restarts counted on pod %s: %w", pod.Name, err))
		}
	}
	return result, errors.Join(errs...)
}

// conditionEvents emits one event per condition whose status or reason changed.
func (r *DiscordBotReconciler) conditionEvents(before, after *shardkeeperv1.DiscordBot) {
	for _, c := range after.Status.Conditions {
		old := meta.FindStatusCondition(before.Status.Conditions, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		eventType := corev1.EventTypeNormal
		if isBadCondition(c) {
			eventType = corev1.EventTypeWarning
		}
		r.event(after, nil, eventType, c.Reason, "ConditionChanged", "%s=%s: %s", c.Type, c.Status, c.Message)
	}
}

// isBadCondition tells which condition states deserve a Warning event.
func isBadCondition(c metav1.Condition) bool {
	switch c.Type {
	case shardkeeperv1.ConditionDegraded:
		return c.Status == metav1.ConditionTrue
	case shardkeeperv1.ConditionReady:
		return c.Status == metav1.ConditionFalse && c.Reason != shardkeeperv1.ReasonSuspended && c.Reason != shardkeeperv1.ReasonShardsNotReady &&
			c.Reason != shardkeeperv1.ReasonCreatingPods
	case shardkeeperv1.ConditionRemediationRestricted, shardkeeperv1.ConditionSessionStartLimitLow:
		return c.Status == metav1.ConditionTrue
	}
	return false
}

func (r *DiscordBotReconciler) event(bot *shardkeeperv1.DiscordBot, related runtime.Object, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	// Notes carry text from servers and pods: bounded, as the API server bounds them.
	r.Recorder.Eventf(bot, related, eventType, reason, action, "%s", truncate(fmt.Sprintf(note, args...), maxEventNote))
}

// SetupWithManager registers the controller, its watches, the token Secret index and the
// index of pods and Leases by bot.
func (r *DiscordBotReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.leases == nil {
		r.leases = newLeaseTracker(r.Clock)
		r.leases.watch = apiWatches
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	r.initGateway()
	if err := mgr.Add(manager.RunnableFunc(r.gateway.run)); err != nil {
		return fmt.Errorf("adding the gateway checker: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &shardkeeperv1.DiscordBot{}, tokenSecretIndex, indexTokenSecret); err != nil {
		return fmt.Errorf("indexing bots by token Secret: %w", err)
	}
	for _, obj := range []client.Object{&corev1.Pod{}, &coordinationv1.Lease{}} {
		if err := mgr.GetFieldIndexer().IndexField(ctx, obj, botIndex, indexByBot); err != nil {
			return fmt.Errorf("indexing %T by bot: %w", obj, err)
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&shardkeeperv1.DiscordBot{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.Pod{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.botsForSecret), builder.OnlyMetadata).
		Watches(&coordinationv1.Lease{}, r.leaseEvents()).
		WatchesRawSource(source.Channel(r.gateway.wake, &handler.EnqueueRequestForObject{})).
		Named("discordbot").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Complete(r)
}

// NewDiscordBotReconciler wires a reconciler to a manager's client, scheme and events.
func NewDiscordBotReconciler(mgr ctrl.Manager, defaultBotImage string) *DiscordBotReconciler {
	return &DiscordBotReconciler{
		Client:          mgr.GetClient(),
		Scheme:          mgr.GetScheme(),
		Recorder:        mgr.GetEventRecorder("shardkeeper"),
		DefaultBotImage: defaultBotImage,
	}
}

// namespaceTerminating says whether err, or any error joined in it, is the API server
// refusing an object because its namespace is being deleted.
func namespaceTerminating(err error) bool {
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return true
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if namespaceTerminating(e) {
				return true
			}
		}
	}
	return false
}
