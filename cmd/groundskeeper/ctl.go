package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const ctlUsage = `Usage: groundskeeper ctl --admin ADDR[,ADDR...] COMMAND [flags] [--json]

Commands:
  status                                   raft state of every admin
  tasks [--state S,...] [--type T,...] [--volume N]  list tasks
  task submit --type T --volume N [...]    submit a manual task (--wait: until it ends, showing progress)
  task show ID                             one task in full
  task cancel ID [--reason TEXT]           cancel a task; waits until it has ended (--no-wait: return at once)
  task retry ID                            submit a failed or cancelled task again (--wait: until it ends)
  workers                                  registered workers
  capacity --volume N[,N...]               master and projected volume sizes
  capacity --server ADDR[,ADDR...]         master and projected slots and bytes of servers
  capacity --watch --volume/--server ...   print each change of those projections until interrupted
  peers list                               raft members
  peers add ID RAFT_ADDR                   add a voter (start it first with the cluster's --peers, no --bootstrap)
  peers remove ID                          remove a member
  snapshot save FILE                       save a snapshot of the replicated state to FILE
  snapshot restore FILE                    replace the replicated state with a saved snapshot
  policy show [--format toml|json]         the maintenance policy (replicated: every admin answers alike)
  policy set KEY=VALUE...                  change it: paused=true|false, reason=TEXT, TYPE.enabled=true|false,
                                           TYPE.max_concurrent=N, caps.per_server=N, windows="sat,sun 1-6",
                                           exclude_servers=a,b, thresholds.repair_after=10m, ... (README)
  policy edit FILE                         set the whole policy from a file policy show --format printed
  policy history                           its last 50 changes: who, when, what
  pause [--reason TEXT]                    stop new maintenance (detection and assignment, repairs too); running tasks finish
  resume                                   lift a pause

Common flags (before or after the command):
  --admin ADDR[,ADDR...]   admin gRPC addresses; any one will do (default: $GROUNDSKEEPER_ADMIN)
  --json                   machine-readable output
  --stale                  read from the answering node's own state instead of the leader's
  --timeout D              give up on each call after D (default 15s)
  --wait-timeout D         commands that wait for a task give up after D (default: no limit)
  --tls-ca F --tls-cert F --tls-key F
                           mutual TLS with a certificate from groundskeeper tls cert
                           (default: $GROUNDSKEEPER_TLS_CA, _CERT, _KEY); all three or none

Commands that wait show progress on stderr and exit non-zero unless the task
ends as asked (completed; cancelled for task cancel).
`

type ctlOpts struct {
	admin       string
	json        bool
	stale       bool
	timeout     time.Duration
	waitTimeout time.Duration
	out         io.Writer
	// errOut takes progress displays (stderr).
	errOut io.Writer
	// tls is --tls-ca, --tls-cert, --tls-key (default: GROUNDSKEEPER_TLS_*).
	tls tlsFlags
}

func (o *ctlOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.admin, "admin", o.admin, "admin gRPC addresses, comma-separated")
	fs.BoolVar(&o.json, "json", o.json, "machine-readable output")
	fs.BoolVar(&o.stale, "stale", o.stale, "serve reads from the answering node's own state")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "deadline of each call")
	o.tls.register(fs)
}

// dial connects to the admins: with mutual TLS when the TLS files are
// given (accepting only admin certificates), in plaintext otherwise.
func (o *ctlOpts) dial(addrs []string) (*rpc.Client, error) {
	src, err := o.tls.load(nil)
	if err != nil {
		return nil, err
	}
	c, err := rpc.Dial(addrs, rpc.ClientCredentials(src, certs.RoleAdmin))
	if err != nil {
		return nil, usagef("%s", err)
	}
	return c, nil
}

func (o *ctlOpts) consistency() pb.Consistency {
	if o.stale {
		return pb.Consistency_CONSISTENCY_STALE
	}
	return pb.Consistency_CONSISTENCY_LINEARIZABLE
}

