package snmp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

// PrepareFunc validates a value for one writable scalar without changing
// anything and returns the commit that applies it. Return a *SetError
// (wrongType, wrongValue, inconsistentValue...) to choose the status; its
// Index may be left 0.
type PrepareFunc func(ctx context.Context, v Value) (commit func(ctx context.Context) error, err error)

// Scalars serves a group of scalar objects prefix.N.0, in sub-identifier
// order. Register it at the same prefix it was built with.
type Scalars struct {
	prefix   mib.OID
	ids      []uint32
	get      map[uint32]func(context.Context) (Value, error)
	writable map[uint32]PrepareFunc
}

// NewScalars builds a handler for the scalars prefix.N.0 with get[N] as
// their getters. A getter may return ErrNoSuchInstance for an object that is
// currently absent; walks then skip it.
func NewScalars(prefix mib.OID, get map[uint32]func(ctx context.Context) (Value, error)) *Scalars {
	s := &Scalars{
		prefix:   slices.Clone(prefix),
		get:      maps.Clone(get),
		writable: make(map[uint32]PrepareFunc),
	}
	s.ids = slices.Sorted(maps.Keys(s.get))
	return s
}

// SetWritable makes scalar N writable. Call it before registering the
// handler; it is not safe to call while the handler serves requests.
func (s *Scalars) SetWritable(sub uint32, prepare PrepareFunc) error {
	if _, ok := s.get[sub]; !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchObject, s.prefix.Append(sub, 0))
	}
	s.writable[sub] = prepare
	return nil
}

// Prefix returns the prefix the group was built with.
func (s *Scalars) Prefix() mib.OID { return slices.Clone(s.prefix) }

// split returns N and whether oid is exactly the instance prefix.N.0; known
// reports whether N is one of the group's objects.
func (s *Scalars) split(oid mib.OID) (sub uint32, instance, known bool) {
	if len(oid) <= len(s.prefix) || !oid.HasPrefix(s.prefix) {
		return 0, false, false
	}
	sub = oid[len(s.prefix)]
	_, known = s.get[sub]
	instance = len(oid) == len(s.prefix)+2 && oid[len(oid)-1] == 0
	return sub, instance, known
}

// Get implements Handler.
func (s *Scalars) Get(ctx context.Context, oid mib.OID) (Value, error) {
	sub, instance, known := s.split(oid)
	switch {
	case !known:
		return Value{}, ErrNoSuchObject
	case !instance:
		return Value{}, ErrNoSuchInstance
	}
	return s.get[sub](ctx)
}

// Next implements Handler.
func (s *Scalars) Next(ctx context.Context, oid mib.OID) (mib.OID, Value, error) {
	for _, id := range s.ids {
		cand := s.prefix.Append(id, 0)
		if cand.Compare(oid) <= 0 {
			continue
		}
		v, err := s.get[id](ctx)
		if errors.Is(err, ErrNoSuchInstance) || errors.Is(err, ErrNoSuchObject) {
			continue
		}
		if err != nil {
			return nil, Value{}, err
		}
		return cand, v, nil
	}
	return nil, Value{}, ErrEndOfSubtree
}

// PrepareSet implements Setter.
func (s *Scalars) PrepareSet(ctx context.Context, vbs []SetVarBind) (func(context.Context) error, error) {
	commits := make([]func(context.Context) error, 0, len(vbs))
	for _, vb := range vbs {
		sub, instance, known := s.split(vb.OID)
		prepare, writable := s.writable[sub]
		switch {
		case !known || !instance:
			return nil, &SetError{Status: gosnmp.NoCreation, Index: vb.Index, Err: fmt.Errorf("%s: no such scalar", vb.OID)}
		case !writable:
			return nil, &SetError{Status: gosnmp.NotWritable, Index: vb.Index, Err: fmt.Errorf("%s: read-only", vb.OID)}
		}
		commit, err := prepare(ctx, vb.Value)
		if err != nil {
			var se *SetError
			if errors.As(err, &se) {
				if se.Index == 0 {
					se = &SetError{Status: se.Status, Index: vb.Index, Err: se.Err}
				}
				return nil, se
			}
			return nil, &SetError{Status: gosnmp.GenErr, Index: vb.Index, Err: err}
		}
		if commit != nil {
			commits = append(commits, commit)
		}
	}
	return func(ctx context.Context) error {
		for _, c := range commits {
			if err := c(ctx); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
