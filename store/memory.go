package store

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store for a single Caddy instance: a mutex-protected map.
// It is a pure data structure; keeping it alive across config reloads is
// the caller's business. Expired records and reservations are removed
// lazily (on access, and by a sweep at most once per ReservationTTL).
type Memory struct {
	mu        sync.Mutex
	invites   map[string]*memInvite
	resTTL    time.Duration
	now       func() time.Time
	nextSweep time.Time
	seq       uint64
}

type memInvite struct {
	limit     int64
	used      int64
	revoked   bool
	created   time.Time
	expires   time.Time            // zero: never
	res       map[uint64]time.Time // reservation id -> expiry
	nextSweep time.Time
}

func (inv *memInvite) expired(now time.Time) bool {
	return !inv.expires.IsZero() && !now.Before(inv.expires)
}

func (inv *memInvite) sweepReservations(now time.Time) {
	for rid, exp := range inv.res {
		if !now.Before(exp) {
			delete(inv.res, rid)
		}
	}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts Options) *Memory {
	opts = opts.withDefaults()
	return &Memory{
		invites: make(map[string]*memInvite),
		resTTL:  opts.ReservationTTL,
		now:     opts.Now,
	}
}

// lookup returns the live record of id, dropping it if expired.
// m.mu must be held.
func (m *Memory) lookup(id string, now time.Time) *memInvite {
	inv := m.invites[id]
	if inv != nil && inv.expired(now) {
		delete(m.invites, id)
		return nil
	}
	return inv
}

// sweep drops expired records and reservations, at most once per
// reservation TTL. m.mu must be held.
func (m *Memory) sweep(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(m.resTTL)
	for id, inv := range m.invites {
		if inv.expired(now) {
			delete(m.invites, id)
			continue
		}
		inv.sweepReservations(now)
	}
}

// Register implements Store.
func (m *Memory) Register(_ context.Context, id string, limit int64, ttl time.Duration) error {
	if err := validRegistration(id, limit, ttl); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	if m.lookup(id, now) != nil {
		return ErrExists
	}
	inv := &memInvite{limit: limit, created: now}
	if ttl > 0 {
		inv.expires = now.Add(ttl)
	}
	m.invites[id] = inv
	return nil
}

// Reserve implements Store.
func (m *Memory) Reserve(_ context.Context, id string) (Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	inv := m.lookup(id, now)
	switch {
	case inv == nil:
		return nil, ErrUnknown
	case inv.revoked:
		return nil, ErrRevoked
	}
	if inv.limit != Unlimited {
		if inv.used+int64(len(inv.res)) >= inv.limit {
			inv.sweepReservations(now)
			if inv.used+int64(len(inv.res)) >= inv.limit {
				return nil, ErrUsedUp
			}
		}
	} else if !now.Before(inv.nextSweep) {
		// Nothing is ever refused, so only sweep now and then to keep
		// abandoned reservations from piling up.
		inv.sweepReservations(now)
		inv.nextSweep = now.Add(m.resTTL)
	}
	if inv.res == nil {
		inv.res = make(map[uint64]time.Time)
	}
	m.seq++
	exp := now.Add(m.resTTL)
	inv.res[m.seq] = exp
	return &memReservation{m: m, inv: inv, id: id, rid: m.seq}, nil
}

// Revoke implements Store.
func (m *Memory) Revoke(_ context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	inv := m.lookup(id, now)
	if inv == nil {
		inv = &memInvite{created: now}
		m.invites[id] = inv
	}
	inv.revoked = true
	return nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (Invite, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	inv := m.lookup(id, now)
	if inv == nil {
		return Invite{}, ErrUnknown
	}
	var live int64
	for _, exp := range inv.res {
		if now.Before(exp) {
			live++
		}
	}
	return Invite{
		ID:       id,
		Limit:    inv.limit,
		Used:     inv.used,
		Reserved: live,
		Revoked:  inv.revoked,
		Created:  inv.created,
		Expires:  inv.expires,
	}, nil
}

// Close implements Store. The data is kept and the store stays usable.
func (m *Memory) Close() error { return nil }

// Destruct is Close, so that a *Memory can be held in a caddy.UsagePool
// (which wants a caddy.Destructor) without wrapping.
func (m *Memory) Destruct() error { return m.Close() }

// Len reports the number of records held (including revoked ones and
// expired ones not yet swept).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.invites)
}

type memReservation struct {
	m   *Memory
	inv *memInvite
	id  string
	rid uint64
	// guarded by m.mu
	state  int
	result error
}

func (r *memReservation) Commit(context.Context) error {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.state {
	case resCommitted:
		return r.result
	case resReleased:
		return ErrReleased
	}
	now := m.now()
	exp, present := r.inv.res[r.rid]
	delete(r.inv.res, r.rid)
	r.state = resCommitted
	if m.lookup(r.id, now) != r.inv {
		// The record expired (or expired and was registered anew).
		r.result = ErrUnknown
		return r.result
	}
	r.inv.used++
	if !present || !now.Before(exp) {
		r.result = ErrReservationExpired
	}
	return r.result
}

func (r *memReservation) Release(context.Context) error {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.state != resActive {
		return nil
	}
	delete(r.inv.res, r.rid)
	r.state = resReleased
	return nil
}