// subFlags parses a subcommand's flags, accepting the common ones too.
func (o *ctlOpts) subFlags(name string, args []string, define func(fs *flag.FlagSet)) (*flag.FlagSet, error) {
	fs := newFlagSet("ctl " + name)
	o.register(fs)
	if define != nil {
		define(fs)
	}
	// Allow positional arguments before flags ("peers add a4 ADDR --json").
	var pos []string
	for len(args) > 0 {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs, fs.Parse(pos)
}

func runCtl(args []string, out io.Writer) error { return runCtlIO(args, out, os.Stderr) }

// runCtlIO is runCtl with progress displays going to errOut.
func runCtlIO(args []string, out, errOut io.Writer) error {
	o := &ctlOpts{admin: os.Getenv("GROUNDSKEEPER_ADMIN"), timeout: 15 * time.Second, out: out, errOut: errOut}
	o.tls.fromEnv()
	fs := newFlagSet("ctl")
	o.register(fs)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, ctlUsage)
			return errHelp
		}
		return usagef("%s (see groundskeeper ctl --help)", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("a command is required: status, tasks, task, workers, capacity, peers, snapshot, policy, pause or resume (see groundskeeper ctl --help)")
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "status":
		return o.status(rest)
	case "tasks":
		return o.tasks(rest)
	case "task":
		if len(rest) == 0 {
			return usagef("task needs a subcommand: submit, show, cancel or retry")
		}
		switch rest[0] {
		case "submit":
			return o.taskSubmit(rest[1:])
		case "show":
			return o.taskShow(rest[1:])
		case "cancel":
			return o.taskCancel(rest[1:])
		case "retry":
			return o.taskRetry(rest[1:])
		}
		return usagef("unknown task subcommand %q (want submit, show, cancel or retry)", rest[0])
	case "workers":
		return o.workers(rest)
	case "capacity":
		return o.capacity(rest)
	case "peers":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return o.peersList(rest)
		}
		switch rest[0] {
		case "list":
			return o.peersList(rest[1:])
		case "add":
			return o.peersAdd(rest[1:])
		case "remove":
			return o.peersRemove(rest[1:])
		}
		return usagef("unknown peers subcommand %q (want list, add or remove)", rest[0])
	case "policy":
		return o.policy(rest)
	case "pause":
		return o.pause(rest)
	case "resume":
		return o.resume(rest)
	case "snapshot":
		if len(rest) == 0 {
			return usagef("snapshot needs a subcommand: save FILE or restore FILE")
		}
		switch rest[0] {
		case "save":
			return o.snapshotSave(rest[1:])
		case "restore":
			return o.snapshotRestore(rest[1:])
		}
		return usagef("unknown snapshot subcommand %q (want save or restore)", rest[0])
	}
	return usagef("unknown ctl command %q (want status, tasks, task, workers, capacity, peers, snapshot, policy, pause or resume)", cmd)
}

// call dials the admins and runs one RPC with retries across addresses.
func ctlCall[T any](o *ctlOpts, call func(ctx context.Context, a pb.AdminClient) (T, error)) (T, error) {
	return ctlDo(o, func(ctx context.Context, c *rpc.Client, perTry time.Duration) (T, error) {
		return rpc.Do(ctx, c, perTry, call)
	})
}

// ctlOracleCall is ctlCall for the CapacityOracle service.
func ctlOracleCall[T any](o *ctlOpts, call func(ctx context.Context, a pb.CapacityOracleClient) (T, error)) (T, error) {
	return ctlDo(o, func(ctx context.Context, c *rpc.Client, perTry time.Duration) (T, error) {
		return rpc.DoOracle(ctx, c, perTry, call)
	})
}

