package seaweed

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestLockedBy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err     error
		holder  string
		refused bool
	}{
		{err: nil},
		// What SeaweedFS's master answers (its holder's message is never stored).
		{err: status.Error(codes.Unknown, "already locked by admin-server: "), holder: "admin-server", refused: true},
		{err: status.Error(codes.Unknown, "already locked by groundskeeper a2: "), holder: "groundskeeper a2", refused: true},
		{err: status.Error(codes.Unknown, "already locked by admin-server: admin server connected"), holder: "admin-server", refused: true},
		{err: status.Error(codes.Unknown, "already locked by : "), holder: "", refused: true},
		{err: status.Error(codes.Unavailable, "connection refused")},
		{err: status.Error(codes.Unknown, "raft.Server: Not current leader")},
		{err: errors.New("context deadline exceeded")},
	} {
		holder, refused := lockedBy(tc.err)
		if holder != tc.holder || refused != tc.refused {
			t.Errorf("lockedBy(%v) = %q, %v; want %q, %v", tc.err, holder, refused, tc.holder, tc.refused)
		}
	}
}

// TestLockStateSince: Since stays while the lock's status and holder do
// not change; an unknown state keeps the last definite one's holder and
// status; every change is signalled once.
func TestLockStateSince(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	clock := t0
	l := &AdminLock{client: "groundskeeper a1", now: func() time.Time { return clock }, changed: make(chan struct{}, 1)}
	down := errors.New("connection refused")
	steps := []struct {
		see     LockState
		want    LockState
		changed bool
	}{
		{see: LockState{Status: LockOther, Holder: "admin-server"}, want: LockState{Status: LockOther, Holder: "admin-server", Since: t0}, changed: true},
		{see: LockState{Status: LockOther, Holder: "admin-server"}, want: LockState{Status: LockOther, Holder: "admin-server", Since: t0}},
		{see: LockState{Status: LockUnknown, Err: down}, want: LockState{Status: LockUnknown, Holder: "admin-server", Last: LockOther, Err: down, Since: t0.Add(2 * time.Second)}, changed: true},
		{see: LockState{Status: LockUnknown, Err: down}, want: LockState{Status: LockUnknown, Holder: "admin-server", Last: LockOther, Err: down, Since: t0.Add(2 * time.Second)}},
		{see: LockState{Status: LockOther, Holder: "admin-server"}, want: LockState{Status: LockOther, Holder: "admin-server", Since: t0.Add(4 * time.Second)}, changed: true},
		{see: LockState{Status: LockOurs, Holder: "groundskeeper a1"}, want: LockState{Status: LockOurs, Holder: "groundskeeper a1", Since: t0.Add(5 * time.Second)}, changed: true},
		{see: LockState{Status: LockOurs, Holder: "groundskeeper a1"}, want: LockState{Status: LockOurs, Holder: "groundskeeper a1", Since: t0.Add(5 * time.Second)}},
		{see: LockState{Status: LockUnknown, Err: down}, want: LockState{Status: LockUnknown, Holder: "groundskeeper a1", Last: LockOurs, Err: down, Since: t0.Add(7 * time.Second)}, changed: true},
	}
	for i, st := range steps {
		clock = t0.Add(time.Duration(i) * time.Second)
		l.setLocked(st.see)
		got := l.State()
		if got.Status != st.want.Status || got.Holder != st.want.Holder || got.Last != st.want.Last || !got.Since.Equal(st.want.Since) || !errors.Is(got.Err, st.want.Err) {
			t.Errorf("step %d: seeing %+v gives %+v; want %+v", i, st.see, got, st.want)
		}
		select {
		case <-l.Changed():
			if !st.changed {
				t.Errorf("step %d: signalled a change that is none", i)
			}
		default:
			if st.changed {
				t.Errorf("step %d: the change was not signalled", i)
			}
		}
	}
}
