package perf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/projector"
)

// SealedConfig sizes the cost-of-encryption comparison.
type SealedConfig struct {
	Dir      string // parent of the stacks' directories
	Consents int    // consents granted through each stack before the runs: the persons of the checks and of the repeat grants
	Calls    int    // checks per stack and concurrency
	Callers  []int  // concurrencies of the checks
	Grants   int    // grants per stack, of new persons and again of known persons
	// GrantCallers is the number of concurrent callers making grants.
	GrantCallers int
	// Rounds is the number of interleaved rounds the calls are split
	// into; default 8.
	Rounds int
	// RebuildRounds is the number of rebuilds of each stack's stream;
	// the fastest counts. Default 5.
	RebuildRounds int
}

// SealedLookup is the checks at one concurrency without and with
// encryption.
type SealedLookup struct {
	Callers       int
	Clear, Sealed Run
}

// Rebuild is a projector folding a whole stream into an empty index.
type Rebuild struct {
	Events uint64
	Took   time.Duration
}

// Rate is events per second.
func (r Rebuild) Rate() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Events) / r.Took.Seconds()
}

// SealedResult holds the runs of the cost-of-encryption comparison.
type SealedResult struct {
	Lookups      []SealedLookup
	GrantCallers int
	// ClearNew and SealedNew: grants of persons the ledger has not seen,
	// through the service and the Go client, with group commit on a
	// server that fsyncs every write; sealed, each takes a data key of
	// the key store's pool (made ahead, in batches).
	ClearNew, SealedNew Run
	// ClearKnown and SealedKnown: grants of new consents (a new purpose)
	// of persons granted before, whose data keys the key store holds in
	// memory.
	ClearKnown, SealedKnown Run
	// ClearRebuild and SealedRebuild: the stream each stack wrote folded
	// into an empty index.
	ClearRebuild, SealedRebuild Rebuild
}

