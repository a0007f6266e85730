package controllers

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
)

const (
	botContainerName = "bot"
	healthPortName   = "health"
	healthPort       = 8081
	tokenVolumeName  = "token"
	tokenMountDir    = "/var/run/secrets/shardkeeper"
	tokenFileName    = "token"
	tmpVolumeName    = "tmp"

	// nonRootID is the user and group bot containers run as (distroless "nonroot").
	nonRootID = 65532

	// annotationShards records a pod's shard range for humans ("4-7").
	annotationShards = "shardkeeper.dev/shards"

	// podFormatVersion changes when the operator changes the pods it builds in a way that
	// needs a rollout; it feeds the revision hash.
	podFormatVersion = 2
)

// podInputs is everything a pod's spec depends on besides its shard group. Its hash is
// the pod revision: a change to any of it rolls the pods one at a time.
type podInputs struct {
	FormatVersion  int                             `json:"formatVersion"`
	Image          string                          `json:"image"`
	PullPolicy     corev1.PullPolicy               `json:"pullPolicy,omitempty"`
	TokenSecretRef shardkeeperv1.SecretKeySelector `json:"tokenSecretRef"`
	Intents        []shardkeeperv1.Intent          `json:"intents,omitempty"`
	Gateway        *shardkeeperv1.GatewaySpec      `json:"gateway,omitempty"`
	Health         shardkeeperv1.HealthSpec        `json:"health"`
	Template       shardkeeperv1.BotPodTemplate    `json:"template"`
	// MaxConcurrency is Discord's identify concurrency, when above the default 1 (so that
	// learning it is 1 leaves existing pods alone).
	MaxConcurrency int32 `json:"maxConcurrency,omitempty"`
	// DefaultAPIURL is the operator's --discord-api-url for a bot that names no API, when
	// it is not Discord's own (so that operators on the default leave existing pods alone).
	DefaultAPIURL string `json:"defaultAPIURL,omitempty"`
}

// podDefaults are the operator's settings for what a bot's spec leaves out.
type podDefaults struct {
	// image runs bots without spec.image.
	image string
	// apiURL is where bots without spec.gateway.apiURL send REST calls: the API the
	// operator asks GET /gateway/bot on their behalf.
	apiURL string
}

// revisionOf hashes the pod inputs into a short label value.
func revisionOf(in podInputs) string {
	b, err := json.Marshal(in)
	if err != nil { // only plain data types: cannot happen
		panic(fmt.Sprintf("marshal pod inputs: %v", err))
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return strconv.FormatUint(h.Sum64(), 36)
}

// podBuilder builds the pods of one bot at one revision.
type podBuilder struct {
	bot        *shardkeeperv1.DiscordBot
	inputs     podInputs
	topo       topology
	generation int32
	revision   string
}

func newPodBuilder(bot *shardkeeperv1.DiscordBot, defaults podDefaults, topo topology, maxConcurrency int32) podBuilder {
	image := bot.Spec.Image
	if image == "" {
		image = defaults.image
	}
	in := podInputs{
		FormatVersion:  podFormatVersion,
		Image:          image,
		PullPolicy:     bot.Spec.ImagePullPolicy,
		TokenSecretRef: bot.Spec.TokenSecretRef,
		Intents:        bot.Spec.Intents,
		Gateway:        bot.Spec.Gateway,
		Health:         bot.Spec.Health,
		Template:       bot.Spec.PodTemplate,
	}
	if maxConcurrency > 1 {
		in.MaxConcurrency = maxConcurrency
	}
	if (bot.Spec.Gateway == nil || bot.Spec.Gateway.APIURL == "") && defaults.apiURL != "" && defaults.apiURL != discordapi.DefaultAPIURL {
		in.DefaultAPIURL = defaults.apiURL
	}
	return podBuilder{bot: bot, inputs: in, topo: topo, revision: revisionOf(in)}
}

// commonLabels go on everything the operator creates for a bot.
func commonLabels(botName string) map[string]string {
	labels := BotPodLabels()
	labels[shardkeeperv1.LabelBot] = botName
	labels["app.kubernetes.io/instance"] = botName
	return labels
}

// BotPodLabels are the labels every bot pod carries whatever its bot and template: the
// chart's NetworkPolicy selects bot pods by them.
func BotPodLabels() map[string]string {
	return map[string]string{
		shardkeeperv1.LabelManagedBy: shardkeeperv1.ManagedByValue,
		"app.kubernetes.io/name":     "discordbot",
	}
}

// serviceAccountName is the identity bot pods run as.
func serviceAccountName(botName string) string { return "shardkeeper-" + botName }

// leaseName is the heartbeat Lease a pod renews; it is named after the pod.
func leaseName(pod string) string { return pod }

// forLayout is the builder for another layout (an old one during a reshard).
func (b podBuilder) forLayout(l layoutRef) podBuilder {
	b.topo, b.generation = l.topo, l.generation
	return b
}

// podName is the name of the group's pod in this builder's layout generation.
func (b podBuilder) podName(group int32) string { return podName(b.bot.Name, b.generation, group) }

// build returns the pod for a shard group. It carries no owner reference yet.
func (b podBuilder) build(group int32) *corev1.Pod {
	bot := b.bot
	tpl := b.inputs.Template
	name := b.podName(group)

	labels := maps.Clone(tpl.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, commonLabels(bot.Name))
	labels["app.kubernetes.io/component"] = "shard-group"
	labels[shardkeeperv1.LabelShardGroup] = strconv.Itoa(int(group))
	labels[shardkeeperv1.LabelRevision] = b.revision
	labels[shardkeeperv1.LabelTopology] = b.topo.label()
	labels[shardkeeperv1.LabelGeneration] = strconv.Itoa(int(b.generation))

	annotations := maps.Clone(tpl.Metadata.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[annotationShards] = b.topo.describeShards(group)

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   bot.Namespace,
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           serviceAccountName(bot.Name),
			AutomountServiceAccountToken: ptr.To(true), // botruntime renews its Lease with it
			EnableServiceLinks:           ptr.To(false),
			RestartPolicy:                corev1.RestartPolicyAlways,
			NodeSelector:                 tpl.NodeSelector,
			Tolerations:                  tpl.Tolerations,
			Affinity:                     tpl.Affinity,
			PriorityClassName:            tpl.PriorityClassName,
			ImagePullSecrets:             tpl.ImagePullSecrets,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](nonRootID),
				RunAsGroup:     ptr.To[int64](nonRootID),
				FSGroup:        ptr.To[int64](nonRootID), // makes the 0440 token file readable
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{
				{
					Name: tokenVolumeName,
					VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName:  bot.Spec.TokenSecretRef.Name,
						Items:       []corev1.KeyToPath{{Key: tokenKey(bot), Path: tokenFileName}},
						DefaultMode: ptr.To[int32](0o440),
					}},
				},
				{
					Name: tmpVolumeName,
					VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
						SizeLimit: ptr.To(resource.MustParse("64Mi")),
					}},
				},
			},
			Containers: []corev1.Container{b.container(group)},
		},
	}
}

