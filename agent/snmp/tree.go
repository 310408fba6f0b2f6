package snmp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

// MaxRepetitions bounds a GetBulk's max-repetitions so one request cannot
// make the agent walk its whole MIB.
const MaxRepetitions = 100

type subtree struct {
	prefix mib.OID
	h      Handler
}

// Tree dispatches PDUs over registered, non-overlapping subtrees in numeric
// OID order. It is the version- and transport-independent core: the v1/v2c
// engine, and later SNMPv3 and AgentX, decode a PDU into OIDs or varbinds,
// call Get/GetNext/GetBulk/Set and encode the Result.
//
// The zero Tree is empty and ready to use. All methods are safe for
// concurrent use; Sets are serialised so two-phase commits never interleave.
type Tree struct {
	regMu sync.Mutex // serialises Register; readers use the snapshot
	subs  atomic.Pointer[[]subtree]
	// setSem is held from a SET's first phase to its commit or release,
	// so two SETs never interleave; a channel so waiting can be cancelled.
	setOnce sync.Once
	setSem  chan struct{}
}

func (t *Tree) sem() chan struct{} {
	t.setOnce.Do(func() { t.setSem = make(chan struct{}, 1) })
	return t.setSem
}

// Register adds h as the handler of every OID under prefix. It fails with
// ErrOverlap if prefix contains or lies within a registered subtree.
func (t *Tree) Register(prefix mib.OID, h Handler) error {
	if h == nil {
		return fmt.Errorf("snmp: register %s: nil handler", prefix)
	}
	if !validOID(prefix) {
		return fmt.Errorf("snmp: register %s: %w", prefix, mib.ErrBadOID)
	}
	t.regMu.Lock()
	defer t.regMu.Unlock()
	old := t.snapshot()
	for _, s := range old {
		if prefix.HasPrefix(s.prefix) || s.prefix.HasPrefix(prefix) {
			return fmt.Errorf("%w: %s and %s", ErrOverlap, prefix, s.prefix)
		}
	}
	// Copy-on-write keeps readers lock-free, so a handler may even
	// register another subtree without deadlocking.
	subs := append(slices.Clone(old), subtree{prefix: slices.Clone(prefix), h: h})
	slices.SortFunc(subs, func(a, b subtree) int { return a.prefix.Compare(b.prefix) })
	t.subs.Store(&subs)
	return nil
}

func (t *Tree) snapshot() []subtree {
	if p := t.subs.Load(); p != nil {
		return *p
	}
	return nil
}

// lookup returns the subtree containing oid.
func lookup(subs []subtree, oid mib.OID) (subtree, bool) {
	// The last prefix <= oid is the only candidate, as subtrees are disjoint.
	i, _ := slices.BinarySearchFunc(subs, oid, func(s subtree, o mib.OID) int {
		if o.HasPrefix(s.prefix) {
			return 0
		}
		return s.prefix.Compare(o)
	})
	if i < len(subs) && oid.HasPrefix(subs[i].prefix) {
		return subs[i], true
	}
	return subtree{}, false
}

// Get answers a GetRequest: exceptions travel in-band, only handler
// failures make a genErr.
func (t *Tree) Get(ctx context.Context, oids []mib.OID) Result {
	subs := t.snapshot()
	out := make([]VarBind, len(oids))
	for i, oid := range oids {
		v, err := getOne(ctx, subs, oid)
		if err != nil {
			return Result{Status: gosnmp.GenErr, Index: i + 1, Err: err}
		}
		out[i] = VarBind{OID: oid, Value: v}
	}
	return Result{VarBinds: out}
}

func getOne(ctx context.Context, subs []subtree, oid mib.OID) (Value, error) {
	s, ok := lookup(subs, oid)
	if !ok {
		return Value{Type: gosnmp.NoSuchObject}, nil
	}
	v, err := safeGet(ctx, s.h, oid)
	switch {
	case errors.Is(err, ErrNoSuchObject):
		return Value{Type: gosnmp.NoSuchObject}, nil
	case errors.Is(err, ErrNoSuchInstance):
		return Value{Type: gosnmp.NoSuchInstance}, nil
	case err != nil:
		return Value{}, fmt.Errorf("get %s: %w", oid, err)
	}
	return v, nil
}

// GetNext answers a GetNextRequest.
func (t *Tree) GetNext(ctx context.Context, oids []mib.OID) Result {
	return t.getNext(ctx, oids, false)
}

// getNext with skipCounter64 serves SNMPv1, which cannot carry Counter64 and
// must step over such objects (RFC 3584 section 4.2.2.1).
func (t *Tree) getNext(ctx context.Context, oids []mib.OID, skipCounter64 bool) Result {
	subs := t.snapshot()
	out := make([]VarBind, len(oids))
	for i, oid := range oids {
		vb, err := nextOne(ctx, subs, oid)
		for err == nil && skipCounter64 && vb.Value.Type == gosnmp.Counter64 {
			vb, err = nextOne(ctx, subs, vb.OID)
		}
		if err != nil {
			return Result{Status: gosnmp.GenErr, Index: i + 1, Err: err}
		}
		out[i] = vb
	}
	return Result{VarBinds: out}
}

