package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

func TestProbeCodec(t *testing.T) {
	in := ProbeInfo{ID: "a1", HasState: true, Incarnation: "abc", Members: map[string]string{"a1": "h:1", "a2": "h:2"}, Leader: "a2",
		Bootstrap: map[string]string{"a1": "abc", "a2": "def"}, Proposed: map[string]string{"a1": "h:1"}}
	var buf bytes.Buffer
	if err := writeProbeAnswer(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := readProbeAnswer(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}

	// A length above the cap is refused before anything is allocated or
	// read for it (the reader below would fail the test if read past it).
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], maxProbeSize+1)
	if _, err := readProbeAnswer(io.MultiReader(bytes.NewReader(hdr[:]), failReader{t})); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized answer: err %v, want a size refusal", err)
	}
	binary.BigEndian.PutUint32(hdr[:], 0xFFFFFFFF)
	if _, err := readProbeAnswer(io.MultiReader(bytes.NewReader(hdr[:]), failReader{t})); err == nil {
		t.Fatal("a 4 GiB length was accepted")
	}
	// Truncated and malformed answers are errors, not panics.
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short header":  {0, 0},
		"short body":    {0, 0, 0, 10, '{'},
		"not json":      {0, 0, 0, 3, 'x', 'y', 'z'},
		"wrong type":    append([]byte{0, 0, 0, 9}, `{"id":12}`...),
		"trailing junk": append([]byte{0, 0, 0, 4}, `{}}}`...),
	} {
		if _, err := readProbeAnswer(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The writer refuses an answer the reader would refuse.
	big := ProbeInfo{ID: "a1", Incarnation: strings.Repeat("x", maxProbeSize)}
	if err := writeProbeAnswer(io.Discard, big); err == nil {
		t.Error("an oversized answer was written")
	}
}

type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("read past a refused length")
	return 0, io.EOF
}

