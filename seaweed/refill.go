package seaweed

// RefillPolls is how many polls in a row a topology with fewer servers than
// the last trusted one must keep the same server count before it is trusted
// (a restarted master refills as volume servers re-register).
const RefillPolls = 3

// RefillGuard decides, poll after poll, whether a topology is complete enough
// to act on. SeaweedFS gives no restart signal: a restarted master answers
// VolumeList at once with whatever servers have re-registered so far.
type RefillGuard struct {
	// Agree: with nothing trusted yet, trust a first topology only once two
	// polls in a row agree on its server count (a master refilling right now
	// would otherwise look complete).
	Agree bool

	expected int // servers of the last trusted topology; 0: none yet
	last     int // servers of the previous poll
	lowPolls int // polls in a row at `last`, below expected
}

// Verdict is what Trust decided.
type Verdict int

const (
	Trusted   Verdict = iota // complete: act on it
	Smaller                  // trusted, with fewer servers than before (they held)
	Waiting                  // no trusted topology yet; waiting for agreement
	Refilling                // fewer servers than expected (or none): not trusted
)

// Trust judges a topology of n servers.
func (g *RefillGuard) Trust(n int) Verdict {
	defer func() { g.last = n }()
	switch {
	case n == 0:
		g.lowPolls = 0
		return Refilling
	case g.expected == 0:
		if g.Agree && n != g.last {
			return Waiting
		}
		g.expected, g.lowPolls = n, 0
		return Trusted
	case n >= g.expected:
		g.expected, g.lowPolls = n, 0
		return Trusted
	}
	if n != g.last {
		g.lowPolls = 0
	}
	g.lowPolls++
	if g.lowPolls >= RefillPolls {
		g.expected, g.lowPolls = n, 0
		return Smaller
	}
	return Refilling
}

// LeaderChanged engages the guard for a new master leader, which, like a
// restarted master, answers at once with only the volume servers that have
// re-registered with it so far: its topology is judged afresh against the
// last trusted server count (polls of the old leader count for nothing
// toward accepting a smaller topology, nor toward agreement).
func (g *RefillGuard) LeaderChanged() { g.last, g.lowPolls = 0, 0 }

// Expected is the server count of the last trusted topology (0: none).
func (g *RefillGuard) Expected() int { return g.expected }
