package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Unlimited is the usage limit of an invite that may be used any number of
// times (until it expires or is revoked).
const Unlimited int64 = -1

// DefaultReservationTTL is how long a reservation lives when
// Options.ReservationTTL is not set.
const DefaultReservationTTL = time.Minute

// MaxIDLength is the longest invite id accepted by Register and Revoke.
const MaxIDLength = 1024

var (
	// ErrUnknown: the invite id is not registered (or its record expired).
	ErrUnknown = errors.New("invite is not registered")
	// ErrRevoked: the invite has been revoked.
	ErrRevoked = errors.New("invite has been revoked")
	// ErrUsedUp: committed plus in-flight uses have reached the limit.
	ErrUsedUp = errors.New("invite usage limit reached")
	// ErrUnavailable: the backing store could not be reached or answered
	// with an error. Returned errors wrap both ErrUnavailable and the cause;
	// the cause never carries credentials.
	ErrUnavailable = errors.New("invite store unavailable")
	// ErrExists: Register of an id that already has a record (including a
	// revoked one: revocation is final).
	ErrExists = errors.New("invite is already registered")

	// ErrInvalid: Register/Revoke called with an empty or over-long id, a
	// limit that is neither >= 1 nor Unlimited, or a negative ttl.
	ErrInvalid = errors.New("invalid invite id, limit or ttl")
	// ErrReservationExpired is returned by Commit when the reservation had
	// already expired (the request outlived Options.ReservationTTL). The use
	// IS counted, once — the backend admitted somebody, and counting errs on
	// the safe side (with the Memory store Used may then exceed Limit) — the
	// error only tells the caller to log the anomaly.
	ErrReservationExpired = errors.New("invite reservation expired before commit")
	// ErrReleased is returned by Commit on a reservation that was already
	// released through the same Reservation value; nothing is counted.
	ErrReleased = errors.New("invite reservation already released")
)

// Invite is the state of a named invite.
type Invite struct {
	ID string
	// Limit is the usage limit (>= 1) or Unlimited. A record created by
	// Revoke for an unknown id, or written by hand without a valid limit,
	// reports 0.
	Limit int64
	// Used counts committed uses.
	Used int64
	// Reserved counts live (unexpired, not yet committed or released)
	// reservations.
	Reserved int64
	Revoked  bool
	Created  time.Time
	// Expires is when the record disappears; zero means never.
	Expires time.Time
}

// Store holds the usage-limit and revocation state of named invites.
// All methods are safe for concurrent use.
type Store interface {
	// Register records a named invite with a usage limit (>= 1, or
	// Unlimited). ttl > 0 makes the record expire after ttl (e.g. with the
	// token's time caveat); 0 keeps it. Registering an id that already has a
	// record returns ErrExists, also when that record is revoked.
	Register(ctx context.Context, id string, limit int64, ttl time.Duration) error
	// Reserve takes one use, atomically with the checks. Errors: ErrUnknown,
	// ErrRevoked, ErrUsedUp, ErrUnavailable.
	Reserve(ctx context.Context, id string) (Reservation, error)
	// Revoke marks the invite revoked; an unknown id is recorded as revoked
	// (without expiry), so a leaked id can be blocked before it is
	// registered. An existing record keeps its expiry. Idempotent.
	Revoke(ctx context.Context, id string) error
	// Get reports an invite's state; ErrUnknown if there is no record.
	Get(ctx context.Context, id string) (Invite, error)
	// Close releases resources (connections). The Memory store keeps its
	// data and stays usable.
	Close() error
}

// Reservation is one use taken by Reserve. Exactly one of Commit or Release
// should follow; a reservation that sees neither lapses after
// Options.ReservationTTL: the Memory store gives its use back, the Redis
// store counts it as used (see the package documentation).
//
// A Reservation is safe for concurrent use, though normally one request
// owns it.
type Reservation interface {
	// Commit keeps the use. Repeated calls return the first call's result
	// without counting again (unless that result was ErrUnavailable, in
	// which case the call can be retried). After expiry of the reservation
	// the use is counted (once) anyway and ErrReservationExpired is returned; if
	// the invite record itself has disappeared ErrUnknown is returned.
	// A revocation between Reserve and Commit does not stop the commit.
	// After Release, Commit returns ErrReleased.
	Commit(ctx context.Context) error
	// Release gives the use back. It is idempotent, a no-op after Commit
	// (so `defer res.Release(ctx)` is safe) and after expiry (the Redis
	// store has then counted the use).
	Release(ctx context.Context) error
}

// Options are common to all stores.
type Options struct {
	// ReservationTTL bounds the life of a reservation whose request never
	// completes, so uses never leak forever. Default DefaultReservationTTL.
	// It should exceed the longest time a request can spend upstream.
	ReservationTTL time.Duration
	// Now is the clock of the Memory store (for tests); default time.Now.
	// The Redis store ignores it and uses the Redis server's clock.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.ReservationTTL <= 0 {
		o.ReservationTTL = DefaultReservationTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func validID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return fmt.Errorf("%w: id must be 1..%d bytes", ErrInvalid, MaxIDLength)
	}
	return nil
}

func validRegistration(id string, limit int64, ttl time.Duration) error {
	if err := validID(id); err != nil {
		return err
	}
	if limit < 1 && limit != Unlimited {
		return fmt.Errorf("%w: limit %d (want >= 1 or Unlimited)", ErrInvalid, limit)
	}
	if ttl < 0 {
		return fmt.Errorf("%w: negative ttl", ErrInvalid)
	}
	return nil
}

// reservation states
const (
	resActive = iota
	resCommitted
	resReleased
)