// nextOne finds the first instance after oid across subtrees, or
// endOfMibView named oid.
func nextOne(ctx context.Context, subs []subtree, oid mib.OID) (VarBind, error) {
	// First subtree whose prefix sorts after oid; the one before it may
	// still contain oid.
	i, _ := slices.BinarySearchFunc(subs, oid, func(s subtree, o mib.OID) int {
		if s.prefix.Compare(o) <= 0 {
			return -1
		}
		return 1
	})
	if i > 0 && oid.HasPrefix(subs[i-1].prefix) {
		i--
	}
	for ; i < len(subs); i++ {
		s := subs[i]
		from := s.prefix
		if oid.HasPrefix(s.prefix) {
			from = oid
		}
		next, v, err := safeNext(ctx, s.h, from)
		if errors.Is(err, ErrEndOfSubtree) {
			continue
		}
		if err != nil {
			return VarBind{}, fmt.Errorf("next %s: %w", from, err)
		}
		// A handler returning something not after from would make managers
		// loop or stop early; catch it here rather than on the wire.
		if len(next) <= len(s.prefix) || !next.HasPrefix(s.prefix) || next.Compare(from) <= 0 || !validOID(next) {
			return VarBind{}, fmt.Errorf("%w: next %s returned %s", ErrBadHandler, from, next)
		}
		return VarBind{OID: slices.Clone(next), Value: v}, nil
	}
	return VarBind{OID: oid, Value: Value{Type: gosnmp.EndOfMibView}}, nil
}

// GetBulk answers a GetBulkRequest (RFC 3416 section 4.2.3). maxRepetitions
// is bounded by MaxRepetitions; the result holds at most maxVarBinds
// varbinds (0: no limit; the transport trims further to fit its message
// size), and stops
// after the first repetition in which every repeater reached endOfMibView.
func (t *Tree) GetBulk(ctx context.Context, oids []mib.OID, nonRepeaters, maxRepetitions, maxVarBinds int) Result {
	subs := t.snapshot()
	n := min(max(nonRepeaters, 0), len(oids))
	m := min(max(maxRepetitions, 0), MaxRepetitions)
	r := len(oids) - n
	if maxVarBinds <= 0 {
		maxVarBinds = math.MaxInt
	}
	var out []VarBind
	for i := 0; i < n && len(out) < maxVarBinds; i++ {
		vb, err := nextOne(ctx, subs, oids[i])
		if err != nil {
			return Result{Status: gosnmp.GenErr, Index: i + 1, Err: err}
		}
		out = append(out, vb)
	}
	last := slices.Clone(oids[n:])
	ended := make([]bool, r)
	for rep := 0; rep < m && r > 0; rep++ {
		allEnded := true
		for j := 0; j < r; j++ {
			if len(out) >= maxVarBinds {
				return Result{VarBinds: out}
			}
			if ended[j] {
				out = append(out, VarBind{OID: last[j], Value: Value{Type: gosnmp.EndOfMibView}})
				continue
			}
			vb, err := nextOne(ctx, subs, last[j])
			if err != nil {
				return Result{Status: gosnmp.GenErr, Index: n + j + 1, Err: err}
			}
			if vb.Value.Type == gosnmp.EndOfMibView {
				ended[j] = true
			} else {
				allEnded = false
				last[j] = vb.OID
			}
			out = append(out, vb)
		}
		if allEnded {
			break
		}
	}
	return Result{VarBinds: out}
}

// Set answers a SetRequest (RFC 3416 section 4.2.5): every varbind is
// checked by its handler's PrepareSet before any commit runs, so a failure
// in phase 1 changes nothing. The tree cannot undo a commit; if a later
// handler's commit fails after an earlier one succeeded the status is
// undoFailed, otherwise commitFailed.
func (t *Tree) Set(ctx context.Context, vbs []VarBind) Result {
	p, res := t.PrepareSet(ctx, vbs)
	if p == nil {
		return res
	}
	return p.Commit(ctx)
}

// PreparedSet is a SET whose first phase passed: every handler accepted
// its varbinds and nothing has changed yet. Exactly one of Commit or
// Release must follow; until then other SETs wait.
type PreparedSet struct {
	t       *Tree
	vbs     []VarBind
	groups  []int // first varbind index (1-based) of each commit's group
	commits []func(context.Context) error
	once    sync.Once
}

// PrepareSet runs phase 1 of a SET (what an AgentX TestSet asks). On
// success it returns the prepared SET; otherwise nil and the error status
// and index. It waits for an earlier prepared SET to finish, or for ctx.
func (t *Tree) PrepareSet(ctx context.Context, vbs []VarBind) (*PreparedSet, Result) {
	select {
	case t.sem() <- struct{}{}:
	case <-ctx.Done():
		return nil, Result{Status: gosnmp.GenErr, Index: 1, Err: fmt.Errorf("set: waiting for another set: %w", ctx.Err())}
	}
	p, res := t.prepare(ctx, vbs)
	if p == nil {
		<-t.sem()
	}
	return p, res
}

