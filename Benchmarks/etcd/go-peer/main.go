// Command go-peer measures etcd's own Go client (clientv3/concurrency) on the three workloads of
// the etcd benchmark, so that swift-coordination's figures can be read against it. It prints one
// line per figure:
//
//	go uncontended ops_per_s=812.3 p50_ms=1.20 p99_ms=2.00 acquire_p50_ms=0.60 cycles=3000 cpu_us_per_cycle=180.0
//	go uncontended_rpcs per_cycle=2.000 Txn=1.000 DeleteRange=1.000 Range=0.000 Put=0.000 client_per_cycle=2.000
//	go contended contenders=16 grants_per_s=160.0 handoff_p50_ms=… handoff_p99_ms=… grants=… seconds=10.0
//	go contended_rpcs per_grant=… Txn=… DeleteRange=… Range=…
//	go leader_handoff p50_ms=… p99_ms=… rounds=300
//	go round_trip range_p50_ms=… range_p99_ms=… put_p50_ms=… put_p99_ms=… calls=3000
//
// Run by ../run; see ../README.md for what each workload measures.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
	"go.etcd.io/etcd/mvcc/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

var (
	endpoint          = flag.String("endpoint", os.Getenv("ETCD_ENDPOINT"), "one etcd member, host:port (loopback)")
	prefix            = flag.String("prefix", "bench/go", "key prefix of this run")
	warmupCycles      = flag.Int("warmup-cycles", 300, "uncontended lock cycles before measuring")
	cycles            = flag.Int("cycles", 3000, "uncontended lock cycles measured")
	contenders        = flag.Int("contenders", 16, "contenders on the one contended lock")
	contendedWarmup   = flag.Duration("contended-warmup", 2*time.Second, "contended run before measuring")
	contendedDuration = flag.Duration("contended-duration", 10*time.Second, "contended run measured")
	leaderWarmup      = flag.Int("leader-warmup", 20, "leader handoffs before measuring")
	leaderRounds      = flag.Int("leader-rounds", 300, "leader handoffs measured")
	settle            = flag.Duration("settle", 20*time.Millisecond, "pause between leader rounds, not measured")
	sessionTTL        = flag.Int("session-ttl", 30, "session TTL in seconds")
	only              = flag.String("only", "", "comma-separated workloads to run (uncontended, contended, leader_handoff, round_trip); empty: all")
)

// rpcCounter counts the unary RPCs a client sends, by method (…/KV/Txn → Txn).
type rpcCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *rpcCounter) interceptor(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	name := method[strings.LastIndex(method, "/")+1:]
	c.mu.Lock()
	c.counts[name]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *rpcCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func newClient(counter *rpcCounter) *clientv3.Client {
	// Errors only: cancelling the observer at the end is logged as a warning otherwise.
	logConfig := zap.NewProductionConfig()
	logConfig.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	config := clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second, LogConfig: &logConfig}
	if counter != nil {
		config.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(counter.interceptor)}
	}
	client, err := clientv3.New(config)
	check(err, "connect")
	return client
}

func newSession(client *clientv3.Client) *concurrency.Session {
	session, err := concurrency.NewSession(client, concurrency.WithTTL(*sessionTTL))
	check(err, "session")
	return session
}

func check(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: %s: %v\n", what, err)
		os.Exit(1)
	}
}

// percentile is the nearest-rank percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	index := int(math.Ceil(q*float64(len(sorted)))) - 1
	if index < 0 {
		index = 0
	}
	return float64(sorted[index]) / float64(time.Millisecond)
}

func sortDurations(samples []time.Duration) []time.Duration {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return samples
}

// serverCounts reads etcd's own count of finished unary RPCs, by method, from /metrics.
func serverCounts() map[string]float64 {
	response, err := http.Get("http://" + *endpoint + "/metrics")
	check(err, "metrics")
	defer response.Body.Close()
	counts := map[string]float64{}
	scanner := bufio.NewScanner(response.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "grpc_server_handled_total{") || !strings.Contains(line, `grpc_type="unary"`) {
			continue
		}
		start := strings.Index(line, `grpc_method="`)
		if start < 0 {
			continue
		}
		rest := line[start+len(`grpc_method="`):]
		method := rest[:strings.Index(rest, `"`)]
		value, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		check(err, "metrics value")
		counts[method] += value
	}
	return counts
}