func (b podBuilder) container(group int32) corev1.Container {
	return corev1.Container{
		Name:            botContainerName,
		Image:           b.inputs.Image,
		ImagePullPolicy: b.inputs.PullPolicy,
		Env:             append(b.env(group), b.inputs.Template.Env...),
		Ports: []corev1.ContainerPort{{
			Name: healthPortName, ContainerPort: healthPort, Protocol: corev1.ProtocolTCP,
		}},
		Resources: b.inputs.Template.Resources,
		// Startup allows a slow first connect; liveness only asks "are the loops alive",
		// so a shard that is reconnecting is not killed; readiness is "every shard connected".
		StartupProbe:   httpProbe("/healthz", 2, 60),
		LivenessProbe:  httpProbe("/healthz", 10, 3),
		ReadinessProbe: httpProbe("/readyz", 5, 2),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Privileged:               ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: tokenVolumeName, MountPath: tokenMountDir, ReadOnly: true},
			{Name: tmpVolumeName, MountPath: "/tmp"},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// env is the operator's contract with botruntime (see api/v1/env.go). No token here.
func (b podBuilder) env(group int32) []corev1.EnvVar {
	bot := b.bot
	intents := make([]string, len(b.inputs.Intents))
	for i, in := range b.inputs.Intents {
		intents[i] = string(in)
	}
	env := []corev1.EnvVar{
		{Name: shardkeeperv1.EnvBotName, Value: bot.Name},
		fieldEnv(shardkeeperv1.EnvNamespace, "metadata.namespace"),
		fieldEnv(shardkeeperv1.EnvPodName, "metadata.name"),
		fieldEnv(shardkeeperv1.EnvPodUID, "metadata.uid"),
		{Name: shardkeeperv1.EnvShardGroup, Value: strconv.Itoa(int(group))},
		{Name: shardkeeperv1.EnvShardIDs, Value: b.topo.shardIDs(group)},
		{Name: shardkeeperv1.EnvShardCount, Value: strconv.Itoa(int(b.topo.shards))},
		{Name: shardkeeperv1.EnvIntents, Value: strings.Join(intents, ",")},
		{Name: shardkeeperv1.EnvTokenFile, Value: tokenMountDir + "/" + tokenFileName},
		{Name: shardkeeperv1.EnvHealthPort, Value: strconv.Itoa(healthPort)},
		{Name: shardkeeperv1.EnvLeaseName, Value: leaseName(b.podName(group))},
		{Name: shardkeeperv1.EnvLeaseDurationSeconds, Value: strconv.Itoa(int(b.inputs.Health.LeaseDurationSeconds))},
		{Name: shardkeeperv1.EnvMaxConcurrency, Value: strconv.Itoa(int(max(b.inputs.MaxConcurrency, 1)))},
	}
	if gw := b.inputs.Gateway; gw != nil {
		if gw.URL != "" {
			env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvGatewayURL, Value: gw.URL})
		}
		if gw.APIURL != "" {
			env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvAPIURL, Value: gw.APIURL})
		}
	}
	if b.inputs.DefaultAPIURL != "" {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvAPIURL, Value: b.inputs.DefaultAPIURL})
	}
	return env
}

func tokenKey(bot *shardkeeperv1.DiscordBot) string {
	if bot.Spec.TokenSecretRef.Key == "" {
		return "token"
	}
	return bot.Spec.TokenSecretRef.Key
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
	}}
}

func httpProbe(path string, periodSeconds, failureThreshold int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(healthPortName), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    periodSeconds,
		TimeoutSeconds:   3,
		FailureThreshold: failureThreshold,
	}
}
