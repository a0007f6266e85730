package botruntime

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// Defaults of the shared identify buckets.
const (
	// DefaultIdentifyMargin is added to Discord's 5 s per bucket. The holder sends its
	// identify within half of it after taking the bucket, or gives the turn up; the other
	// half absorbs network delay to Discord and clock differences between nodes.
	DefaultIdentifyMargin = 500 * time.Millisecond
	// DefaultIdentifyOrderGrace is how long a free bucket is kept for the shard whose turn
	// it is (the next shard ID of the bucket) before any waiting shard may take it.
	DefaultIdentifyOrderGrace = time.Second
	// identifyAPIPatience is how long the API server may fail before a shard identifies on
	// the in-process limiter alone: an outage of Kubernetes must not keep a bot offline.
	identifyAPIPatience = 15 * time.Second
)

// leaseIdentifyLimiter shares Discord's identify buckets between all pods of a bot. Bucket
// b is the Lease "<bot>-identify<b>". A shard takes its bucket by an optimistic update that
// makes it the holder with acquireTime now; the bucket is then taken for interval+margin
// from that time, whatever happens to the holder, so a crashed holder blocks its bucket
// for one window at most. Shards of a bucket go in shard ID order when they are all
// waiting, as Discord asks. Resumes never come here.
//
// Times on the Lease are the holder's clock: node clocks and network delays to Discord
// are assumed to differ by less than half the margin (NTP keeps clocks far closer). API
// calls are bounded by context deadlines, which are wall times whatever clock the
// limiter runs on.
type leaseIdentifyLimiter struct {
	client         kubernetes.Interface
	namespace      string
	botName        string
	holder         string // the pod
	maxConcurrency int
	shardCount     int
	interval       time.Duration
	margin         time.Duration
	orderGrace     time.Duration
	clock          clock.Clock
	log            logr.Logger
	// local spaces identifies within this process when the API server cannot be reached.
	local IdentifyLimiter

	mu      sync.Mutex
	failing bool
	// future remembers, per bucket, an acquireTime ahead of this process's clock and
	// when this process first saw it (see acquiredAt).
	future map[int]futureAcquire
}

type futureAcquire struct{ acquire, seenAt time.Time }

