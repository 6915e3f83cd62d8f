package sim

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Fault is one fault-injection rule. A call matches when Method, Server and
// VolumeID all match (empty/zero fields match everything). A matching call is
// delayed by Latency and fails with Err when the rule says so:
//   - FailNext > 0: the next FailNext matching calls fail;
//   - Probability > 0: each matching call fails with that probability
//     (drawn from Config.Seed's random source);
//   - neither, but Err set: every matching call fails.
//
// With After unset the latency and the failure happen before the handler
// runs (the call has no effect). With After set they happen after it ran:
// the change is made but the caller sees the error (a lost response). With
// Mid set (copies only: VolumeCopy, VolumeEcShardsCopy) they happen halfway
// through the copy, e.g. to stop the server while the copy is half done.
type Fault struct {
	// Method is the short ("VacuumVolumeCommit") or full
	// ("/volume_server_pb.VolumeServer/VacuumVolumeCommit") method name.
	Method string
	// Server is a volume server's id ("host:httpPort") or gRPC address, or
	// MasterName.
	Server string
	// VolumeID restricts the rule to requests for that volume.
	VolumeID    uint32
	Latency     time.Duration
	Err         error // default: Unavailable "sim: injected fault"
	FailNext    int
	Probability float64
	After       bool
	Mid         bool
	// Pass makes a firing rule run OnFire (and count) without failing the
	// call: a hook at an exact step that leaves the call's outcome alone.
	Pass bool
	// Skip lets the first Skip matching calls through untouched (no
	// latency, no failure): "fail the third copy" is Skip 2, FailNext 1.
	Skip int
	// OnFire, if set, runs each time the rule fails a call, before the
	// call returns (outside the simulator's locks): a test's hook into an
	// exact step of an operation, e.g. to kill the worker running it.
	OnFire func()
}

// FaultHandle is an injected rule.
type FaultHandle struct {
	set       *faultSet
	f         Fault
	remaining int
	skipped   int
	fired     int
	removed   bool
}

type faultSet struct {
	mu    sync.Mutex
	rules []*FaultHandle
	rnd   *rand.Rand
	clock Clock // injected latency waits on it
}

func (fs *faultSet) init(seed int64, clock Clock) {
	fs.rnd = rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
	fs.clock = clock
}

// InjectFault adds a rule; it applies until removed.
func (c *Cluster) InjectFault(f Fault) *FaultHandle {
	if i := strings.LastIndexByte(f.Method, '/'); i >= 0 {
		f.Method = f.Method[i+1:]
	}
	h := &FaultHandle{set: &c.faults, f: f, remaining: f.FailNext}
	c.faults.mu.Lock()
	c.faults.rules = append(c.faults.rules, h)
	c.faults.mu.Unlock()
	return h
}

// ClearFaults removes every rule.
func (c *Cluster) ClearFaults() {
	c.faults.mu.Lock()
	for _, h := range c.faults.rules {
		h.removed = true
	}
	c.faults.rules = nil
	c.faults.mu.Unlock()
}

// Remove stops the rule.
func (h *FaultHandle) Remove() {
	fs := h.set
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h.removed = true
	for i, r := range fs.rules {
		if r == h {
			fs.rules = append(fs.rules[:i:i], fs.rules[i+1:]...)
			return
		}
	}
}

// Fired is how many calls the rule has failed.
func (h *FaultHandle) Fired() int {
	h.set.mu.Lock()
	defer h.set.mu.Unlock()
	return h.fired
}

// ident names the server an interceptor runs on.
type ident struct {
	id, grpcAddr string
	volume       bool // a volume server (not the master)
}

// phase is when a rule applies to a call.
type phase int

const (
	phaseBefore phase = iota
	phaseMid          // halfway through a copy
	phaseAfter
)

func (f *Fault) phase() phase {
	switch {
	case f.After:
		return phaseAfter
	case f.Mid:
		return phaseMid
	}
	return phaseBefore
}

func (fs *faultSet) decide(method string, who ident, vid uint32, at phase) (time.Duration, []func(), error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var lat time.Duration
	var err error
	var hooks []func()
	for _, h := range fs.rules {
		f := &h.f
		if f.phase() != at || (f.Method != "" && f.Method != method) ||
			(f.Server != "" && f.Server != who.id && f.Server != who.grpcAddr) ||
			(f.VolumeID != 0 && f.VolumeID != vid) {
			continue
		}
		if h.skipped < f.Skip {
			h.skipped++
			continue
		}
		lat += f.Latency
		if err != nil {
			continue
		}
		fail := false
		switch {
		case f.FailNext > 0:
			if h.remaining > 0 {
				h.remaining--
				fail = true
			}
		case f.Probability > 0:
			fail = fs.rnd.Float64() < f.Probability
		case f.Err != nil:
			fail = true
		}
		if fail && f.Pass {
			h.fired++
			if f.OnFire != nil {
				hooks = append(hooks, f.OnFire)
			}
			continue
		}
		if fail {
			h.fired++
			err = f.Err
			if err == nil {
				err = status.Error(codes.Unavailable, "sim: injected fault")
			}
			if f.OnFire != nil {
				hooks = append(hooks, f.OnFire)
			}
		}
	}
	return lat, hooks, err
}

