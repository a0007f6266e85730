package controllers

import (
	"fmt"
	"strconv"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
)

// topology is how a bot's shards are split across pods. Pods carry it as a label, so a
// change of shard count or shards per pod tells old shard groups from new ones.
type topology struct {
	shards       int32
	shardsPerPod int32
}

// layoutUnknownError means shards is auto and Discord has not said how many yet.
type layoutUnknownError struct{}

func (layoutUnknownError) Error() string {
	return "shards is auto and Discord has not told the recommended shard count yet"
}

// topologyOf reads the topology from a spec the API server has validated and defaulted,
// taking Discord's recommended count (from the status) for shards: auto. With auto, a
// shardsPerPod above the count runs all shards in one pod, and the count running (running,
// 0 for none) grows at once when Discord recommends more, but shrinks only when it
// recommends half or less: a bot near a boundary must not reshard at every check.
func topologyOf(spec *shardkeeperv1.DiscordBotSpec, gateway *shardkeeperv1.GatewayStatus, running int32) (topology, error) {
	t := topology{shards: spec.Shards.IntVal, shardsPerPod: spec.ShardsPerPod}
	if t.shardsPerPod < 1 {
		t.shardsPerPod = 1
	}
	if spec.Shards.Type == intstr.String {
		if spec.Shards.StrVal != shardkeeperv1.ShardsAuto {
			return topology{}, fmt.Errorf("shards %q is neither a whole number nor %q", spec.Shards.StrVal, shardkeeperv1.ShardsAuto)
		}
		if gateway == nil || gateway.RecommendedShards < 1 || gateway.RecommendedShards > discordapi.MaxShards {
			// Out of range only in a status written before answers were bounded: not
			// acted on, as if Discord had not answered yet.
			return topology{}, &layoutUnknownError{}
		}
		t.shards = gateway.RecommendedShards
		if running > t.shards && t.shards*2 > running {
			t.shards = running
		}
		t.shardsPerPod = min(t.shardsPerPod, t.shards)
	}
	if t.shards < 1 {
		return topology{}, fmt.Errorf("shards must be at least 1, got %d", t.shards)
	}
	if t.shardsPerPod > t.shards {
		return topology{}, fmt.Errorf("shardsPerPod (%d) must not be greater than shards (%d)", t.shardsPerPod, t.shards)
	}
	return t, nil
}

// groups is the number of pods: ceil(shards / shardsPerPod).
func (t topology) groups() int32 {
	if t.shardsPerPod < 1 {
		return 0 // not known yet (shards: auto before Discord answered)
	}
	return (t.shards + t.shardsPerPod - 1) / t.shardsPerPod
}

// shardRange returns the first and last shard ID of a group; the last group may be short.
func (t topology) shardRange(group int32) (first, last int32) {
	first = group * t.shardsPerPod
	last = min(first+t.shardsPerPod, t.shards) - 1
	return first, last
}

// shardIDs lists a group's shard IDs as the SHARDKEEPER_SHARD_IDS value: "4,5,6,7".
func (t topology) shardIDs(group int32) string {
	first, last := t.shardRange(group)
	ids := make([]string, 0, last-first+1)
	for id := first; id <= last; id++ {
		ids = append(ids, strconv.Itoa(int(id)))
	}
	return strings.Join(ids, ",")
}

// describeShards is the short human form: "3" or "4-7".
func (t topology) describeShards(group int32) string {
	first, last := t.shardRange(group)
	if first == last {
		return strconv.Itoa(int(first))
	}
	return fmt.Sprintf("%d-%d", first, last)
}

// label is the topology's label value, e.g. "16x4" for 16 shards, 4 per pod.
func (t topology) label() string {
	return fmt.Sprintf("%dx%d", t.shards, t.shardsPerPod)
}

// topologyFromLabel reads a topology label ("16x4") back.
func topologyFromLabel(label string) (topology, bool) {
	shards, perPod, ok := strings.Cut(label, "x")
	n, err1 := strconv.ParseInt(shards, 10, 32)
	k, err2 := strconv.ParseInt(perPod, 10, 32)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 {
		return topology{}, false
	}
	return topology{shards: int32(n), shardsPerPod: int32(k)}, true
}

// podName is the name of a bot's pod for a shard group of a layout generation: "<bot>-3"
// for the first layout, "<bot>-3-g2" after two reshards, so a new layout's pods can run
// beside the old one's. The suffix is read only one way: no other bot's pod, and no
// identify bucket Lease, can have the name.
// parsePodName reads a pod name podName gave: the layout generation and the group.
func parsePodName(botName, pod string) (generation, group int32, ok bool) {
	rest, found := strings.CutPrefix(pod, botName+"-")
	if !found {
		return 0, 0, false
	}
	groupPart, genPart, hasGen := strings.Cut(rest, "-g")
	g, err := strconv.ParseInt(groupPart, 10, 32)
	if err != nil || g < 0 || strconv.FormatInt(g, 10) != groupPart {
		return 0, 0, false
	}
	if hasGen {
		n, err := strconv.ParseInt(genPart, 10, 32)
		if err != nil || n <= 0 || strconv.FormatInt(n, 10) != genPart {
			return 0, 0, false
		}
		generation = int32(n)
	}
	return generation, int32(g), true
}

func podName(botName string, generation, group int32) string {
	if generation == 0 {
		return fmt.Sprintf("%s-%d", botName, group)
	}
	return fmt.Sprintf("%s-%d-g%d", botName, group, generation)
}

// layoutGeneration is the generation of the layout's pods: the one of its pods, or of its
// pod Leases (they outlive a deleted pod, and carry its resume state), else one past the
// newest generation of any pod or Lease (a reshard), else 0.
func layoutGeneration(pods []observedPod, leases map[string]*coordinationv1.Lease, label string) int32 {
	current, newest := int32(-1), int32(-1)
	see := func(topo string, generation int32) {
		newest = max(newest, generation)
		if topo == label {
			// Terminating pods count: a replacement takes the same name, and so the
			// same Lease and its resume state.
			current = max(current, generation)
		}
	}
	for _, p := range pods {
		see(p.topology, p.generation)
	}
	for _, l := range leases {
		g, err := strconv.ParseInt(l.Labels[shardkeeperv1.LabelGeneration], 10, 32)
		if topo := l.Labels[shardkeeperv1.LabelTopology]; topo != "" && err == nil && g >= 0 {
			see(topo, int32(g))
		}
	}
	switch {
	case current >= 0:
		return current
	case newest >= 0:
		return newest + 1
	}
	return 0
}

// layoutOf is the layout a pod runs by its own label (an old layout's pod during a
// reshard), or fallback when the label does not say.
func layoutOf(p observedPod, fallback topology) topology {
	if topo, ok := topologyFromLabel(p.topology); ok {
		return topo
	}
	return fallback
}

// shardIDsOf lists a pod's shard IDs by its own layout; none when its labels do not say.
func shardIDsOf(p observedPod, fallback topology) []int32 {
	topo := layoutOf(p, fallback)
	if p.group < 0 || p.group >= topo.groups() {
		return nil
	}
	return topo.shardList(p.group)
}
