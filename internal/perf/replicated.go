package perf

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReplicatedConfig sizes the durable grant comparison on a replicated
// stream.
type ReplicatedConfig struct {
	Dir     string // parent of the nodes' store directories
	Callers int    // concurrent callers
	Grants  int    // grants with group commit, and bare async publishes, per round
	// Rounds is how many times every run is repeated, one after the
	// other, on the same cluster; default 1.
	Rounds int
	// Group configures group commit; nil uses the defaults.
	Group *ledger.GroupCommit
}

// ReplicatedResult holds the rounds of the replicated comparison, all on
// one three-node cluster whose nodes fsync every write, against streams of
// three replicas led by the node the client is connected to.
type ReplicatedResult struct {
	Callers int
	Window  int // the bare async publishes' unacknowledged messages at most
	Rounds  []ReplicatedRound
}

// ReplicatedRound is one round of each run of the replicated comparison.
type ReplicatedRound struct {
	// Group: Ledger.Append of grants by Callers callers with group
	// commit.
	Group      Run
	GroupStats ledger.GroupCommitStats // of this round
	// Alone: the same, each event published alone.
	Alone Run
	// BatchSize is the size of the bare atomic batches: the round's mean
	// group commit batch, rounded.
	BatchSize int
	// BareBatch: atomic batches of BatchSize grant-sized messages, one at
	// a time; a latency is one batch's.
	BareBatch Run
	// BareBatchRead: the same batches, on subjects an ordered consumer
	// reads as they are stored, as consentd's projector reads every
	// event it appends.
	BareBatchRead Run
	// BareSync: Callers goroutines each publishing a grant-sized message
	// with an expected subject sequence and a message id, one request at
	// a time.
	BareSync Run
	// BareAsync: the same messages published asynchronously by one
	// goroutine with up to Window unacknowledged; a latency is from the
	// publish to its ack.
	BareAsync Run
}

// BareBatchRate is the bare atomic batches' messages per second.
func (r ReplicatedRound) BareBatchRate() float64 {
	return r.BareBatch.Rate() * float64(r.BatchSize)
}

// GroupCPUPerGrant is the process's CPU time per grant with group commit:
// the three servers', the ledger's and the projector's together.
func (r ReplicatedRound) GroupCPUPerGrant() time.Duration {
	return r.Group.CPUPer(len(r.Group.Latencies))
}

// BareBatchReadRate is the messages per second of the bare atomic
// batches read by a consumer.
func (r ReplicatedRound) BareBatchReadRate() float64 {
	return r.BareBatchRead.Rate() * float64(r.BatchSize)
}

// BareBatchReadCPUPerMsg is the process's CPU time per message of the
// bare atomic batches read by a consumer.
func (r ReplicatedRound) BareBatchReadCPUPerMsg() time.Duration {
	return r.BareBatchRead.CPUPer(len(r.BareBatchRead.Latencies) * r.BatchSize)
}

// BareBatchCPUPerMsg is the process's CPU time per message of the bare
// atomic batches.
func (r ReplicatedRound) BareBatchCPUPerMsg() time.Duration {
	return r.BareBatch.CPUPer(len(r.BareBatch.Latencies) * r.BatchSize)
}

// Merged returns the rounds' runs as one round: each run's latencies
// together and wall times added, the group commit counts added, and the
// batch size a mean weighted by the batches.
func (r ReplicatedResult) Merged() ReplicatedRound {
	var m ReplicatedRound
	var msgs int
	for _, x := range r.Rounds {
		m.Group = m.Group.merge(x.Group)
		m.Alone = m.Alone.merge(x.Alone)
		m.BareBatch = m.BareBatch.merge(x.BareBatch)
		m.BareBatchRead = m.BareBatchRead.merge(x.BareBatchRead)
		m.BareSync = m.BareSync.merge(x.BareSync)
		m.BareAsync = m.BareAsync.merge(x.BareAsync)
		msgs += len(x.BareBatch.Latencies) * x.BatchSize
		m.GroupStats.Batches += x.GroupStats.Batches
		m.GroupStats.Batched += x.GroupStats.Batched
		m.GroupStats.Singles += x.GroupStats.Singles
		m.GroupStats.Refused += x.GroupStats.Refused
		m.GroupStats.Abandoned += x.GroupStats.Abandoned
	}
	m.BatchSize = int(math.Round(float64(msgs) / float64(max(len(m.BareBatch.Latencies), 1))))
	return m
}

