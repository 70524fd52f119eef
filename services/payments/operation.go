package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
	"github.com/soukhq/souk/platform/store"
)

// This file is the mechanism that makes every operation idempotent by its
// key and never moves money twice (docs/adr/0013-payments-idempotency-reconciliation-failover.md):
//
//  1. claim: in its own transaction, the key's row is inserted into the
//     operations log (state pending, held until lease_until), together
//     with the reservation the operation needs on the payment (a capture
//     or void takes the payment, a refund reserves its amount); the
//     transaction commits before anything leaves the process.
//  2. call: the provider is called with the same key (providers dedupe by
//     it too), through the provider's resilience policy.
//  3. settle: the outcome is recorded — succeeded, declined, or unknown
//     when the call failed or timed out — with the payment's change and
//     its event, in one transaction, by the attempt that holds the row.
//
// A later request with the key finds the row: a settled one returns what
// was recorded; a pending one within its lease is in flight (the request
// waits for it); an unknown one, or a pending one past its lease (the
// process died between 2 and 3), is taken over and reconciled — the
// provider is asked what it did with the key (Lookup) — before the
// provider is ever called again.

// opSpec is one requested operation.
type opSpec struct {
	kind      Operation
	key       string
	paymentID string // the payment; for authorize, the id a new payment gets
	provider  string
	amount    money.Money
	request   string // fingerprint; "" matches any (lookup only)
	// lookupOnly: never call the provider to do the operation, only ask
	// it what became of an earlier attempt (ByKey, the reconciler).
	lookupOnly bool
	// reserve runs in the claiming transaction of a new key (or of one
	// that was abandoned), taking on the payment what the operation needs.
	reserve func(ctx context.Context, tx *store.Tx, now time.Time) error
	// call asks the provider to do the operation.
	call func(ctx context.Context, p Provider, o opRow) (ProviderResult, error)
}

// claimed says what a claim found.
type claimed int

const (
	claimedOwned claimed = iota // this attempt holds the key and may call the provider
	claimedDone                 // the operation is settled
	claimedBusy                 // another attempt holds the key
)

var (
	// errClaimRace: another attempt changed the key's row between our
	// read and our conditional write; claim again.
	errClaimRace = errors.New("operation claimed concurrently")
	// errLostKey: our lease expired and another attempt took the key over
	// before we settled; its settlement stands.
	errLostKey = errors.New("operation taken over by another attempt")
)

// maxClaimRaces bounds how often run claims again after losing a race.
const maxClaimRaces = 20

// run performs the operation spec describes, once per key, and returns its
// row once settled (or abandoned, for lookups).
func (s *Service) run(ctx context.Context, spec opSpec) (opRow, error) {
	wait := 5 * time.Millisecond
	races := 0
	for {
		o, c, reconcile, err := s.claim(ctx, spec)
		if errors.Is(err, errClaimRace) || store.IsUniqueViolation(err) {
			if races++; races > maxClaimRaces {
				return opRow{}, apperr.New(apperr.IdempotencyInFlight, "the key %q is being used concurrently; retry", spec.key)
			}
			continue
		}
		if err != nil {
			return opRow{}, err
		}
		switch c {
		case claimedDone:
			s.metrics.operation(o.Provider, o.Kind, outcomeReplayed)
			return o, nil
		case claimedBusy:
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return opRow{}, apperr.Wrap(ctx.Err(), apperr.IdempotencyInFlight,
					fmt.Sprintf("an earlier request with key %q is still in progress; retry later", spec.key))
			case <-t.C:
			}
			wait = min(2*wait, 250*time.Millisecond)
			continue
		}
		o, err = s.attempt(ctx, spec, o, reconcile)
		if errors.Is(err, errLostKey) {
			continue
		}
		return o, err
	}
}

