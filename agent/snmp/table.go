package snmp

import (
	"context"
	"slices"

	"github.com/iadsafe/iad-agent/mib"
)

// Table serves a conceptual table entry.col.index in the column-major order
// SNMP walks it: every row of the first column, then of the next. Indexes
// are OID suffixes of any length, even mixed lengths. Register it at the
// entry OID or at the table OID above it.
//
// To make cells writable, embed *Table in a type that also implements
// Setter.
type Table struct {
	entry mib.OID
	cols  []uint32
	rows  func() []mib.OID
	cell  func(col uint32, idx mib.OID) (Value, bool)
}

// NewTable builds a table handler. columns lists the readable column
// sub-identifiers (order does not matter); rows returns the current row
// indexes (sorted or not); cell returns one cell, false for an absent one
// (sparse rows are skipped by walks). rows and cell must answer from memory.
func NewTable(entry mib.OID, columns []uint32, rows func() []mib.OID, cell func(col uint32, idx mib.OID) (Value, bool)) *Table {
	cols := slices.Clone(columns)
	slices.Sort(cols)
	return &Table{
		entry: slices.Clone(entry),
		cols:  slices.Compact(cols),
		rows:  rows,
		cell:  cell,
	}
}

// Entry returns the entry OID the table was built with.
func (t *Table) Entry() mib.OID { return slices.Clone(t.entry) }

// Get implements Handler.
func (t *Table) Get(_ context.Context, oid mib.OID) (Value, error) {
	if len(oid) <= len(t.entry) || !oid.HasPrefix(t.entry) {
		return Value{}, ErrNoSuchObject
	}
	col := oid[len(t.entry)]
	if _, ok := slices.BinarySearch(t.cols, col); !ok {
		return Value{}, ErrNoSuchObject
	}
	idx := oid[len(t.entry)+1:]
	if len(idx) == 0 {
		return Value{}, ErrNoSuchInstance
	}
	v, ok := t.cell(col, idx)
	if !ok {
		return Value{}, ErrNoSuchInstance
	}
	return v, nil
}

// Next implements Handler.
func (t *Table) Next(_ context.Context, oid mib.OID) (mib.OID, Value, error) {
	// Position of oid: before column col, with rows after `after` (nil: all).
	var startCol uint32
	var after mib.OID
	switch {
	case oid.HasPrefix(t.entry) && len(oid) > len(t.entry):
		startCol = oid[len(t.entry)]
		after = oid[len(t.entry)+1:]
	case oid.Compare(t.entry) <= 0:
		// Before the entry, or the entry itself: start at the beginning.
	default:
		return nil, Value{}, ErrEndOfSubtree
	}
	rows := t.sortedRows()
	for _, col := range t.cols {
		if col < startCol {
			continue
		}
		// A row index must be strictly greater than what was given only in
		// the starting column; an empty `after` is smaller than any index.
		var bound mib.OID
		if col == startCol {
			bound = after
		}
		i, _ := slices.BinarySearchFunc(rows, bound, func(r, b mib.OID) int {
			if r.Compare(b) <= 0 {
				return -1
			}
			return 1
		})
		for _, idx := range rows[i:] {
			if v, ok := t.cell(col, idx); ok {
				return t.entry.Append(col).Append(idx...), v, nil
			}
		}
	}
	return nil, Value{}, ErrEndOfSubtree
}

// sortedRows returns the rows in OID order, dropping empty and duplicate
// indexes; it copies only when the callback's slice needs fixing.
func (t *Table) sortedRows() []mib.OID {
	rows := t.rows()
	ok := true
	for i, r := range rows {
		if len(r) == 0 || (i > 0 && rows[i-1].Compare(r) >= 0) {
			ok = false
			break
		}
	}
	if ok {
		return rows
	}
	rows = slices.DeleteFunc(slices.Clone(rows), func(r mib.OID) bool { return len(r) == 0 })
	slices.SortFunc(rows, mib.OID.Compare)
	return slices.CompactFunc(rows, mib.OID.Equal)
}