// processCPU: the CPU time this process has used so far, user and system, all threads (getrusage).
func processCPU() time.Duration {
	var usage syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &usage), "getrusage")
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// uncontended: one client, one session, Lock+Unlock in a loop.
func uncontended() {
	counter := &rpcCounter{counts: map[string]int{}}
	client := newClient(counter)
	defer client.Close()
	session := newSession(client)
	defer session.Close()
	mutex := concurrency.NewMutex(session, *prefix+"/lock-uncontended")
	ctx := context.Background()
	for i := 0; i < *warmupCycles; i++ {
		check(mutex.Lock(ctx), "lock")
		check(mutex.Unlock(ctx), "unlock")
	}

	samples := make([]time.Duration, *cycles)
	locks := make([]time.Duration, *cycles)
	serverBefore := serverCounts()
	clientBefore := counter.snapshot()
	cpuBefore := processCPU()
	start := time.Now()
	for i := range samples {
		began := time.Now()
		check(mutex.Lock(ctx), "lock")
		locks[i] = time.Since(began)
		check(mutex.Unlock(ctx), "unlock")
		samples[i] = time.Since(began)
	}
	elapsed := time.Since(start)
	cpu := processCPU() - cpuBefore
	clientAfter := counter.snapshot()
	serverAfter := serverCounts()

	sortDurations(samples)
	sortDurations(locks)
	fmt.Printf("go uncontended ops_per_s=%.1f p50_ms=%.3f p99_ms=%.3f acquire_p50_ms=%.3f cycles=%d cpu_us_per_cycle=%.1f\n",
		float64(*cycles)/elapsed.Seconds(), percentile(samples, 0.50), percentile(samples, 0.99), percentile(locks, 0.50), *cycles,
		float64(cpu.Microseconds())/float64(*cycles))

	n := float64(*cycles)
	perCycle := func(method string) float64 { return (serverAfter[method] - serverBefore[method]) / n }
	total := 0.0
	for method := range serverAfter {
		total += perCycle(method)
	}
	clientTotal := 0
	for method, count := range clientAfter {
		clientTotal += count - clientBefore[method]
	}
	fmt.Printf("go uncontended_rpcs per_cycle=%.3f Txn=%.3f DeleteRange=%.3f Range=%.3f Put=%.3f client_per_cycle=%.3f\n",
		total, perCycle("Txn"), perCycle("DeleteRange"), perCycle("Range"), perCycle("Put"), float64(clientTotal)/n)
}

// contended: N contenders, each with its own client and session, loop Lock/Unlock on one mutex.
// Only the holder touches lastRelease, so a grant reads the release of the holder before it.
func contended() {
	type contender struct {
		client  *clientv3.Client
		session *concurrency.Session
	}
	all := make([]contender, *contenders)
	for i := range all {
		all[i].client = newClient(nil)
		all[i].session = newSession(all[i].client)
	}
	origin := time.Now()
	var (
		lastRelease  int64 = -1 // ns since origin; written by the holder only
		measuring    int32
		stopping     int32
		mu           sync.Mutex
		handoffs     []time.Duration
		grants       int
		measureStart time.Time
		measureEnd   time.Time
	)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range all {
		wg.Add(1)
		go func(c contender) {
			defer wg.Done()
			mutex := concurrency.NewMutex(c.session, *prefix+"/lock-contended")
			ctx := context.Background()
			<-gate
			for {
				check(mutex.Lock(ctx), "lock")
				granted := int64(time.Since(origin))
				previous := atomic.LoadInt64(&lastRelease)
				if atomic.LoadInt32(&measuring) == 1 && previous >= 0 {
					mu.Lock()
					handoffs = append(handoffs, time.Duration(granted-previous))
					grants++
					mu.Unlock()
				}
				done := atomic.LoadInt32(&stopping) == 1
				atomic.StoreInt64(&lastRelease, int64(time.Since(origin)))
				check(mutex.Unlock(ctx), "unlock")
				if done {
					return
				}
			}
		}(all[i])
	}
	close(gate)
	time.Sleep(*contendedWarmup)
	serverBefore := serverCounts()
	mu.Lock()
	measureStart = time.Now()
	atomic.StoreInt32(&measuring, 1)
	mu.Unlock()
	time.Sleep(*contendedDuration)
	mu.Lock()
	atomic.StoreInt32(&measuring, 0)
	measureEnd = time.Now()
	counted := grants
	samples := append([]time.Duration(nil), handoffs...)
	mu.Unlock()
	serverAfter := serverCounts()
	// Drain: every contender takes the lock once more and leaves.
	atomic.StoreInt32(&stopping, 1)
	wg.Wait()
	for _, c := range all {
		c.session.Close()
		c.client.Close()
	}

	sortDurations(samples)
	seconds := measureEnd.Sub(measureStart).Seconds()
	fmt.Printf("go contended contenders=%d grants_per_s=%.1f handoff_p50_ms=%.3f handoff_p99_ms=%.3f grants=%d seconds=%.1f\n",
		*contenders, float64(counted)/seconds, percentile(samples, 0.50), percentile(samples, 0.99), counted, seconds)
	perGrant := func(method string) float64 {
		return (serverAfter[method] - serverBefore[method]) / math.Max(float64(counted), 1)
	}
	total := 0.0
	for method := range serverAfter {
		total += perGrant(method)
	}
	fmt.Printf("go contended_rpcs per_grant=%.3f Txn=%.3f DeleteRange=%.3f Range=%.3f\n",
		total, perGrant("Txn"), perGrant("DeleteRange"), perGrant("Range"))
}

