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

	// The gateway proxy sidecar (spec.gatewayProxy, docs/gateway-proxy.md).
	proxyContainerName    = "gateway-proxy"
	proxyListen           = "127.0.0.1:7878"
	proxyTmpVolumeName    = "proxy-tmp"
	clientTokenVolumeName = "client-token"
	clientTokenMountDir   = "/var/run/secrets/shardkeeper-client"
	apiAccessVolumeName   = "kube-api-access"
	apiAccessMountDir     = "/var/run/secrets/kubernetes.io/serviceaccount"
	apiTokenExpirySeconds = 3607 // the kubelet's own for projected service account tokens
	envDiscordGatewayURL  = "DISCORD_GATEWAY_URL"
	envDiscordAPIURL      = "DISCORD_API_URL"
	envDiscordTokenFile   = "DISCORD_TOKEN_FILE"
	proxyClientHealthPath = "/client/healthz"
	proxyClientReadyPath  = "/client/readyz"
	proxyClientGatewayURL = "ws://" + proxyListen
	proxyClientAPIURL     = "http://" + proxyListen + "/api/v10"
	proxyClientTokenFile  = clientTokenMountDir + "/" + tokenFileName
	proxyRealTokenFile    = tokenMountDir + "/" + tokenFileName

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
	// GatewayProxy is spec.gatewayProxy when enabled, and ProxyImage the proxy image it
	// runs; both empty otherwise, so that bots without the proxy keep their revision.
	GatewayProxy *shardkeeperv1.GatewayProxySpec `json:"gatewayProxy,omitempty"`
	ProxyImage   string                          `json:"proxyImage,omitempty"`
}

// podDefaults are the operator's settings for what a bot's spec leaves out.
type podDefaults struct {
	// image runs bots without spec.image.
	image string
	// apiURL is where bots without spec.gateway.apiURL send REST calls: the API the
	// operator asks GET /gateway/bot on their behalf.
	apiURL string
	// proxyImage runs the gateway proxy of bots without spec.gatewayProxy.image.
	proxyImage string
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
	if proxy := bot.Spec.GatewayProxy; proxy != nil && proxy.Enabled {
		in.GatewayProxy = proxy
		in.ProxyImage = proxy.Image
		if in.ProxyImage == "" {
			in.ProxyImage = defaults.proxyImage
		}
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

	pod := &corev1.Pod{
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
	if b.inputs.GatewayProxy != nil {
		b.addProxy(pod, group)
	}
	return pod
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
		if gw.Compression != "" {
			env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvGatewayCompression, Value: string(gw.Compression)})
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

// addProxy turns a bot pod into one whose sessions the gateway proxy holds: the proxy is
// a native sidecar (an init container that always restarts: it starts before the bot
// container and stops after it) with botruntime's whole contract, the real token and the
// API access its Lease needs; the user's image is the bot container, which gets the
// proxy's local URLs, the placeholder token and the shard variables, and neither the real
// token (unless exposeRealToken) nor a service account token.
func (b podBuilder) addProxy(pod *corev1.Pod, group int32) {
	proxy := b.inputs.GatewayProxy
	spec := &pod.Spec
	// The kubelet would mount the API token into every container; only the proxy gets it.
	spec.AutomountServiceAccountToken = ptr.To(false)
	spec.Volumes = append(spec.Volumes,
		corev1.Volume{
			Name: clientTokenVolumeName,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName:  proxyTokenSecretName(b.bot.Name),
				Items:       []corev1.KeyToPath{{Key: pod.Name, Path: tokenFileName}},
				DefaultMode: ptr.To[int32](0o440),
			}},
		},
		corev1.Volume{
			Name: proxyTmpVolumeName,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				SizeLimit: ptr.To(resource.MustParse("64Mi")),
			}},
		},
		apiAccessVolume(),
	)

	sidecar := b.container(group)
	sidecar.Name = proxyContainerName
	sidecar.Image = b.inputs.ProxyImage
	sidecar.ImagePullPolicy = ""
	sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	sidecar.Env = append(b.env(group), b.proxyEnv()...)
	sidecar.Resources = proxy.Resources
	sidecar.VolumeMounts = []corev1.VolumeMount{
		{Name: tokenVolumeName, MountPath: tokenMountDir, ReadOnly: true},
		{Name: clientTokenVolumeName, MountPath: clientTokenMountDir, ReadOnly: true},
		{Name: apiAccessVolumeName, MountPath: apiAccessMountDir, ReadOnly: true},
		{Name: proxyTmpVolumeName, MountPath: "/tmp"},
	}
	spec.InitContainers = []corev1.Container{sidecar}

	bot := &spec.Containers[0]
	bot.Env = append(b.clientEnv(group), b.inputs.Template.Env...)
	bot.Ports = nil // the health port is the proxy's
	// No startup probe: /client/healthz passes until the proxy's startup bound (2 min)
	// ends without a client. Liveness fails when the bot's process stops heartbeating for
	// the tolerance; the kubelet then restarts the bot container alone, and the Discord
	// sessions stay up. Ready: every shard up upstream with a client connected.
	bot.StartupProbe = nil
	bot.LivenessProbe = proxyProbe(proxyClientHealthPath, 5, 2)
	bot.ReadinessProbe = proxyProbe(proxyClientReadyPath, 5, 2)
	bot.VolumeMounts = []corev1.VolumeMount{
		{Name: clientTokenVolumeName, MountPath: clientTokenMountDir, ReadOnly: true},
		{Name: tmpVolumeName, MountPath: "/tmp"},
	}
	if proxy.ExposeRealToken {
		bot.VolumeMounts = append(bot.VolumeMounts, corev1.VolumeMount{Name: tokenVolumeName, MountPath: tokenMountDir, ReadOnly: true})
	}
}

