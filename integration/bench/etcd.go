package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// etcd is driven over its gRPC API with hand-encoded protobuf messages, so
// the benchmark needs no etcd client library.

// rawCodec passes already-encoded protobuf bytes through gRPC.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type etcdCluster struct {
	procSet
	value []byte
}

func startEtcd(ctx context.Context, bin, dir string) (*etcdCluster, error) {
	ports, err := testutil.FreePorts(6)
	if err != nil {
		return nil, err
	}
	initial := memberList("e%d=http://127.0.0.1:%d", ports)
	e := &etcdCluster{value: make([]byte, 64)}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("e%d", i+1)
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[i])
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[3+i])
		p, err := startProc(filepath.Join(dir, name+".log"), bin, "--name", name,
			"--data-dir", filepath.Join(dir, name+".etcd"),
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--initial-cluster", initial, "--initial-cluster-state", "new",
			"--initial-cluster-token", "gk-bench", "--log-level", "error")
		if err != nil {
			e.stop()
			return nil, err
		}
		e.procs = append(e.procs, p)
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", ports[3+i]),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			e.stop()
			return nil, err
		}
		e.conns = append(e.conns, conn)
	}
	err = poll(ctx, 30*time.Second, func() error {
		for i := range e.conns {
			if err := e.op(ctx, 0, i, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("etcd cluster did not form: %w", err)
	}
	return e, nil
}

func (e *etcdCluster) name() string { return "etcd" }
func (e *etcdCluster) nodes() int   { return len(e.conns) }

// op is a Put of a unique key (PutRequest: key = 1, value = 2).
func (e *etcdCluster) op(ctx context.Context, _, node int, seq uint64) error {
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, fmt.Appendf(nil, "bench/%d", seq))
	req = protowire.AppendTag(req, 2, protowire.BytesType)
	req = protowire.AppendBytes(req, e.value)
	var resp []byte
	return e.conns[node].Invoke(ctx, "/etcdserverpb.KV/Put", &req, &resp)
}

// leader finds the member that leads (Maintenance.Status: leader = 4 in the
// response, member_id in header.member_id = 2 of ResponseHeader = 1).
func (e *etcdCluster) leader(ctx context.Context) (int, error) {
	for i, c := range e.conns {
		req := []byte{}
		var resp []byte
		if err := c.Invoke(ctx, "/etcdserverpb.Maintenance/Status", &req, &resp); err != nil {
			return 0, err
		}
		var member, leader uint64
		for b := resp; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			b = b[n:]
			switch {
			case num == 1 && typ == protowire.BytesType:
				hdr, m := protowire.ConsumeBytes(b)
				b = b[m:]
				for h := hdr; len(h) > 0; {
					hn, ht, k := protowire.ConsumeTag(h)
					h = h[k:]
					if hn == 2 && ht == protowire.VarintType {
						v, k := protowire.ConsumeVarint(h)
						member, h = v, h[k:]
						continue
					}
					k = protowire.ConsumeFieldValue(hn, ht, h)
					h = h[k:]
				}
			case num == 4 && typ == protowire.VarintType:
				v, m := protowire.ConsumeVarint(b)
				leader, b = v, b[m:]
			default:
				m := protowire.ConsumeFieldValue(num, typ, b)
				b = b[m:]
			}
		}
		if member != 0 && member == leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("etcd: no leader found")
}