// claim takes the key's row when nobody holds it: inserting it for a new
// key, or taking it over for a new attempt; else it says what it found.
func (s *Service) claim(ctx context.Context, spec opSpec) (o opRow, c claimed, reconcile bool, err error) {
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		if !spec.lookupOnly {
			// A new key, the common case, is claimed by inserting its row
			// (a key that has one inserts nothing and is read below). The
			// insert comes first, so that a refusal of the reservation is
			// about this very operation: no other request with the key
			// can have claimed it meanwhile.
			n := opRow{
				Key: spec.key, Kind: spec.kind, PaymentID: spec.paymentID, Provider: spec.provider, Request: spec.request,
				State: OpPending, Amount: spec.amount, Attempts: 1, LeaseUntil: now.Add(s.lease), CreatedAt: now, UpdatedAt: now,
			}
			inserted, err := insertNewOp(ctx, tx, n)
			if err != nil {
				return fmt.Errorf("record operation: %w", err)
			}
			if inserted {
				if spec.reserve != nil {
					if err := spec.reserve(ctx, tx, now); err != nil {
						return err // and the row is rolled back
					}
				}
				o, c = n, claimedOwned
				return nil
			}
		}
		cur, found, err := getOp(ctx, tx, spec.key)
		if err != nil {
			return fmt.Errorf("read operation: %w", err)
		}
		if !found {
			if spec.lookupOnly {
				return apperr.New(apperr.NotFound, "no payment was authorized with key %q", spec.key)
			}
			return errClaimRace // rows are never deleted: unreachable
		}
		if cur.Kind != spec.kind || (spec.request != "" && cur.Request != spec.request) {
			return &apperr.Error{Code: apperr.IdempotencyKeyReused,
				Message: fmt.Sprintf("key %q was used for another %s request", spec.key, cur.Kind),
				Fields:  []apperr.FieldError{{Field: "key", Code: "reused", Message: "was used with another request"}}}
		}
		switch {
		case cur.State == OpSucceeded || cur.State == OpDeclined:
			o, c = cur, claimedDone
			return nil
		case cur.State == OpAbandoned && spec.lookupOnly:
			o, c = cur, claimedDone
			return nil
		case cur.State == OpPending && cur.LeaseUntil.After(now):
			o, c = cur, claimedBusy
			return nil
		}
		// Pending past its lease, unknown or abandoned: nobody holds it.
		if cur.State == OpAbandoned && spec.reserve != nil {
			if err := spec.reserve(ctx, tx, now); err != nil {
				if again, _, rerr := getOp(ctx, tx, spec.key); rerr == nil && again.Attempts != cur.Attempts {
					return errClaimRace // another request with the key took it over first
				}
				return err
			}
		}
		lease := now.Add(s.lease)
		ok, err := takeOverOp(ctx, tx, cur, lease, now)
		if err != nil {
			return fmt.Errorf("take over operation: %w", err)
		}
		if !ok {
			return errClaimRace
		}
		o, c = cur, claimedOwned
		reconcile = cur.State != OpAbandoned
		o.State, o.Attempts, o.LeaseUntil, o.UpdatedAt = OpPending, cur.Attempts+1, lease, now
		return nil
	})
	return o, c, reconcile, err
}

// attempt calls the provider for an operation this attempt holds —
// reconciling first when an earlier attempt's outcome is unknown — and
// settles the outcome.
func (s *Service) attempt(ctx context.Context, spec opSpec, o opRow, reconcile bool) (opRow, error) {
	// Whatever happens to the caller, the outcome is recorded.
	rec := context.WithoutCancel(ctx)
	p := s.providers[o.Provider]
	if p == nil {
		err := apperr.New(apperr.Unavailable, "payment provider %s is no longer configured", o.Provider)
		if reconcile {
			return o, s.settleUnknown(rec, o, err)
		}
		return o, s.abandon(rec, o, err)
	}
	if reconcile {
		res, err := s.lookup(ctx, p, o)
		switch {
		case err == nil:
			s.log.LogAttrs(ctx, slog.LevelInfo, "payment operation reconciled", slog.String("key", o.Key),
				slog.String("kind", string(o.Kind)), slog.String("provider", o.Provider), slog.Bool("declined", res.Declined()))
			s.metrics.operation(o.Provider, o.Kind, outcomeReconciled)
			return s.settle(rec, o, res)
		case errors.Is(err, ErrNoRecord) && spec.lookupOnly:
			return s.abandoned(rec, o, err)
		case errors.Is(err, ErrNoRecord):
			// The provider never did it: do it now, with the same key.
		default:
			return o, s.settleUnknown(rec, o, err)
		}
	}
	if spec.lookupOnly {
		return o, fmt.Errorf("payments: lookup-only %s %s claimed without reconciling", o.Kind, o.Key) // unreachable
	}
	start := time.Now()
	var res ProviderResult
	err := p.policy.Do(ctx, func(ctx context.Context) error {
		var err error
		res, err = spec.call(ctx, p.Provider, o)
		return err
	})
	s.metrics.latency(o.Provider, o.Kind, time.Since(start))
	if s.afterProvider != nil {
		if herr := s.afterProvider(o.Kind, o.Key); herr != nil {
			return o, herr
		}
	}
	switch {
	case errors.Is(err, resilience.ErrBreakerOpen), errors.Is(err, resilience.ErrBulkheadFull):
		return o, s.abandon(rec, o, err) // never sent
	case err != nil:
		return o, s.settleUnknown(rec, o, err)
	}
	return s.settle(rec, o, res)
}