// proxyEnv is the proxy's own part of its contract (api/v1/env.go), beside botruntime's.
func (b podBuilder) proxyEnv() []corev1.EnvVar {
	proxy := b.inputs.GatewayProxy
	env := []corev1.EnvVar{
		{Name: shardkeeperv1.EnvProxyListen, Value: proxyListen},
		{Name: shardkeeperv1.EnvProxyClientTokenFile, Value: proxyClientTokenFile},
	}
	if proxy.ReplayEvents > 0 {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvProxyReplayEvents, Value: strconv.Itoa(int(proxy.ReplayEvents))})
	}
	if proxy.ReplayBytes != nil {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvProxyReplayBytes, Value: strconv.FormatInt(proxy.ReplayBytes.Value(), 10)})
	}
	if proxy.ClientHeartbeatInterval != nil {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvProxyClientHeartbeatInterval, Value: proxy.ClientHeartbeatInterval.Duration.String()})
	}
	if proxy.ClientStartupBound != nil {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvProxyClientStartupBound, Value: proxy.ClientStartupBound.Duration.String()})
	}
	if proxy.ClientHeartbeatTolerance > 0 {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvProxyClientTolerance, Value: strconv.Itoa(int(proxy.ClientHeartbeatTolerance))})
	}
	return env
}

// clientEnv is what the bot container behind the proxy is told: where its gateway, API and
// token are, and the non-secret shard variables. Nothing of the Lease or the health port:
// those are the proxy's.
func (b podBuilder) clientEnv(group int32) []corev1.EnvVar {
	keep := map[string]bool{
		shardkeeperv1.EnvBotName: true, shardkeeperv1.EnvNamespace: true, shardkeeperv1.EnvPodName: true,
		shardkeeperv1.EnvPodUID: true, shardkeeperv1.EnvShardGroup: true, shardkeeperv1.EnvShardIDs: true,
		shardkeeperv1.EnvShardCount: true, shardkeeperv1.EnvIntents: true,
	}
	var env []corev1.EnvVar
	for _, e := range b.env(group) {
		if keep[e.Name] {
			env = append(env, e)
		}
	}
	env = append(env,
		corev1.EnvVar{Name: envDiscordGatewayURL, Value: proxyClientGatewayURL},
		corev1.EnvVar{Name: envDiscordAPIURL, Value: proxyClientAPIURL},
		corev1.EnvVar{Name: envDiscordTokenFile, Value: proxyClientTokenFile},
	)
	if b.inputs.GatewayProxy.ExposeRealToken {
		env = append(env, corev1.EnvVar{Name: shardkeeperv1.EnvTokenFile, Value: proxyRealTokenFile})
	}
	return env
}

// apiAccessVolume is what the kubelet mounts for automountServiceAccountToken (a bound,
// expiring token, the cluster's CA and the namespace), as a volume of its own so that
// only the proxy container mounts it.
func apiAccessVolume() corev1.Volume {
	return corev1.Volume{
		Name: apiAccessVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](0o444),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](apiTokenExpirySeconds)}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
					Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}}}},
			},
		}},
	}
}

// proxyProbe probes the proxy's health port from the bot container: by number, since a
// port name resolves only among the probed container's own ports.
func proxyProbe(path string, periodSeconds, failureThreshold int32) *corev1.Probe {
	probe := httpProbe(path, periodSeconds, failureThreshold)
	probe.HTTPGet.Port = intstr.FromInt32(healthPort)
	return probe
}

// proxyTokenSecretName is the Secret holding the placeholder token of each of a bot's
// pods, one key per pod name (proxytokens.go).
func proxyTokenSecretName(bot string) string { return "shardkeeper-" + bot + "-proxy" }