// ctlDo dials the admins and runs do under the overall timeout.
func ctlDo[T any](o *ctlOpts, do func(ctx context.Context, c *rpc.Client, perTry time.Duration) (T, error)) (T, error) {
	var zero T
	addrs := splitList(o.admin)
	if len(addrs) == 0 {
		return zero, usagef("--admin is required (or set GROUNDSKEEPER_ADMIN)")
	}
	c, err := o.dial(addrs)
	if err != nil {
		return zero, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	perTry := min(o.timeout, 5*time.Second)
	out, err := do(ctx, c, perTry)
	if err != nil {
		if errors.Is(err, rpc.ErrUnreachable) && !o.tls.files.Enabled() {
			// A plaintext client's handshake with a TLS admin fails like a
			// closed port.
			return zero, fmt.Errorf("%w (if the admins run TLS, give --tls-ca, --tls-cert and --tls-key or set %s, %s and %s)", err, envTLSCA, envTLSCert, envTLSKey)
		}
		return zero, rpcError(err)
	}
	return out, nil
}

// rpcError turns a gRPC status into one plain sentence.
func rpcError(err error) error {
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	if s.Code() == codes.InvalidArgument {
		return usagef("%s", s.Message())
	}
	return errors.New(s.Message())
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func (o *ctlOpts) status(args []string) error {
	st, err := o.fetchStatus("status", args)
	if err != nil {
		return err
	}
	// The answering node's copy of the policy may trail a change just
	// made through another: show the leader's (unless --stale).
	if p, err := o.getPolicy(); err == nil {
		st.Policy = p.Policy
	}
	return printStatus(o, st)
}

func (o *ctlOpts) peersList(args []string) error {
	st, err := o.fetchStatus("peers list", args)
	if err != nil {
		return err
	}
	return printPeers(o, st)
}

// fetchStatus parses a command that takes no arguments and asks for the
// cluster's status.
func (o *ctlOpts) fetchStatus(name string, args []string) (*pb.StatusResponse, error) {
	fs, err := o.subFlags(name, args, nil)
	if err != nil {
		return nil, err
	}
	if err := noArgs(fs); err != nil {
		return nil, err
	}
	return ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.StatusResponse, error) {
		return a.Status(ctx, &pb.StatusRequest{})
	})
}