// lookup asks the provider what became of the operation.
func (s *Service) lookup(ctx context.Context, p *provider, o opRow) (ProviderResult, error) {
	ref := ""
	if o.Kind != OpAuthorize {
		pay, found, err := getPayment(ctx, s.db, o.PaymentID)
		if err != nil || !found {
			return ProviderResult{}, fmt.Errorf("read payment %s: %w (found %v)", o.PaymentID, err, found)
		}
		ref = pay.ProviderRef
	}
	start := time.Now()
	var res ProviderResult
	err := p.policy.Do(ctx, func(ctx context.Context) error {
		var err error
		res, err = p.Lookup(ctx, ProviderLookup{Op: o.Kind, Key: o.Key, Ref: ref})
		return err // ErrNoRecord is an answer: not retried, not a failure
	})
	s.metrics.latency(o.Provider, "lookup", time.Since(start))
	return res, err
}

// settle records a provider's answer: done or declined. A success
// returns the row with the payment as it left it.
func (s *Service) settle(ctx context.Context, o opRow, res ProviderResult) (opRow, error) {
	var after paymentRow
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		state, ref := OpSucceeded, res.Ref
		if res.OpRef != "" {
			ref = res.OpRef
		}
		if res.Declined() {
			state = OpDeclined
		}
		ok, err := settleOp(ctx, tx, o, state, ref, res.DeclineCode, "", now)
		if err != nil {
			return fmt.Errorf("settle operation: %w", err)
		}
		if !ok {
			return errLostKey
		}
		if res.Declined() {
			return s.applyDecline(ctx, tx, o, res.DeclineCode, now)
		}
		after, err = s.applySuccess(ctx, tx, o, res, now)
		return err
	})
	if err != nil {
		return o, err
	}
	if res.Declined() {
		o.State, o.FailureCode = OpDeclined, res.DeclineCode
		s.metrics.operation(o.Provider, o.Kind, outcomeDeclined)
	} else {
		o.State, o.payment = OpSucceeded, &after.Payment
		s.metrics.operation(o.Provider, o.Kind, outcomeSucceeded)
	}
	return o, nil
}

// applySuccess changes the payment as the operation did and returns it as
// it is after: the write that changes it returns it, nothing reads it back.
func (s *Service) applySuccess(ctx context.Context, tx *store.Tx, o opRow, res ProviderResult, now time.Time) (paymentRow, error) {
	var (
		p     paymentRow
		found bool
		err   error
	)
	switch o.Kind {
	case OpAuthorize:
		if p, err = s.newPayment(o, StatusAuthorized, res.Ref, "", now); err != nil {
			return paymentRow{}, err
		}
		if err := insertPayment(ctx, tx, p); err != nil {
			return paymentRow{}, fmt.Errorf("record payment: %w", err)
		}
		return p, s.emit(ctx, tx, eventAuthorized(p.Payment, o.Key))
	case OpCapture, OpVoid:
		status, captured := StatusCaptured, o.Amount.Amount
		if o.Kind == OpVoid {
			status, captured = StatusVoided, 0
		}
		p, found, err = finishPaymentOp(ctx, tx, o.PaymentID, o.Key, status, captured, now)
		if err == nil && !found {
			err = fmt.Errorf("payment %s is not held by key %s", o.PaymentID, o.Key)
		}
	case OpRefund:
		p, found, err = finishRefund(ctx, tx, o.PaymentID, o.Amount.Amount, now)
		if err == nil && !found {
			err = notFound("payment", o.PaymentID)
		}
	}
	if err != nil {
		return paymentRow{}, fmt.Errorf("record %s: %w", o.Kind, err)
	}
	switch o.Kind {
	case OpCapture:
		return p, s.emit(ctx, tx, eventCaptured(p.Payment, o.Key))
	case OpVoid:
		return p, s.emit(ctx, tx, eventVoided(p.Payment, o.Key))
	default:
		return p, s.emit(ctx, tx, eventRefunded(p.Payment, o.Key, o.Amount, res.OpRef))
	}
}

// applyDecline records a refusal: a failed payment for an authorization;
// for the others, the payment is released of what the operation held.
func (s *Service) applyDecline(ctx context.Context, tx *store.Tx, o opRow, code string, now time.Time) error {
	if o.Kind != OpAuthorize {
		return s.release(ctx, tx, o, now)
	}
	p, err := s.newPayment(o, StatusFailed, "", code, now)
	if err != nil {
		return err
	}
	if err := insertPayment(ctx, tx, p); err != nil {
		return fmt.Errorf("record failed payment: %w", err)
	}
	return s.emit(ctx, tx, eventFailed(p.Payment, o.Key))
}

// release gives back what a capture, void or refund held on the payment.
func (s *Service) release(ctx context.Context, tx *store.Tx, o opRow, now time.Time) error {
	switch o.Kind {
	case OpCapture, OpVoid:
		return releasePaymentOp(ctx, tx, o.PaymentID, o.Key, now)
	case OpRefund:
		return releaseRefund(ctx, tx, o.PaymentID, o.Amount.Amount, now)
	}
	return nil
}

