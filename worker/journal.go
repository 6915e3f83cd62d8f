package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

var attemptsBucket = []byte("attempts")

// Entry is one journalled attempt: its spec and, once it ended, the outcome
// not yet acknowledged by the leader.
type Entry struct {
	Spec      *pb.TaskSpec
	Completed *pb.TaskCompleted
	Failed    *pb.TaskFailed
}

// Journal records every accepted assignment in a local bbolt file before it
// starts, so a restarted worker knows what it was doing.
//
// Entries are keyed by attempt (task id, fence), so two attempts of one task
// on this worker (an earlier one being rolled back after a restart, the
// task's next one) never overwrite each other. A journal written by an older
// worker, keyed by task id alone, is converted when opened.
//
// Puts are durable before they return. Forgetting an acknowledged attempt
// is not: deletes ride along with the next put (or Flush). Losing one in a
// crash only makes the restarted worker re-send an outcome the leader
// already has, which it refuses and acknowledges again.
type Journal struct {
	db *bbolt.DB

	mu      sync.Mutex
	deletes map[attemptKey]bool
}

// attemptKey names one attempt of a task.
type attemptKey struct{ id, fence uint64 }

// OpenJournal opens (or creates) DIR/journal.db.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, "journal.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open journal: %s is locked by another worker process", path)
		}
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(attemptsBucket)
		if err != nil {
			return err
		}
		return migrateKeys(bk)
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &Journal{db: db, deletes: map[attemptKey]bool{}}, nil
}

// migrateKeys re-keys the entries of an older journal (8-byte task id keys)
// by attempt, in the transaction that opens the journal. An entry that
// cannot be decoded keeps its old key (All reports it).
func migrateKeys(bk *bbolt.Bucket) error {
	type old struct {
		k, v []byte
	}
	var olds []old
	if err := bk.ForEach(func(k, v []byte) error {
		if len(k) == 8 {
			olds = append(olds, old{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, o := range olds {
		e, err := decodeEntry(o.v)
		if err != nil {
			continue
		}
		if err := bk.Put(key(e.Spec.Task.Id, e.Spec.Task.Fence), o.v); err != nil {
			return err
		}
		if err := bk.Delete(o.k); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes pending deletes and closes the file.
func (j *Journal) Close() error {
	ferr := j.Flush()
	if err := j.db.Close(); err != nil {
		return err
	}
	return ferr
}

// key is an attempt's key: task id, then fence, big-endian.
func key(id, fence uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, id)
	binary.BigEndian.PutUint64(k[8:], fence)
	return k
}

func encodeEntry(e *Entry) ([]byte, error) {
	return proto.Marshal(&pb.JournalEntry{Spec: e.Spec, Completed: e.Completed, Failed: e.Failed})
}

func decodeEntry(b []byte) (*Entry, error) {
	var je pb.JournalEntry
	if err := proto.Unmarshal(b, &je); err != nil {
		return nil, fmt.Errorf("corrupt journal entry: %w", err)
	}
	if je.GetSpec().GetTask() == nil {
		return nil, errors.New("corrupt journal entry: no task")
	}
	return &Entry{Spec: je.Spec, Completed: je.Completed, Failed: je.Failed}, nil
}

// Put stores (or replaces) an attempt's entry, durably. Concurrent puts
// share one disk sync.
func (j *Journal) Put(e *Entry) error {
	b, err := encodeEntry(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	t := e.Spec.Task
	return j.db.Batch(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(attemptsBucket)
		// Pending deletes first: a put of an attempt wins over a delete of
		// it queued before.
		if err := j.applyDeletes(bk); err != nil {
			return err
		}
		return bk.Put(key(t.Id, t.Fence), b)
	})
}

// Delete forgets an attempt at the next put or flush.
func (j *Journal) Delete(id, fence uint64) {
	j.mu.Lock()
	j.deletes[attemptKey{id, fence}] = true
	j.mu.Unlock()
}

// Flush applies pending deletes now.
func (j *Journal) Flush() error {
	j.mu.Lock()
	n := len(j.deletes)
	j.mu.Unlock()
	if n == 0 {
		return nil
	}
	return j.db.Update(func(tx *bbolt.Tx) error { return j.applyDeletes(tx.Bucket(attemptsBucket)) })
}

// applyDeletes removes the pending deletes. If the transaction fails, bbolt
// retries a batch function alone; a lost delete only costs a re-sent report.
func (j *Journal) applyDeletes(bk *bbolt.Bucket) error {
	j.mu.Lock()
	pending := j.deletes
	j.deletes = map[attemptKey]bool{}
	j.mu.Unlock()
	for a := range pending {
		if err := bk.Delete(key(a.id, a.fence)); err != nil {
			return err
		}
	}
	return nil
}

// All returns every journalled attempt, by task id and fence.
func (j *Journal) All() ([]*Entry, error) {
	var out []*Entry
	err := j.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(attemptsBucket).ForEach(func(k, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("task %d: %w", binary.BigEndian.Uint64(k[:min(len(k), 8)]), err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