// leaderHandoff: two candidates, an observer; the leader resigns right after the other candidate
// has joined the line, and the observer's Observe channel reports the new leader.
func leaderHandoff() {
	name := *prefix + "/election"
	clients := make([]*clientv3.Client, 4)
	sessions := make([]*concurrency.Session, 3)
	for i := range clients {
		clients[i] = newClient(nil)
	}
	for i := range sessions {
		sessions[i] = newSession(clients[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	observed := concurrency.NewElection(sessions[2], name).Observe(ctx)
	// Tells when a candidate's key is in line (not measured).
	joined := clients[3].Watch(ctx, name+"/", clientv3.WithPrefix())
	waitLeader := func(value string) {
		for response := range observed {
			if len(response.Kvs) > 0 && string(response.Kvs[0].Value) == value {
				return
			}
		}
		check(fmt.Errorf("observe channel closed"), "observe")
	}
	waitJoined := func(key string) {
		for response := range joined {
			for _, event := range response.Events {
				if event.Type == mvccpb.PUT && string(event.Kv.Key) == key {
					return
				}
			}
		}
		check(fmt.Errorf("watch closed"), "watch")
	}

	values := []string{"a", "b"}
	elections := []*concurrency.Election{
		concurrency.NewElection(sessions[0], name),
		concurrency.NewElection(sessions[1], name),
	}
	keys := []string{
		fmt.Sprintf("%s/%x", name, sessions[0].Lease()),
		fmt.Sprintf("%s/%x", name, sessions[1].Lease()),
	}
	check(elections[0].Campaign(ctx, values[0]), "campaign")
	waitLeader(values[0])
	leader := 0
	samples := make([]time.Duration, 0, *leaderRounds)
	for round := 0; round < *leaderWarmup+*leaderRounds; round++ {
		follower := 1 - leader
		time.Sleep(*settle)
		campaigned := make(chan error, 1)
		go func() { campaigned <- elections[follower].Campaign(ctx, values[follower]) }()
		waitJoined(keys[follower])
		began := time.Now()
		check(elections[leader].Resign(ctx), "resign")
		waitLeader(values[follower])
		if round >= *leaderWarmup {
			samples = append(samples, time.Since(began))
		}
		check(<-campaigned, "campaign")
		leader = follower
	}
	check(elections[leader].Resign(ctx), "resign")
	cancel()
	for _, session := range sessions {
		session.Close()
	}
	for _, client := range clients {
		client.Close()
	}

	sortDurations(samples)
	fmt.Printf("go leader_handoff p50_ms=%.3f p99_ms=%.3f rounds=%d\n",
		percentile(samples, 0.50), percentile(samples, 0.99), len(samples))
}

// roundTrip is not a target: the round trip of one plain RPC (Get = Range, Put) on a warm client,
// to tell the cost of the transport from the cost of the lock recipe.
func roundTrip() {
	client := newClient(nil)
	defer client.Close()
	ctx := context.Background()
	key := *prefix + "/round-trip"
	_, err := client.Put(ctx, key, "v")
	check(err, "put")
	for i := 0; i < *warmupCycles; i++ {
		_, err := client.Get(ctx, key)
		check(err, "get")
	}
	ranges := make([]time.Duration, *cycles)
	puts := make([]time.Duration, *cycles)
	for i := range ranges {
		began := time.Now()
		_, err := client.Get(ctx, key)
		check(err, "get")
		ranges[i] = time.Since(began)
	}
	for i := range puts {
		began := time.Now()
		_, err := client.Put(ctx, key, "v")
		check(err, "put")
		puts[i] = time.Since(began)
	}
	_, err = client.Delete(ctx, key)
	check(err, "delete")
	sortDurations(ranges)
	sortDurations(puts)
	fmt.Printf("go round_trip range_p50_ms=%.3f range_p99_ms=%.3f put_p50_ms=%.3f put_p99_ms=%.3f calls=%d\n",
		percentile(ranges, 0.50), percentile(ranges, 0.99), percentile(puts, 0.50), percentile(puts, 0.99), *cycles)
}

func main() {
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "go-peer: give -endpoint host:port or set ETCD_ENDPOINT")
		os.Exit(2)
	}
	if !strings.HasPrefix(*endpoint, "127.") {
		fmt.Fprintln(os.Stderr, "go-peer: only loopback endpoints (127.x.x.x) are allowed")
		os.Exit(2)
	}
	workloads := []struct {
		name string
		run  func()
	}{{"uncontended", uncontended}, {"contended", contended}, {"leader_handoff", leaderHandoff}, {"round_trip", roundTrip}}
	selected := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name != "" {
			selected[name] = true
		}
	}
	for _, workload := range workloads {
		if len(selected) == 0 || selected[workload.name] {
			workload.run()
		}
	}
}