func (fs *faultSet) apply(ctx context.Context, method string, who ident, vid uint32, at phase) error {
	lat, hooks, err := fs.decide(method, who, vid, at)
	for _, h := range hooks {
		h()
	}
	if lat > 0 {
		if werr := sleepCtx(ctx, fs.clock, lat); werr != nil {
			return werr
		}
	}
	return err
}

// sleepCtx waits d on clk or until ctx ends (then it returns the gRPC
// status of the context error).
func sleepCtx(ctx context.Context, clk Clock, d time.Duration) error {
	if d <= 0 {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		return nil
	}
	select {
	case <-clk.After(d):
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// mutating lists the volume-server methods recorded in the operation log.
var mutating = map[string]bool{
	"VacuumVolumeCompact": true, "VacuumVolumeCommit": true, "VacuumVolumeCleanup": true,
	"VolumeMarkReadonly": true, "VolumeMarkWritable": true, "VolumeDelete": true,
	"VolumeCopy": true, "VolumeTailReceiver": true,
	"VolumeEcShardsGenerate": true, "VolumeEcShardsCopy": true, "VolumeEcShardsMount": true,
	"VolumeEcShardsUnmount": true, "VolumeEcShardsDelete": true,
}

func shortMethod(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[i+1:]
	}
	return full
}

func volumeIDOf(req any) uint32 {
	if v, ok := req.(interface{ GetVolumeId() uint32 }); ok {
		return v.GetVolumeId()
	}
	return 0
}

func taskOf(ctx context.Context) (task, fence string) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", ""
	}
	vals := md.Get(TaskMetadataKey)
	if len(vals) == 0 {
		return "", ""
	}
	task, fence, _ = strings.Cut(vals[0], "/")
	return task, fence
}

func (c *Cluster) newGRPCServer(who ident) *grpc.Server {
	return grpc.NewServer(
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.ChainUnaryInterceptor(c.unaryInterceptor(who)),
		grpc.ChainStreamInterceptor(c.streamInterceptor(who)),
	)
}

func (c *Cluster) record(ctx context.Context, who ident, method string, vid uint32, start time.Time, err error) {
	if !who.volume || !mutating[method] {
		return
	}
	op := Op{VolumeID: vid, Server: who.id, Method: method, Start: start, End: time.Now()}
	op.TaskID, op.Fence = taskOf(ctx)
	if err != nil {
		op.Err = err.Error()
	}
	c.ops.add(op)
}

func (c *Cluster) unaryInterceptor(who ident) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method := shortMethod(info.FullMethod)
		c.countCall(method)
		vid := volumeIDOf(req)
		if err := c.faults.apply(ctx, method, who, vid, phaseBefore); err != nil {
			return nil, err
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		c.record(ctx, who, method, vid, start, err)
		if aerr := c.faults.apply(ctx, method, who, vid, phaseAfter); aerr != nil {
			return nil, aerr
		}
		return resp, err
	}
}

// interceptStream catches the request of a server-streaming call, which the
// generated handler reads first, to learn its volume id and inject faults.
type interceptStream struct {
	grpc.ServerStream
	c      *Cluster
	who    ident
	method string
	got    bool
	failed bool
	vid    uint32
	start  time.Time
}

func (w *interceptStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil || w.got {
		return err
	}
	w.got = true
	w.vid = volumeIDOf(m)
	if err := w.c.faults.apply(w.Context(), w.method, w.who, w.vid, phaseBefore); err != nil {
		w.failed = true
		return err
	}
	w.start = time.Now()
	return nil
}

func (c *Cluster) streamInterceptor(who ident) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		method := shortMethod(info.FullMethod)
		c.countCall(method)
		w := &interceptStream{ServerStream: ss, c: c, who: who, method: method}
		err := handler(srv, w)
		if !w.got || w.failed {
			return err
		}
		c.record(ss.Context(), who, method, w.vid, w.start, err)
		if aerr := c.faults.apply(ss.Context(), method, who, w.vid, phaseAfter); aerr != nil {
			return aerr
		}
		return err
	}
}