func (o *ctlOpts) tasks(args []string) error {
	var states, types string
	var volume uint64
	fs, err := o.subFlags("tasks", args, func(fs *flag.FlagSet) {
		fs.StringVar(&states, "state", "", "only tasks in these states, comma-separated")
		fs.StringVar(&types, "type", "", "only tasks of these types (vacuum, erasure_coding, balance, replicate, ec_rebuild, ec_balance, remove_extra, delete_empty), comma-separated")
		fs.Uint64Var(&volume, "volume", 0, "only tasks of this volume")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	req := &pb.ListTasksRequest{Consistency: o.consistency(), PageSize: rpc.DefaultTaskPageSize}
	for _, s := range splitList(states) {
		st, err := fsm.ParseTaskState(s)
		if err != nil {
			return usagef("--state: %s", err)
		}
		req.States = append(req.States, st)
	}
	for _, s := range splitList(types) {
		t, err := fsm.ParseTaskType(s)
		if err != nil {
			return usagef("--type: %s", err)
		}
		req.Types = append(req.Types, t)
	}
	if volume > 1<<32-1 {
		return usagef("--volume %d is out of range", volume)
	}
	req.VolumeId = uint32(volume)
	// Page by page (each page retried on its own) until the last one.
	tasks, err := ctlDo(o, func(ctx context.Context, c *rpc.Client, perTry time.Duration) ([]*fsmpb.Task, error) {
		var tasks []*fsmpb.Task
		for {
			resp, err := rpc.Do(ctx, c, perTry, func(ctx context.Context, a pb.AdminClient) (*pb.ListTasksResponse, error) {
				return a.ListTasks(ctx, req)
			})
			if err != nil {
				return nil, err
			}
			tasks = append(tasks, resp.Tasks...)
			if resp.NextPageToken == "" {
				return tasks, nil
			}
			req.PageToken = resp.NextPageToken
		}
	})
	if err != nil {
		return err
	}
	if len(req.Types) > 0 {
		// A leader of an older build ignores the type filter.
		tasks = slices.DeleteFunc(tasks, func(t *fsmpb.Task) bool { return !slices.Contains(req.Types, t.Type) })
	}
	return printTasks(o, tasks)
}

func (o *ctlOpts) taskSubmit(args []string) error {
	var typ, collection, source, target string
	var volume uint64
	var priority, shard int
	var wait bool
	fs, err := o.subFlags("task submit", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&wait, "wait", false, "wait for the task to end, showing its progress")
		fs.DurationVar(&o.waitTimeout, "wait-timeout", o.waitTimeout, "give up waiting after this long (0: wait as long as it takes)")
		fs.StringVar(&typ, "type", "", "vacuum, erasure_coding, balance, replicate, ec_rebuild, ec_balance, remove_extra or delete_empty (required)")
		fs.Uint64Var(&volume, "volume", 0, "volume id (required)")
		fs.StringVar(&collection, "collection", "", "the volume's collection")
		fs.StringVar(&source, "source", "", "source server (balance, ec_balance)")
		fs.StringVar(&target, "target", "", "target server (balance, ec_balance)")
		fs.IntVar(&shard, "shard", -1, "the EC shard id to move (ec_balance, required)")
		fs.IntVar(&priority, "priority", 0, "higher runs first")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if typ == "" {
		return usagef("--type is required (vacuum, erasure_coding or balance)")
	}
	t, err := fsm.ParseTaskType(typ)
	if err != nil {
		return usagef("%s", err)
	}
	if volume == 0 {
		return usagef("--volume is required and must be greater than 0")
	}
	if volume > 1<<32-1 {
		return usagef("--volume %d is out of range", volume)
	}
	req := &pb.SubmitTaskRequest{Type: t, VolumeId: uint32(volume), Collection: collection, Source: source, Target: target, Priority: int32(priority)}
	if t == fsmpb.TaskType_TASK_TYPE_EC_BALANCE {
		if shard < 0 || shard >= placement.TotalShards || source == "" || target == "" {
			return usagef("an ec_balance task needs --shard (0..%d), --source and --target", placement.TotalShards-1)
		}
		req.Params = []*fsmpb.Param{{Key: placement.ShardParam, Value: strconv.Itoa(shard)}}
	} else if shard >= 0 {
		return usagef("--shard is only for ec_balance tasks")
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.SubmitTaskResponse, error) {
		return a.SubmitTask(ctx, req)
	})
	if err != nil {
		return err
	}
	if wait {
		if resp.Existing {
			fmt.Fprintf(o.errOut, "volume %d already has an active %s task: waiting for task %d instead\n", resp.Task.VolumeId, fsm.TypeName(resp.Task.Type), resp.Task.Id)
		}
		return o.waitAndReport(resp.Task.Id)
	}
	return printSubmitted(o, resp)
}

func (o *ctlOpts) taskShow(args []string) error {
	fs, err := o.subFlags("task show", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("task show needs exactly one task id")
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || id == 0 {
		return usagef("task id %q is not a positive number", fs.Arg(0))
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.GetTaskResponse, error) {
		return a.GetTask(ctx, &pb.GetTaskRequest{Id: id, Consistency: o.consistency()})
	})
	if err != nil {
		return err
	}
	return printTaskDetail(o, resp.Task)
}

func (o *ctlOpts) workers(args []string) error {
	fs, err := o.subFlags("workers", args, nil)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.ListWorkersResponse, error) {
		return a.ListWorkers(ctx, &pb.ListWorkersRequest{Consistency: o.consistency()})
	})
	if err != nil {
		return err
	}
	return printWorkers(o, resp.Workers)
}

func (o *ctlOpts) peersAdd(args []string) error {
	fs, err := o.subFlags("peers add", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("peers add needs an id and a raft address: peers add a4 127.0.0.1:7004")
	}
	id, addr := fs.Arg(0), fs.Arg(1)
	if _, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.AddPeerResponse, error) {
		return a.AddPeer(ctx, &pb.AddPeerRequest{Id: id, RaftAddr: addr})
	}); err != nil {
		return err
	}
	return printDone(o, fmt.Sprintf("added %s (%s) as a voter", id, addr))
}

func (o *ctlOpts) peersRemove(args []string) error {
	fs, err := o.subFlags("peers remove", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("peers remove needs exactly one member id")
	}
	id := fs.Arg(0)
	if _, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.RemovePeerResponse, error) {
		return a.RemovePeer(ctx, &pb.RemovePeerRequest{Id: id})
	}); err != nil {
		return err
	}
	return printDone(o, fmt.Sprintf("removed %s", id))
}