// Median returns the median over the rounds of f.
func (r ReplicatedResult) Median(f func(ReplicatedRound) float64) float64 {
	xs := make([]float64, len(r.Rounds))
	for i, x := range r.Rounds {
		xs[i] = f(x)
	}
	return Median(xs)
}

// Replicated runs the durable grant comparison on a three-node cluster
// with a stream of three replicas, cfg.Rounds times, the cluster in this
// process (ReplicatedServers).
func Replicated(ctx context.Context, cfg ReplicatedConfig) (ReplicatedResult, error) {
	servers, err := StartReplicatedServers(ctx, cfg.Dir)
	if err != nil {
		return ReplicatedResult{Callers: cfg.Callers, Window: cfg.Callers}, err
	}
	defer servers.Close()
	return ReplicatedOn(ctx, servers.URL, cfg)
}

// ReplicatedServers is a three-node cluster whose nodes fsync every
// write, with the comparison's two streams of three replicas (the
// ledger's and a bare one) led by the same node, whose client URL is URL.
type ReplicatedServers struct {
	URL     string
	cluster *Cluster
}

// StartReplicatedServers starts the cluster and its streams, with the
// nodes' stores under dir. Close stops them.
func StartReplicatedServers(ctx context.Context, dir string) (*ReplicatedServers, error) {
	c, err := StartCluster(dir, 3)
	if err != nil {
		return nil, err
	}
	leader, err := createReplicatedStreams(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &ReplicatedServers{URL: leader.ClientURL(), cluster: c}, nil
}

// Close stops the cluster.
func (s *ReplicatedServers) Close() { s.cluster.Close() }

// createReplicatedStreams creates the ledger's stream and the bare one on
// c, both of three replicas, and returns the node that leads both.
func createReplicatedStreams(ctx context.Context, c *Cluster) (*server.Server, error) {
	nc, err := nats.Connect(c.Nodes[0].ClientURL())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{Replicas: 3})
	if err != nil {
		return nil, err
	}
	bareCfg := ledger.StreamOptions{Name: bareStream, Replicas: 3}.Config()
	bareCfg.Subjects = []string{"bare.>"}
	if _, err := js.CreateStream(ctx, bareCfg); err != nil {
		return nil, err
	}
	leader, err := c.StreamLeader(stream.CachedInfo().Config.Name)
	if err != nil {
		return nil, err
	}
	return leader, c.MoveStreamLeader(ctx, nc, bareStream, leader)
}

// bareStream is the name of the comparison's bare stream.
const bareStream = "BARE"

// ReplicatedOn runs the durable grant comparison against the servers of
// StartReplicatedServers (in this process or another), connecting over
// loopback TCP to url, the node that leads both streams, as consentd
// connects to a node of its cluster: a publish is not routed through a
// follower first.
func ReplicatedOn(ctx context.Context, url string, cfg ReplicatedConfig) (ReplicatedResult, error) {
	res := ReplicatedResult{Callers: cfg.Callers, Window: cfg.Callers}
	nc, err := nats.Connect(url)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	stream, err := js.Stream(ctx, wire.DefaultStream)
	if err != nil {
		return res, err
	}
	l, err := startGrantLedgers(ctx, js, stream, cfg.Dir, cfg.Group)
	if err != nil {
		return res, err
	}
	defer l.stop()
	alone, grouped, payload := l.alone, l.grouped, l.payload

	for round := range max(cfg.Rounds, 1) {
		r, err := replicatedRound(ctx, cfg, res.Window, round, grouped, alone, js, payload)
		if err != nil {
			return res, err
		}
		res.Rounds = append(res.Rounds, r)
	}
	return res, nil
}

