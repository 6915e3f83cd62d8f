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
// Puts are durable before they return. Forgetting an acknowledged attempt
// is not: deletes ride along with the next put (or Flush). Losing one in a
// crash only makes the restarted worker re-send an outcome the leader
// already has, which it refuses and acknowledges again.
type Journal struct {
	db *bbolt.DB

	mu      sync.Mutex
	deletes map[uint64]uint64 // task id -> fence
}

// OpenJournal opens (or creates) DIR/journal.db.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, "journal.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open journal: %s is locked by another worker process", path)
		}
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(attemptsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &Journal{db: db, deletes: map[uint64]uint64{}}, nil
}

// Close flushes pending deletes and closes the file.
func (j *Journal) Close() error {
	ferr := j.Flush()
	if err := j.db.Close(); err != nil {
		return err
	}
	return ferr
}

func key(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
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
	id := e.Spec.Task.Id
	return j.db.Batch(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(attemptsBucket)
		if err := j.applyDeletes(bk, id); err != nil {
			return err
		}
		return bk.Put(key(id), b)
	})
}

// Delete forgets an attempt (if the journal still holds that fence) at the
// next put or flush.
func (j *Journal) Delete(id, fence uint64) {
	j.mu.Lock()
	j.deletes[id] = fence
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
	return j.db.Update(func(tx *bbolt.Tx) error { return j.applyDeletes(tx.Bucket(attemptsBucket), 0) })
}

// applyDeletes removes the pending deletes whose fence still matches, except
// for task `keep`, which the caller is about to overwrite.
func (j *Journal) applyDeletes(bk *bbolt.Bucket, keep uint64) error {
	j.mu.Lock()
	pending := j.deletes
	j.deletes = map[uint64]uint64{}
	delete(pending, keep)
	j.mu.Unlock()
	for id, fence := range pending {
		v := bk.Get(key(id))
		if v == nil {
			continue
		}
		e, err := decodeEntry(v)
		if err != nil || e.Spec.Task.Fence == fence {
			if err := bk.Delete(key(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// All returns every journalled attempt, by task id.
func (j *Journal) All() ([]*Entry, error) {
	var out []*Entry
	err := j.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(attemptsBucket).ForEach(func(k, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("task %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
