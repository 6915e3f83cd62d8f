package web

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
)

// TestEventStreamsCapped: event streams are capped like capacity watches
// (one more is refused 503 in one sentence), a change wakes a stream, and
// a closed stream frees its place.
func TestEventStreamsCapped(t *testing.T) {
	feed := rpc.NewChangeFeed()
	defer feed.Close()
	h, err := New(Config{Changes: feed, MaxEvents: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	first, err := http.Get(srv.URL + "/api/v1/events")
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first stream: %v %v", first, err)
	}
	sc := bufio.NewScanner(first.Body)
	next := func() string {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event:") {
				return sc.Text()
			}
		}
		return ""
	}
	if e := next(); e != "event: change" {
		t.Fatalf("first event %q", e)
	}
	second, err := http.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second stream = %d; want 503 over the cap", second.StatusCode)
	}
	feed.Notify()
	if e := next(); e != "event: change" {
		t.Errorf("no event after a change: %q", e)
	}
	first.Body.Close()
	// The closed stream's handler ends when the server notices the
	// connection closed; until then the place is taken.
	testutil.EventuallyTrue(t, 10*time.Second, "a closed stream to free its place", func() bool {
		r, err := http.Get(srv.URL + "/api/v1/events")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
}