// replicatedRound runs each run of the replicated comparison once, with
// subjects of its own.
func replicatedRound(ctx context.Context, cfg ReplicatedConfig, window, round int, grouped, alone *ledger.Ledger,
	js jetstream.JetStream, payload []byte) (ReplicatedRound, error) {
	var r ReplicatedRound
	var err error
	tag := strconv.Itoa(round)
	before, _ := grouped.GroupCommitStats()
	if r.Group, err = Drive(cfg.Callers, cfg.Grants, func(i int) error {
		_, err := grouped.Append(ctx, events.KindGrant, grantCommand("group-"+tag, i))
		return err
	}); err != nil {
		return r, fmt.Errorf("grant with group commit: %w", err)
	}
	after, _ := grouped.GroupCommitStats()
	r.GroupStats = ledger.GroupCommitStats{
		Batches: after.Batches - before.Batches, Batched: after.Batched - before.Batched,
		Singles: after.Singles - before.Singles, Refused: after.Refused - before.Refused,
		Abandoned: after.Abandoned - before.Abandoned,
	}
	r.BatchSize = max(int(math.Round(float64(r.GroupStats.Batched)/float64(max(r.GroupStats.Batches, 1)))), 1)

	slow := max(cfg.Grants/4, cfg.Callers*4)
	if r.Alone, err = Drive(cfg.Callers, slow, func(i int) error {
		_, err := alone.Append(ctx, events.KindGrant, grantCommand("alone-"+tag, i))
		return err
	}); err != nil {
		return r, fmt.Errorf("grant: %w", err)
	}
	batches := max(cfg.Grants/r.BatchSize, 4)
	if r.BareBatch, err = Drive(1, batches, func(i int) error {
		return bareBatch(ctx, js.Conn(), "bare.batch."+tag+"."+strconv.Itoa(i), r.BatchSize, payload)
	}); err != nil {
		return r, fmt.Errorf("bare atomic batch: %w", err)
	}
	stopReading, err := readAsStored(ctx, js, "bare.read."+tag+".>")
	if err != nil {
		return r, err
	}
	r.BareBatchRead, err = Drive(1, batches, func(i int) error {
		return bareBatch(ctx, js.Conn(), "bare.read."+tag+"."+strconv.Itoa(i), r.BatchSize, payload)
	})
	stopReading()
	if err != nil {
		return r, fmt.Errorf("bare atomic batch read by a consumer: %w", err)
	}
	if r.BareSync, err = Drive(cfg.Callers, slow, func(i int) error {
		_, err := js.PublishMsg(ctx, bareMsg("bare.single."+tag+"."+strconv.Itoa(i), payload))
		return err
	}); err != nil {
		return r, fmt.Errorf("bare publish: %w", err)
	}
	if r.BareAsync, err = publishAsync(ctx, js, "bare.async."+tag, cfg.Grants, window, payload); err != nil {
		return r, fmt.Errorf("bare async publish: %w", err)
	}
	return r, nil
}

// readAsStored reads the bare stream's new messages on filter with an
// ordered consumer, doing nothing with them, until stop is called.
func readAsStored(ctx context.Context, js jetstream.JetStream, filter string) (stop func(), err error) {
	stream, err := js.Stream(ctx, bareStream)
	if err != nil {
		return nil, err
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(jetstream.Msg) {})
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}

// publishAsync publishes n grant-sized messages, on subjects prefix.i,
// from one goroutine with
// PublishMsgAsync, at most window of them unacknowledged, and times each
// from its publish to its ack.
func publishAsync(ctx context.Context, js jetstream.JetStream, prefix string, n, window int, payload []byte) (Run, error) {
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, n)
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, window)
	start, cpu := time.Now(), processCPU()
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return Run{}, ctx.Err()
		}
		t0 := time.Now()
		f, err := js.PublishMsgAsync(bareMsg(prefix+"."+strconv.Itoa(i), payload))
		if err != nil {
			<-slots
			wg.Wait()
			return Run{}, err
		}
		wg.Go(func() {
			defer func() { <-slots }()
			select {
			case <-f.Ok():
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			case err := <-f.Err():
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			case <-ctx.Done():
				mu.Lock()
				firstErr = cmp.Or(firstErr, ctx.Err())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r := Run{Latencies: lat, Elapsed: time.Since(start), CPU: processCPU() - cpu}
	slices.Sort(r.Latencies)
	return r, firstErr
}