// acquiredAt is when the bucket was taken, as far as this process can trust it. A holder
// whose clock runs ahead writes an acquireTime in the future; taken at face value it would
// block the bucket for the whole clock error (an hour ahead: an hour blocked). Such a time
// counts from when this process first saw it, so it costs at most one window.
func (l *leaseIdentifyLimiter) acquiredAt(bucket int, lease *coordinationv1.Lease, now time.Time) (time.Time, bool) {
	if lease.Spec.AcquireTime == nil {
		return time.Time{}, false
	}
	at := lease.Spec.AcquireTime.Time
	if !at.After(now) {
		return at, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.future == nil {
		l.future = map[int]futureAcquire{}
	}
	seen, ok := l.future[bucket]
	if !ok || !seen.acquire.Equal(at) {
		seen = futureAcquire{acquire: at, seenAt: now}
		l.future[bucket] = seen
	}
	return seen.seenAt, true
}

// newIdentifyLimiter shares buckets through Leases when the runtime has API access and
// knows its bot, and spaces identifies within the process otherwise.
func newIdentifyLimiter(cfg Config, kube kubernetes.Interface, log logr.Logger, clk clock.Clock) IdentifyLimiter {
	interval := cfg.IdentifyInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	local := newLocalIdentifyLimiter(cfg.MaxConcurrency, interval, clk)
	if kube == nil || cfg.BotName == "" || cfg.Namespace == "" || cfg.PodName == "" {
		return local
	}
	margin := cfg.IdentifyMargin
	if margin <= 0 {
		margin = DefaultIdentifyMargin
	}
	return &leaseIdentifyLimiter{
		client: kube, namespace: cfg.Namespace, botName: cfg.BotName, holder: cfg.PodName,
		maxConcurrency: max(cfg.MaxConcurrency, 1), shardCount: cfg.ShardCount,
		interval: interval, margin: margin, orderGrace: DefaultIdentifyOrderGrace,
		clock: clk, log: log, local: local,
	}
}

func (l *leaseIdentifyLimiter) window() time.Duration { return l.interval + l.margin }

func (l *leaseIdentifyLimiter) Wait(ctx context.Context, shard int) error {
	return l.waitInQueue(ctx, shard, func(identifyPlace) {})
}

// waitInQueue is Wait that reports the shard's place in its bucket whenever it looks.
func (l *leaseIdentifyLimiter) waitInQueue(ctx context.Context, shard int, report func(identifyPlace)) error {
	bucket := shard % l.maxConcurrency
	name := shardkeeperv1.IdentifyBucketLeaseName(l.botName, bucket)
	leases := l.client.CoordinationV1().Leases(l.namespace)
	waitingSince := l.clock.Now()
	var failingSince time.Time
	for {
		// No call may outlast a bucket window: its answer would be stale anyway.
		getCtx, cancel := context.WithTimeout(ctx, l.window())
		lease, err := leases.Get(getCtx, name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) {
			// The operator creates bucket Leases (bot pods may not); without it (a bot
			// run by hand), the first shard that needs one does.
			lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: l.namespace,
				Labels: map[string]string{shardkeeperv1.LabelBot: l.botName, shardkeeperv1.LabelIdentifyBucket: strconv.Itoa(bucket)}}}
			err = nil
		}
		if err == nil {
			report(l.place(shard, bucket, lease))
			var wait time.Duration
			if wait, err = l.tryTake(ctx, lease, bucket, shard, waitingSince); err == nil {
				l.apiWorks()
				if wait == 0 {
					return nil
				}
				if !sleep(ctx, l.clock, wait) {
					return ctx.Err()
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue // another shard took it first: look again
		}
		if failingSince.IsZero() {
			failingSince = l.clock.Now()
		}
		l.apiFails(err)
		if l.clock.Since(failingSince) > identifyAPIPatience {
			l.log.Info("identifying without the shared bucket: the API server keeps failing", "shard", shard, "bucket", bucket)
			return waitIdentifyTurn(ctx, l.local, shard, report)
		}
		if !sleep(ctx, l.clock, time.Second) {
			return ctx.Err()
		}
	}
}

// tryTake takes the bucket for shard if it is free and this shard's turn, and returns
// zero; otherwise it returns how long to wait before looking again.
func (l *leaseIdentifyLimiter) tryTake(ctx context.Context, lease *coordinationv1.Lease, bucket, shard int, waitingSince time.Time) (time.Duration, error) {
	now := l.clock.Now()
	acquired, taken := l.acquiredAt(bucket, lease, now)
	if taken {
		if freeAt := acquired.Add(l.window()); now.Before(freeAt) {
			return freeAt.Sub(now), nil
		}
	}
	if !l.isNext(shard, bucket, lease) {
		// Hold back for the shard whose turn it is, counted from when the bucket became
		// free or from when this shard started waiting, whichever is later.
		from := waitingSince
		if taken && acquired.Add(l.window()).After(from) {
			from = acquired.Add(l.window())
		}
		if at := from.Add(l.orderGrace); now.Before(at) {
			return at.Sub(now), nil
		}
	}

	took := metav1.NewMicroTime(now)
	lease = lease.DeepCopy()
	lease.Spec.HolderIdentity = ptr.To(l.holder + "/" + strconv.Itoa(shard))
	lease.Spec.AcquireTime = &took
	lease.Spec.RenewTime = &took
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(math.Ceil(l.window().Seconds())))
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard] = strconv.Itoa(shard)
	var err error
	ctx, cancel := context.WithTimeout(ctx, l.window())
	defer cancel()
	if lease.ResourceVersion == "" {
		_, err = l.client.CoordinationV1().Leases(l.namespace).Create(ctx, lease, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			err = fmt.Errorf("identify bucket Lease %s does not exist and this pod may not create it (the operator makes "+
				"every bucket of the bot's max_concurrency); if it stays missing, shards identify on this process's limiter: %w", lease.Name, err)
		}
	} else {
		_, err = l.client.CoordinationV1().Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return 0, err
	}
	if late := l.clock.Since(now); late > l.margin/2 {
		// The write took so long that Discord might see this identify too close to the next
		// holder's: let the turn pass and try again after it.
		l.log.Info("giving up an identify turn: taking the bucket was slow", "shard", shard, "bucket", bucket, "took", late)
		return now.Add(l.window()).Sub(l.clock.Now()), nil
	}
	l.log.V(1).Info("took the identify bucket", "shard", shard, "bucket", bucket, "waited", now.Sub(waitingSince))
	return 0, nil
}

// isNext says whether it is shard's turn in its bucket.
func (l *leaseIdentifyLimiter) isNext(shard, bucket int, lease *coordinationv1.Lease) bool {
	return l.place(shard, bucket, lease).ahead == 0
}

// place is shard's place in its bucket's queue. Turns go in shard ID order from the
// bucket's next shard ID after the one that identified last (wrapping around), or from the
// bucket's first shard when none has. The turns ahead are an upper bound (shards that are
// connected take none), and each takes at most a window plus the order grace.
func (l *leaseIdentifyLimiter) place(shard, bucket int, lease *coordinationv1.Lease) identifyPlace {
	next := bucket
	if last, err := strconv.Atoi(lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard]); err == nil && last >= 0 {
		if next = last + l.maxConcurrency; next >= l.shardCount {
			next = bucket
		}
	}
	inBucket := max((l.shardCount-bucket+l.maxConcurrency-1)/l.maxConcurrency, 1)
	ahead := ((shard-next)/l.maxConcurrency%inBucket + inBucket) % inBucket
	return identifyPlace{ahead: ahead, step: l.window() + l.orderGrace}
}

func (l *leaseIdentifyLimiter) apiFails(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		l.failing = true
		l.log.Error(err, "cannot use the identify bucket Lease; retrying (logged once until it works again)")
	}
}

func (l *leaseIdentifyLimiter) apiWorks() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing {
		l.failing = false
		l.log.Info("identify bucket Leases work again")
	}
}