// TestStreamLayerRoutes: the raft port answers probes itself, closes other
// connections while raft is not started, hands them to raft (first byte
// intact) once it is, and a client that sends nothing holds up nobody.
func TestStreamLayerRoutes(t *testing.T) {
	s, err := newStreamLayer("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.listener.Addr().String()
	client, err := newStreamLayer("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()

	// Nobody answers before the node knows what to say.
	if _, err := client.probePeer(ctx, addr); err == nil {
		t.Fatal("a probe was answered before any probe info was set")
	}
	want := ProbeInfo{ID: "a1", Incarnation: "i1", WaitingToBootstrap: true}
	s.setProbeInfo(func() ProbeInfo { return want })

	// A silent client that never sends a byte.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	got, err := client.probePeer(ctx, addr)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("probe answer %+v, want %+v", got, want)
	}

	// Raft not started: a raft connection is closed.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{1, 2, 3})
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a raft connection got data before raft started")
	}
	c.Close()

	// Raft started: it goes to Accept with its first byte intact.
	s.startRaft()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := s.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err = client.Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0, 42, 7})
	select {
	case in := <-accepted:
		defer in.Close()
		b := make([]byte, 3)
		in.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.ReadFull(in, b); err != nil || !bytes.Equal(b, []byte{0, 42, 7}) {
			t.Fatalf("raft read %v (%v), want the bytes sent", b, err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("raft accepted nothing")
	}
	// Probes still work while raft runs.
	if _, err := client.probePeer(ctx, addr); err != nil {
		t.Fatalf("probe while raft runs: %v", err)
	}
	// Close returns promptly although the silent client is still connected.
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > probeTimeout/2 {
		t.Errorf("Close took %s", d)
	}
	if _, err := s.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

func TestDecideStart(t *testing.T) {
	addrs := map[string]string{"a": "h:1", "b": "h:2", "c": "h:3", "d": "h:4", "e": "h:5"}
	mk := func(ids ...string) []Peer {
		var out []Peer
		for _, id := range ids {
			out = append(out, Peer{id, addrs[id]})
		}
		return out
	}
	members := func(ids ...string) map[string]string {
		out := map[string]string{}
		for _, id := range ids {
			out[id] = addrs[id]
		}
		return out
	}
	peers := mk("a", "b", "c")
	const me, inc = "c", "inc-c"
	empty := func(id string, waiting bool) ProbeInfo {
		p := ProbeInfo{ID: id, Incarnation: "inc-" + id, WaitingToBootstrap: waiting}
		if waiting {
			p.Proposed = proposal(peers)
		}
		return p
	}
	proposing := func(id string, prop map[string]string) ProbeInfo {
		return ProbeInfo{ID: id, Incarnation: "inc-" + id, WaitingToBootstrap: true, Proposed: prop}
	}
	running := func(id string, m map[string]string, rec map[string]string) ProbeInfo {
		return ProbeInfo{ID: id, Incarnation: "inc-" + id, HasState: true, Members: m, Bootstrap: rec}
	}
	all := members("a", "b", "c")
	recFresh := map[string]string{"a": "inc-a", "b": "inc-b", "c": "inc-c"}
	recOld := map[string]string{"a": "inc-a", "b": "inc-b", "c": "inc-c-before-wipe"}
	recAC := map[string]string{"a": "inc-a", "c": "inc-c"}
	cases := []struct {
		name      string
		bootstrap bool
		peers     []Peer
		answers   map[string]ProbeInfo
		want      startAction
		peer      string
		rec       map[string]string // the record to store (bootstrap: every peer's incarnation)
		why       []string          // keepWaiting/refuse: Why mentions these
	}{
		{"bootstrap: nobody answered", true, peers, nil, keepWaiting, "", nil, []string{"no answer yet from a, b"}},
		{"bootstrap: one peer missing", true, peers, map[string]ProbeInfo{"a": empty("a", true)}, keepWaiting, "", nil, []string{"no answer yet from b"}},
		{"bootstrap: all empty and waiting", true, peers, map[string]ProbeInfo{"a": empty("a", true), "b": empty("b", true)}, bootstrap, "", nil, nil},
		{"bootstrap: one peer empty without --bootstrap", true, peers, map[string]ProbeInfo{"a": empty("a", true), "b": empty("b", false)}, keepWaiting, "", nil,
			[]string{"b answered with an empty data dir but without --bootstrap"}},
		{"bootstrap: one missing, one without --bootstrap", true, peers, map[string]ProbeInfo{"b": empty("b", false)}, keepWaiting, "", nil,
			[]string{"no answer yet from a", "b answered with an empty data dir but without --bootstrap"}},
		{"bootstrap: waiting peer proposes other peers", true, peers,
			map[string]ProbeInfo{"a": empty("a", true), "b": proposing("b", members("a", "b", "d"))}, keepWaiting, "", nil,
			[]string{"peer b proposes the peers a=h:1,b=h:2,d=h:4 but this node's --peers are a=h:1,b=h:2,c=h:3"}},
		{"bootstrap: waiting peer proposes another address", true, peers,
			map[string]ProbeInfo{"a": proposing("a", map[string]string{"a": "h:1", "b": "h:2", "c": "h:9"}), "b": empty("b", true)}, keepWaiting, "", nil,
			[]string{"peer a proposes the peers a=h:1,b=h:2,c=h:9"}},
		{"bootstrap: waiting peer proposes nothing", true, peers,
			map[string]ProbeInfo{"a": proposing("a", nil), "b": empty("b", true)}, keepWaiting, "", nil, []string{"peer a proposes the peers none"}},
		{"bootstrap: single node", true, mk("c"), nil, bootstrap, "", nil, nil},
		{"bootstrap: late starter counted as fresh starts empty", true, peers, map[string]ProbeInfo{"a": running("a", all, recFresh)}, waitToBeAdded, "a", recFresh, nil},
		{"bootstrap: wiped, the only peer up lists it", true, peers, map[string]ProbeInfo{"b": running("b", all, recOld)}, refuse, "b", nil, nil},
		{"bootstrap: wiped, listed by a peer without a record", true, peers, map[string]ProbeInfo{"a": empty("a", true), "b": running("b", all, nil)}, refuse, "b", nil, nil},
		{"bootstrap: one vouches, a member of its cluster recorded an earlier incarnation", true, peers,
			map[string]ProbeInfo{"a": running("a", all, recFresh), "b": running("b", all, recOld)}, waitToBeAdded, "a", recFresh, nil},
		{"bootstrap: one vouches, a lister of another cluster does not", true, peers,
			map[string]ProbeInfo{"a": running("a", members("a", "c"), recAC), "b": running("b", members("b", "c", "d"), recOld)}, refuse, "b", nil, nil},
		{"bootstrap: vouching peers and a member added later without a record", true, peers,
			map[string]ProbeInfo{"a": running("a", members("a", "b", "c", "d"), recFresh), "b": running("b", members("a", "b", "c", "d"), recFresh),
				"d": running("d", members("a", "b", "c", "d"), nil)}, waitToBeAdded, "a", recFresh, nil},
		{"bootstrap: removed, majority answered", true, peers, map[string]ProbeInfo{"a": running("a", members("a", "b"), recOld), "b": running("b", members("a", "b"), recOld)}, waitToBeAdded, "a", nil, nil},
		{"bootstrap: removed, too few answered", true, peers, map[string]ProbeInfo{"a": running("a", members("a", "b"), recOld)}, keepWaiting, "", nil, []string{"already form a cluster"}},
		{"bootstrap: vouched by a cluster of other members", true, peers, map[string]ProbeInfo{"a": running("a", all, recAC)}, waitToBeAdded, "a", recAC, nil},
		{"join: majority answered, none lists it", false, peers, map[string]ProbeInfo{"a": running("a", members("a", "b"), nil), "b": running("b", members("a", "b"), nil)}, waitToBeAdded, "", nil, nil},
		{"join: too few answered", false, peers, map[string]ProbeInfo{"a": running("a", members("a", "b"), nil)}, keepWaiting, "", nil, []string{"no answer yet from b"}},
		{"join: listed without vouching", false, peers, map[string]ProbeInfo{"a": running("a", all, recOld)}, refuse, "a", nil, nil},
		{"join: vouched", false, peers, map[string]ProbeInfo{"a": running("a", all, recFresh)}, waitToBeAdded, "a", recFresh, nil},
		{"join: peers without self, majority of 4", false, mk("a", "b", "d"),
			map[string]ProbeInfo{"a": running("a", members("a", "b", "d"), nil), "b": running("b", members("a", "b", "d"), nil)}, waitToBeAdded, "", nil, nil},
		{"join: peers without self, one of 4", false, mk("a", "b", "d"),
			map[string]ProbeInfo{"a": running("a", members("a", "b", "d"), nil)}, keepWaiting, "", nil, nil},
		{"join: only this node in --peers", false, mk("c"), nil, refuse, "", nil, []string{"--peers lists only this node c", "--bootstrap"}},
		{"join: stale --peers, the answers name more members", false, peers,
			map[string]ProbeInfo{"a": running("a", members("a", "b", "d", "e"), nil), "b": running("b", members("a", "b", "d", "e"), nil)}, keepWaiting, "", nil,
			[]string{"waiting for 3 of the peers a, b, d, e", "no answer yet from d, e"}},
		{"join: stale --peers, enough of the members answered", false, peers,
			map[string]ProbeInfo{"a": running("a", members("a", "b", "d", "e"), nil), "b": running("b", members("a", "b", "d", "e"), nil),
				"d": running("d", members("a", "b", "d", "e"), nil)}, waitToBeAdded, "", nil, nil},
		{"join: stale --peers, a member only the answers name lists it", false, peers,
			map[string]ProbeInfo{"a": running("a", members("a", "b", "d"), nil), "d": running("d", members("a", "b", "c", "d"), recOld)}, refuse, "d", nil, nil},
		{"bootstrap: stale --peers, a member only the answers name lists it", true, peers,
			map[string]ProbeInfo{"a": running("a", members("a", "b", "d"), nil), "b": running("b", members("a", "b", "d"), nil),
				"d": running("d", members("a", "b", "c", "d"), recOld)}, refuse, "d", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decideStart(tc.bootstrap, me, inc, tc.peers, tc.answers)
			if d.Action != tc.want || (tc.peer != "" && d.Peer != tc.peer) {
				t.Fatalf("got %v (peer %q, why %q), want %v (peer %q)", d.Action, d.Peer, d.Why, tc.want, tc.peer)
			}
			if d.Action == keepWaiting && d.Why == "" {
				t.Error("keep waiting without a reason to log")
			}
			for _, w := range tc.why {
				if !strings.Contains(d.Why, w) {
					t.Errorf("why %q does not mention %q", d.Why, w)
				}
			}
			want := tc.rec
			if d.Action == bootstrap {
				want = map[string]string{}
				for _, p := range tc.peers {
					want[p.ID] = "inc-" + p.ID
				}
			}
			if !reflect.DeepEqual(d.Record, want) {
				t.Errorf("record %v, want %v", d.Record, want)
			}
		})
	}
}

// TestWipedVoterRefusesToRejoin: a wiped data dir must not rejoin as a
// voter that forgot its vote and log (docs/architecture.md §9.1). In
// process: three nodes L, B, W; B down; a task acknowledged (on L and W);
// L and W down and W's data dir wiped; W restarted with its usual config
// (--bootstrap kept) and B: W must refuse at once although L is down (otherwise B is elected
// with W's vote and the task is lost). After L returns the task is there;
// the documented recovery (remove W, start it empty, add it) brings W back
// with the state, and new tasks get fresh ids.
func TestWipedVoterRefusesToRejoin(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.waitLeader()
	b, w := (l+1)%3, (l+2)%3
	c.stop(b)
	task := c.submit(1) // committed by L and W
	c.stop(l)
	c.stop(w)
	wDir := c.nodes[w].cfg.DataDir
	if err := os.RemoveAll(wDir); err != nil {
		t.Fatal(err)
	}

	// W and B start together; W refuses as soon as B answers.
	c.start(b)
	wCfg := c.nodes[w].cfg
	wCfg.FSM = fsm.New()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := openRefused(ctx, t, wCfg, fmt.Sprintf("wiped %s started; it must refuse while %s counts it as a voter", wCfg.ID, c.nodes[b].cfg.ID))
	oneSentence(t, err, wCfg.ID, c.nodes[b].cfg.ID, "ctl peers remove "+wCfg.ID, "ctl peers add "+wCfg.ID+" "+wCfg.RaftAddr)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("W waited instead of refusing: %v", err)
	}
	// B alone cannot lead, and never loses the task.
	if st := c.nodes[b].node.Status(); st.State == "leader" {
		t.Fatalf("B leads without a quorum: %+v", st)
	}

	// L returns: the task is there.
	c.start(l)
	c.waitLeader()
	c.waitConverged(1)
	for _, i := range []int{l, b} {
		if !hasTask(c.nodes[i].fsm, task.Id) {
			t.Fatalf("%s lost acknowledged task %d", c.nodes[i].cfg.ID, task.Id)
		}
	}

	// The recovery: remove W, start it empty (same config), add it back.
	waitFor(t, "RemoveServer "+wCfg.ID, func() bool {
		i, ok := c.stableLeader()
		return ok && c.nodes[i].node.RemoveServer(context.Background(), wCfg.ID) == nil
	})
	if err := os.RemoveAll(wDir); err != nil {
		t.Fatal(err)
	}
	c.start(w) // peers with state that do not list it: it waits to be added
	if m, err := c.nodes[w].node.Members(); err != nil || len(m) != 0 {
		t.Fatalf("restarted W has members %v (%v), want none until added", m, err)
	}
	var addErr error
	waitFor(t, "AddVoter "+wCfg.ID, func() bool {
		i, ok := c.stableLeader()
		if !ok {
			addErr = errors.New("no stable leader")
			return false
		}
		addErr = c.nodes[i].node.AddVoter(context.Background(), wCfg.ID, wCfg.RaftAddr)
		return addErr == nil
	}, func() string { return fmt.Sprintf("last AddVoter: %v%s", addErr, c.describe()) })
	next := c.submit(2)
	if next.Id <= task.Id {
		t.Fatalf("new task got id %d, not above the acknowledged task's %d", next.Id, task.Id)
	}
	c.waitConverged(2)
	if !hasTask(c.nodes[w].fsm, task.Id) {
		t.Fatalf("W caught up without task %d", task.Id)
	}
}

// TestOpenWaitEndsWithContext: an empty node whose peers never answer waits
// in Open until its context ends, then returns and frees its port and store.
func TestOpenWaitEndsWithContext(t *testing.T) {
	addr := testutil.FreeAddr(t)
	cfg := fastConfig("a1", addr, t.TempDir(), []Peer{{"a1", addr}, {"a2", testutil.FreeAddr(t)}, {"a3", testutil.FreeAddr(t)}})
	cfg.FSM = fsm.New()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err == nil {
		n.Shutdown()
		t.Fatal("Open bootstrapped with no peer answering")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v, want the context's error", err)
	}
	// Everything was released: the same node opens again (and waits again).
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := Open(ctx2, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Open: %v, want the context's error (not a locked store or a busy port)", err)
	}
}