// Sealed measures the cost of encryption: two stacks in this process as
// Auth starts them, without authentication, one whose ledger seals the
// personal fields of every event under the person's data key (a key
// store under a KEK generated for the run, as consentd --kek-file) and one
// without. Each first grants cfg.Consents consents through its service.
// The stacks then take turns in Rounds rounds, the first alternating:
// checks of those consents at each concurrency, grants of new persons,
// and grants of the known persons for a new purpose. Last, each stack's
// stream is folded into an empty index RebuildRounds times, in turn.
func Sealed(ctx context.Context, cfg SealedConfig) (SealedResult, error) {
	res := SealedResult{GrantCallers: cfg.GrantCallers}
	rounds := cfg.Rounds
	if rounds <= 0 {
		rounds = 8
	}
	rebuilds := cfg.RebuildRounds
	if rebuilds <= 0 {
		rebuilds = 5
	}
	if cfg.Consents <= 0 {
		return res, fmt.Errorf("perf: SealedConfig.Consents must be positive")
	}
	clear, sealed, err := startPair(ctx, "encryption", stackConfig{Dir: cfg.Dir}, stackConfig{Dir: cfg.Dir, Keys: true})
	if err != nil {
		return res, err
	}
	defer clear.close()
	defer sealed.close()

	queries := statusQueries(cfg.Consents)
	for _, st := range []*stack{clear, sealed} {
		if err := st.grantAll(ctx, cfg.GrantCallers, cfg.Consents); err != nil {
			return res, fmt.Errorf("%s: grant the consents: %w", st.name, err)
		}
		got, err := st.client.Check(ctx, queries[0])
		if err != nil {
			return res, fmt.Errorf("%s: warm-up check: %w", st.name, err)
		}
		if !got.Allowed {
			return res, fmt.Errorf("%s: warm-up check of a granted consent: not allowed", st.name)
		}
		if err := checkSealing(ctx, st, st == sealed); err != nil {
			return res, fmt.Errorf("%s: %w", st.name, err)
		}
	}

	res.Lookups = make([]SealedLookup, len(cfg.Callers))
	for i, callers := range cfg.Callers {
		res.Lookups[i].Callers = callers
	}
	perLookup := func(callers int) int { return max(cfg.Calls/rounds, callers) }
	perGrant := max(cfg.Grants/rounds, cfg.GrantCallers)
	for round := range rounds {
		for i, callers := range cfg.Callers {
			l := &res.Lookups[i]
			check := func(st *stack) func(int) error {
				return func(j int) error {
					_, err := st.client.Check(ctx, queries[j%len(queries)])
					return err
				}
			}
			if err := pair(round, callers, perLookup(callers),
				timed{"check without encryption", &l.Clear, check(clear)},
				timed{"check with encryption", &l.Sealed, check(sealed)}); err != nil {
				return res, err
			}
		}
		newPerson := func(st *stack) func(int) error {
			return func(j int) error {
				cmd := grantCommand("new"+strconv.Itoa(round), j)
				cmd.Tenant = "acme"
				_, err := st.client.Grant(ctx, cmd)
				return err
			}
		}
		if err := pair(round, cfg.GrantCallers, perGrant,
			timed{"grant of a new person without encryption", &res.ClearNew, newPerson(clear)},
			timed{"grant of a new person with encryption", &res.SealedNew, newPerson(sealed)}); err != nil {
			return res, err
		}
		// A purpose per round and pass over the persons: each grant is
		// a new consent of a known person.
		knownPerson := func(st *stack) func(int) error {
			return func(j int) error {
				k := consentKey(j % cfg.Consents)
				purpose := fmt.Sprintf("known_%d_%d", round, j/cfg.Consents)
				_, err := st.client.Grant(ctx, events.Command{Tenant: k.Tenant, SubjectID: k.SubjectID, Purpose: purpose})
				return err
			}
		}
		if err := pair(round, cfg.GrantCallers, perGrant,
			timed{"grant of a known person without encryption", &res.ClearKnown, knownPerson(clear)},
			timed{"grant of a known person with encryption", &res.SealedKnown, knownPerson(sealed)}); err != nil {
			return res, err
		}
	}

	quiet := slog.New(slog.DiscardHandler)
	for round := range rebuilds {
		sides := []struct {
			st   *stack
			into *Rebuild
		}{{clear, &res.ClearRebuild}, {sealed, &res.SealedRebuild}}
		if round%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			r, err := rebuildStack(ctx, side.st, round, quiet)
			if err != nil {
				return res, fmt.Errorf("%s: %w", side.st.name, err)
			}
			if side.into.Took == 0 || r.Took < side.into.Took {
				*side.into = r
			}
		}
	}
	return res, nil
}

// rebuildStack folds the whole stream of st into a new empty index.
func rebuildStack(ctx context.Context, st *stack, round int, log *slog.Logger) (Rebuild, error) {
	stream, err := st.js.Stream(ctx, projector.DefaultStream)
	if err != nil {
		return Rebuild{}, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return Rebuild{}, err
	}
	dir := filepath.Join(st.dir, fmt.Sprintf("rebuild-%d", round))
	defer os.RemoveAll(dir)
	took, err := rebuildIndex(ctx, st.js, dir, info.State.LastSeq, log)
	return Rebuild{Events: info.State.Msgs, Took: took}, err
}

// checkSealing checks that the last event of st's stream is sealed if
// and only if want says so: the comparison measures what it names.
func checkSealing(ctx context.Context, st *stack, want bool) error {
	stream, err := st.js.Stream(ctx, projector.DefaultStream)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	msg, err := stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return err
	}
	ev, err := events.Decode(msg.Data)
	if err != nil {
		return err
	}
	if ev.IsSealed() != want {
		return fmt.Errorf("event %d: sealed %t, want %t", info.State.LastSeq, ev.IsSealed(), want)
	}
	return nil
}