func (t *Tree) prepare(ctx context.Context, vbs []VarBind) (*PreparedSet, Result) {
	subs := t.snapshot()
	type group struct {
		setter Setter
		vbs    []SetVarBind
	}
	var groups []*group
	bySub := make(map[string]*group) // keyed by prefix: handlers need not be comparable
	for i, vb := range vbs {
		s, ok := lookup(subs, vb.OID)
		if !ok {
			return nil, Result{Status: gosnmp.NoCreation, Index: i + 1, Err: fmt.Errorf("set %s: no subtree", vb.OID)}
		}
		setter, ok := s.h.(Setter)
		if !ok {
			status := gosnmp.NoCreation
			if v, err := getOne(ctx, subs, vb.OID); err == nil && !isException(v) {
				status = gosnmp.NotWritable
			}
			return nil, Result{Status: status, Index: i + 1, Err: fmt.Errorf("set %s: handler is read-only", vb.OID)}
		}
		key := s.prefix.String()
		g := bySub[key]
		if g == nil {
			g = &group{setter: setter}
			bySub[key] = g
			groups = append(groups, g)
		}
		g.vbs = append(g.vbs, SetVarBind{Index: i + 1, OID: vb.OID, Value: vb.Value})
	}

	p := &PreparedSet{t: t, vbs: vbs}
	for _, g := range groups {
		commit, err := safePrepare(ctx, g.setter, g.vbs)
		if err != nil {
			status, index := setFailure(err, g.vbs)
			return nil, Result{Status: status, Index: index, Err: err}
		}
		p.groups = append(p.groups, g.vbs[0].Index)
		p.commits = append(p.commits, commit)
	}
	return p, Result{}
}

// Commit runs phase 2 and releases the SET. A commit that fails after an
// earlier group's succeeded answers undoFailed: the tree cannot take the
// earlier changes back.
func (p *PreparedSet) Commit(ctx context.Context) Result {
	defer p.Release()
	for gi, commit := range p.commits {
		if commit == nil {
			continue
		}
		if err := safeCommit(ctx, commit); err != nil {
			if gi == 0 {
				return Result{Status: gosnmp.CommitFailed, Index: p.groups[gi], Err: err}
			}
			return Result{Status: gosnmp.UndoFailed, Index: 0, Err: err}
		}
	}
	p.commits = nil
	return Result{VarBinds: p.vbs}
}

// Release abandons a prepared SET without applying it (AgentX CleanupSet,
// or a session that went away). It is idempotent, and a no-op after
// Commit.
func (p *PreparedSet) Release() {
	p.once.Do(func() { <-p.t.sem() })
}

func isException(v Value) bool {
	switch v.Type {
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
		return true
	}
	return false
}

// setFailure picks the status and index for a PrepareSet error. SNMPv1
// statuses are translated so a v2c manager never sees them.
func setFailure(err error, vbs []SetVarBind) (gosnmp.SNMPError, int) {
	var se *SetError
	if !errors.As(err, &se) {
		return gosnmp.GenErr, vbs[0].Index
	}
	index := vbs[0].Index
	for _, vb := range vbs {
		if vb.Index == se.Index {
			index = se.Index
		}
	}
	switch se.Status {
	case gosnmp.NoError, gosnmp.TooBig:
		return gosnmp.GenErr, index
	case gosnmp.NoSuchName:
		return gosnmp.NoCreation, index
	case gosnmp.BadValue:
		return gosnmp.WrongValue, index
	case gosnmp.ReadOnly:
		return gosnmp.NotWritable, index
	}
	if se.Status > gosnmp.InconsistentName {
		return gosnmp.GenErr, index
	}
	return se.Status, index
}

// The safe* wrappers turn a handler panic into an error so one bad handler
// answers genErr instead of taking the agent down.

func safeGet(ctx context.Context, h Handler, oid mib.OID) (v Value, err error) {
	defer recoverInto(&err)
	v, err = h.Get(ctx, oid)
	if err != nil {
		return Value{}, err
	}
	return normalize(v)
}

func safeNext(ctx context.Context, h Handler, oid mib.OID) (next mib.OID, v Value, err error) {
	defer recoverInto(&err)
	next, v, err = h.Next(ctx, oid)
	if err != nil {
		return nil, Value{}, err
	}
	v, err = normalize(v)
	return next, v, err
}

func safePrepare(ctx context.Context, s Setter, vbs []SetVarBind) (commit func(context.Context) error, err error) {
	defer recoverInto(&err)
	return s.PrepareSet(ctx, vbs)
}

func safeCommit(ctx context.Context, commit func(context.Context) error) (err error) {
	defer recoverInto(&err)
	return commit(ctx)
}

func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: panic: %v", ErrBadHandler, r)
	}
}
