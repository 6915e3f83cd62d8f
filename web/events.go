package web

import (
	"fmt"
	"net/http"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Event stream timings: at most one event per eventCoalesce (a burst of
// applied commands is one event), and a comment every eventKeepalive so
// proxies keep the stream open.
const (
	eventCoalesce  = 250 * time.Millisecond
	eventKeepalive = 15 * time.Second
)

// eventStream serves /api/v1/events: server-sent events, one "change"
// event (data: the node's applied index) after each change of the state
// or of the master's topology, fed by the node's change feed (the one
// WatchCapacity wakes on). Pages refetch what they show on it. Streams
// are capped like capacity watches; one more is refused 503.
func (h *Handler) eventStream(w http.ResponseWriter, r *http.Request) {
	if _, err := h.authorize(r, pb.CapacityOracle_WatchCapacity_FullMethodName); err != nil {
		writeErr(w, err)
		return
	}
	if h.cfg.Changes == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "this admin node does not publish changes, so it serves no event stream"})
		return
	}
	if n := h.events.Add(1); n > int64(h.cfg.MaxEvents) {
		h.events.Add(-1)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": fmt.Sprintf("this admin node already serves %d event streams, its limit: close a dashboard tab or try later", h.cfg.MaxEvents)})
		return
	}
	defer h.events.Add(-1)
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the connection cannot stream"})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	keep := time.NewTicker(eventKeepalive)
	defer keep.Stop()
	for {
		changed := h.cfg.Changes.Changed()
		fmt.Fprintf(w, "event: change\ndata: {\"applied_index\":%d}\n\n", h.appliedIndex())
		flusher.Flush()
	wait:
		select {
		case <-r.Context().Done():
			return
		case <-h.cfg.Changes.Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
			goto wait
		case <-changed:
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(eventCoalesce):
		}
	}
}

func (h *Handler) appliedIndex() uint64 {
	var i uint64
	if h.cfg.FSM != nil {
		h.cfg.FSM.Read(func(s *fsm.State) { i = s.AppliedIndex() })
	}
	return i
}