// newPayment is the payment an authorization made (or failed to make),
// from its operation row alone, so any process can record it.
func (s *Service) newPayment(o opRow, status Status, ref, failureCode string, now time.Time) (paymentRow, error) {
	var req authorizeRecord
	if err := json.Unmarshal([]byte(o.Request), &req); err != nil {
		return paymentRow{}, fmt.Errorf("operation %s: %w", o.Key, err)
	}
	zero := money.Zero(o.Amount.Currency)
	return paymentRow{
		Payment: Payment{
			ID: o.PaymentID, OrderID: req.OrderID, Provider: o.Provider, ProviderRef: ref, Status: status,
			Amount: o.Amount, Captured: zero, Refunded: zero, FailureCode: failureCode, Version: 1,
			CreatedAt: now, UpdatedAt: now,
		},
		AuthorizeKey: o.Key, CustomerID: req.CustomerID, Email: req.Email,
	}, nil
}

// settleUnknown records that the attempt's outcome is unknown and returns
// the unavailable error the caller sees. What the operation holds on the
// payment stays held until a later attempt or the reconciler learns the
// outcome.
func (s *Service) settleUnknown(ctx context.Context, o opRow, cause error) error {
	s.log.LogAttrs(ctx, slog.LevelWarn, "payment operation outcome unknown", slog.String("key", o.Key),
		slog.String("kind", string(o.Kind)), slog.String("provider", o.Provider), slog.String("error", cause.Error()))
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		ok, err := settleOp(ctx, tx, o, OpUnknown, "", "", cause.Error(), s.now())
		if err == nil && !ok {
			return errLostKey
		}
		return err
	})
	if err != nil && !errors.Is(err, errLostKey) {
		return fmt.Errorf("record unknown outcome of %s %s: %w", o.Kind, o.Key, err)
	}
	s.metrics.operation(o.Provider, o.Kind, outcomeUnknown)
	return unavailableError(o.Provider, o.Kind, cause)
}

// abandon records that the operation did not happen (not sent) and
// returns the error the caller sees.
func (s *Service) abandon(ctx context.Context, o opRow, cause error) error {
	if _, err := s.abandoned(ctx, o, cause); err != nil && !errors.Is(err, errLostKey) {
		return err
	}
	if apperr.Is(cause, apperr.Unavailable) {
		return cause
	}
	return apperr.Wrap(cause, apperr.Unavailable, fmt.Sprintf("payment provider %s is unavailable; retry later", o.Provider))
}

// abandoned settles the operation as not having happened, releasing what
// it held.
func (s *Service) abandoned(ctx context.Context, o opRow, cause error) (opRow, error) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		ok, err := settleOp(ctx, tx, o, OpAbandoned, "", "", cause.Error(), now)
		if err != nil {
			return err
		}
		if !ok {
			return errLostKey
		}
		return s.release(ctx, tx, o, now)
	})
	if err != nil {
		return o, err
	}
	s.metrics.operation(o.Provider, o.Kind, outcomeAbandoned)
	o.State = OpAbandoned
	return o, nil
}

// --- the reconciler ---

// Reconcile settles operations whose outcome is unknown and that nobody
// holds (up to limit of them), by asking their providers: what the
// provider did is recorded, and what it has no record of is abandoned,
// releasing what it held on the payment. It never calls a provider to move
// money. Run calls it periodically; it returns how many it settled.
func (s *Service) Reconcile(ctx context.Context, limit int) (int, error) {
	ops, err := openOps(ctx, s.db, s.now(), limit)
	if err != nil {
		return 0, fmt.Errorf("reconcile payments: %w", err)
	}
	n := 0
	for _, o := range ops {
		done, err := s.run(ctx, opSpec{kind: o.Kind, key: o.Key, lookupOnly: true})
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "payment operation not reconciled", slog.String("key", o.Key),
				slog.String("kind", string(o.Kind)), slog.String("error", err.Error()))
			continue
		}
		if done.State != OpPending && done.State != OpUnknown {
			n++
		}
	}
	return n, nil
}

// Run reconciles open operations at start and then every interval (0 or
// less: Config.ReconcileInterval) until ctx ends; the composition root runs
// it in a goroutine. Several processes may run it on one database: each
// operation is taken over by one of them at a time.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = s.cfg.ReconcileInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Reconcile(ctx, 100)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.LogAttrs(ctx, slog.LevelError, "reconcile payments", slog.String("error", err.Error()))
		case n > 0:
			s.log.LogAttrs(ctx, slog.LevelInfo, "payment operations reconciled", slog.Int("count", n))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
