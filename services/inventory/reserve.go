package inventory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// maxReplans bounds how often one reservation plans again within its
// transaction after a conditional update found the stock gone.
const maxReplans = 3

// expiryBatch is how many expired reservations one sweep query picks up.
const expiryBatch = 100

// Reserve holds stock for the request's lines, all or nothing (see
// planAllocation for where units are taken from and docs/adr/0010-inventory-reservations.md for
// why it never oversells). It is idempotent by req.Key: the first call
// makes the reservation; every later call with the key — concurrent ones
// included — returns that reservation as it is now (in whatever state),
// without reserving again. A key is not consumed by a failed attempt.
//
// Errors: validation_failed naming the field ("key", "lines[1].quantity",
// …); out_of_stock (409) with a field error per short line and an
// *InsufficientStockError (see InsufficientStock); idempotency_key_reused
// when the key was used with other lines or another order id; conflict
// when the stock kept changing under it (safe to retry with the key).
func (s *Service) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	r, _, err := s.reserve(ctx, req)
	return r, err
}

// reserve is Reserve, also telling whether the answer is a replay.
func (s *Service) reserve(ctx context.Context, req ReserveRequest) (Reservation, bool, error) {
	if err := req.validate(); err != nil {
		return Reservation{}, false, fmt.Errorf("reserve stock: %w", err)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = s.cfg.DefaultReservationTTL
	}
	fp := fingerprint(req)
	var (
		out      Reservation
		replayed bool
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		replayed = false
		now := s.now()
		r := Reservation{
			ID: id.New(reservationPrefix), Key: req.Key, State: StatePending,
			ExpiresAt: now.Add(ttl), CreatedAt: now, UpdatedAt: now,
		}
		if req.OrderID != "" {
			r.OrderID = &req.OrderID
		}
		// Insert first: the key is ours, or the reservation made with it is
		// there to be returned.
		claimed, err := claimReservation(ctx, tx, r, fp)
		if err != nil {
			return err
		}
		if !claimed {
			prev, prevFP, found, err := readReservation(ctx, tx, "idempotency_key", req.Key)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("reservation key %q is taken but its reservation cannot be read", req.Key)
			}
			if prevFP != fp {
				return &apperr.Error{Code: apperr.IdempotencyKeyReused,
					Message: fmt.Sprintf("key %q was used for reservation %s with other lines or another order; use a new key", req.Key, prev.ID),
					Fields:  []apperr.FieldError{{Field: "key", Code: "reused", Message: "was used for a different reservation request"}}}
			}
			out, replayed = prev, true
			return nil
		}
		if err := s.allocate(ctx, tx, &r, req.Lines, now); err != nil {
			return err
		}
		out = r
		return nil
	})
	switch {
	case err == nil && replayed:
		s.metrics.reservation(outcomeIdempotentReplay, 1)
	case err == nil:
		s.metrics.reservation(outcomeReserved, 1)
	case apperr.Is(err, CodeOutOfStock):
		s.metrics.reservation(outcomeOutOfStock, 1)
		s.reportFailure(ctx, req, err)
	}
	if err != nil {
		return Reservation{}, false, fmt.Errorf("reserve stock: %w", err)
	}
	return out, replayed, nil
}

// fingerprint identifies what a key was used for: the order id and the
// lines, in SKU order (the TTL is not part of it: a retry with another TTL
// is the same request).
func fingerprint(req ReserveRequest) string {
	lines := slices.Clone(req.Lines)
	slices.SortFunc(lines, func(a, b ReserveLine) int { return cmp.Compare(a.SKU, b.SKU) })
	b, _ := json.Marshal(struct {
		OrderID string        `json:"order_id"`
		Lines   []ReserveLine `json:"lines"`
	}{req.OrderID, lines})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// allocate plans and applies the reservation r of lines in tx, then writes
// its lines and events. The plan is computed from a read inside the
// transaction, after the SKUs are locked; every allocation is a conditional
// UPDATE that the database applies only if the stock is still there. When
// one matches no row (another transaction took the stock: impossible while
// every writer takes the SKU lock, but the guarantee must not depend on
// it), the allocations of this attempt are rolled back to a savepoint and
// the reservation is planned again from a fresh read.
func (s *Service) allocate(ctx context.Context, tx *store.Tx, r *Reservation, lines []ReserveLine, now time.Time) error {
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	if err := lockItems(ctx, tx, skus); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT reserve_plan`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	for attempt := 1; ; attempt++ {
		st, err := readStock(ctx, tx, skus)
		if err != nil {
			return err
		}
		plan, shortages := planAllocation(lines, st)
		if len(shortages) > 0 {
			return outOfStock(shortages)
		}
		if s.afterPlan != nil {
			if err := s.afterPlan(ctx, tx); err != nil {
				return err
			}
		}
		ok, err := applyPlan(ctx, tx, plan, now)
		if err != nil {
			return err
		}
		if !ok {
			s.metrics.conflict()
			if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT reserve_plan`); err != nil {
				return fmt.Errorf("roll back to savepoint: %w", err)
			}
			if attempt == maxReplans {
				return apperr.New(apperr.Conflict, "the stock kept changing while it was being reserved; retry with the same key")
			}
			continue
		}
		if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT reserve_plan`); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
		r.Lines = make([]ReservationLine, len(plan))
		for i, pl := range plan {
			line := ReservationLine{SKU: pl.sku, Quantity: pl.quantity, Allocations: make([]Allocation, len(pl.allocs))}
			for j, a := range pl.allocs {
				line.Allocations[j] = Allocation{LocationID: a.locationID, Quantity: a.quantity, Backordered: a.backordered}
				line.Backordered += a.backordered
			}
			r.Lines[i] = line
		}
		if err := insertReservationLines(ctx, tx, *r); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, eventReserved(*r)); err != nil {
			return err
		}
		for _, pl := range plan {
			before := st[pl.sku]
			if err := s.checkLow(ctx, tx, before.view(s.cfg.LowStockThreshold), applied(before, pl).view(s.cfg.LowStockThreshold)); err != nil {
				return err
			}
		}
		return nil
	}
}

// applyPlan takes every allocation of the plan with a conditional UPDATE,
// in (SKU, location) order so that concurrent reservations lock rows in one
// order and cannot deadlock. false means one of them found its stock gone.
func applyPlan(ctx context.Context, tx *store.Tx, plan []plannedLine, now time.Time) (bool, error) {
	type alloc struct {
		sku string
		plannedAlloc
	}
	var all []alloc
	for _, pl := range plan {
		for _, a := range pl.allocs {
			all = append(all, alloc{pl.sku, a})
		}
	}
	slices.SortFunc(all, func(a, b alloc) int {
		return cmp.Or(cmp.Compare(a.sku, b.sku), cmp.Compare(a.locationID, b.locationID))
	})
	for _, a := range all {
		ok, err := reserveAt(ctx, tx, a.sku, a.locationID, a.quantity, a.quantity-a.backordered, a.backordered > 0, now)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// reportFailure writes stock_reservation_failed in a transaction of its
// own: the failed one rolled back, and its outbox rows with it. A failure
// to write it is logged, not returned: the caller's answer is out_of_stock
// either way.
func (s *Service) reportFailure(ctx context.Context, req ReserveRequest, cause error) {
	shortages, _ := InsufficientStock(cause)
	data := StockReservationFailed{Key: req.Key, Reason: string(CodeOutOfStock), Shortages: shortages}
	if req.OrderID != "" {
		data.OrderID = &req.OrderID
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return s.emit(ctx, tx, event{EventStockReservationFailed, req.Key, data})
	})
	if err != nil {
		s.log.WarnContext(ctx, "stock_reservation_failed event not written", "key", req.Key, "error", err)
	}
}

// findReservation reads a reservation by id (res_…) or, failing that, by
// the key it was made with.
func findReservation(ctx context.Context, q store.Querier, ref string) (Reservation, error) {
	if ref == "" {
		return Reservation{}, notFound("reservation", ref)
	}
	if id.Valid(reservationPrefix, ref) {
		r, _, found, err := readReservation(ctx, q, "id", ref)
		if err != nil || found {
			return r, err
		}
	}
	r, _, found, err := readReservation(ctx, q, "idempotency_key", ref)
	if err != nil {
		return Reservation{}, err
	}
	if !found {
		return Reservation{}, notFound("reservation", ref)
	}
	return r, nil
}

// GetReservation returns a reservation by id or by the key it was made
// with. Errors: not_found.
func (s *Service) GetReservation(ctx context.Context, ref string) (Reservation, error) {
	r, err := findReservation(ctx, s.db, ref)
	if err != nil {
		return Reservation{}, fmt.Errorf("get reservation: %w", err)
	}
	return r, nil
}

// Release gives a pending reservation's stock back; ref is its id or key.
// It is idempotent: releasing a released or expired reservation returns it
// unchanged. Errors: not_found, conflict for a committed one (a sale is
// undone by a return, not a release).
func (s *Service) Release(ctx context.Context, ref string) (Reservation, error) {
	var (
		out     Reservation
		changed bool
	)
	err := s.write(ctx, func(tx *store.Tx) error {
		changed = false
		r, err := findReservation(ctx, tx, ref)
		if err != nil {
			return err
		}
		switch r.State {
		case StateReleased, StateExpired:
			out = r
			return nil
		case StateCommitted:
			return apperr.New(apperr.Conflict, "reservation %s is committed (a sale); it cannot be released", r.ID)
		}
		now := s.now()
		ok, err := closeReservation(ctx, tx, r.ID, StateReleased, now, "", nil)
		if err != nil {
			return err
		}
		if !ok {
			return errConcurrentChange // closed meanwhile: decide again on its new state
		}
		if err := s.giveBack(ctx, tx, r, now); err != nil {
			return err
		}
		r.State, r.UpdatedAt, r.ClosedAt = StateReleased, now, &now
		if err := s.emit(ctx, tx, eventReleased(r, StateReleased)); err != nil {
			return err
		}
		out, changed = r, true
		return nil
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("release reservation %s: %w", ref, err)
	}
	if changed {
		s.metrics.reservation(outcomeReleased, 1)
	}
	return out, nil
}

// giveBack returns a reservation's reserved units to their levels.
func (s *Service) giveBack(ctx context.Context, tx *store.Tx, r Reservation, now time.Time) error {
	if err := lockItems(ctx, tx, r.skus()); err != nil {
		return err
	}
	for _, a := range r.allocationsInLockOrder() {
		if err := unreserveAt(ctx, tx, a.sku, a.LocationID, a.Quantity, now); err != nil {
			return err
		}
	}
	return nil
}

func (r Reservation) skus() []string {
	out := make([]string, len(r.Lines))
	for i, l := range r.Lines {
		out[i] = l.SKU
	}
	return out
}

type skuAllocation struct {
	sku string
	Allocation
}

// allocationsInLockOrder lists the allocations in (SKU, location) order,
// the order every writer locks levels in.
func (r Reservation) allocationsInLockOrder() []skuAllocation {
	var out []skuAllocation
	for _, l := range r.Lines {
		for _, a := range l.Allocations {
			out = append(out, skuAllocation{l.SKU, a})
		}
	}
	slices.SortFunc(out, func(a, b skuAllocation) int {
		return cmp.Or(cmp.Compare(a.sku, b.sku), cmp.Compare(a.LocationID, b.LocationID))
	})
	return out
}

// Commit turns a pending reservation into a sale for orderID: on_hand and
// reserved drop by its quantities at each location, each change written to
// the audit log (reason sale, with the reservation and order ids). ref is
// the reservation's id or key. orderID may be empty when the reservation
// was made with one. Idempotent: committing a committed reservation for
// the same order returns it unchanged.
//
// Errors: not_found; validation_failed "order_id" (none given nor
// recorded); conflict when the reservation is released or expired (also a
// pending one past its expires_at: its stock is about to be given back), or
// committed or reserved for another order.
func (s *Service) Commit(ctx context.Context, ref, orderID string) (Reservation, error) {
	if orderID != "" && (len(orderID) > MaxOrderIDLen || !printable(orderID)) {
		var v apperr.Validation
		v.Addf("order_id", "invalid", "order_id must be printable ASCII of at most %d characters", MaxOrderIDLen)
		return Reservation{}, fmt.Errorf("commit reservation: %w", v.Err())
	}
	var (
		out     Reservation
		changed bool
	)
	err := s.write(ctx, func(tx *store.Tx) error {
		changed = false
		r, err := findReservation(ctx, tx, ref)
		if err != nil {
			return err
		}
		if r.OrderID != nil && orderID != "" && *r.OrderID != orderID {
			return apperr.New(apperr.Conflict, "reservation %s is for order %s, not %s", r.ID, *r.OrderID, orderID)
		}
		switch r.State {
		case StateCommitted:
			out = r
			return nil
		case StateReleased, StateExpired:
			return apperr.New(apperr.Conflict, "reservation %s is %s; reserve again", r.ID, r.State)
		}
		oid := orderID
		if oid == "" && r.OrderID != nil {
			oid = *r.OrderID
		}
		if oid == "" {
			var v apperr.Validation
			v.Add("order_id", "required", "order_id is required: the reservation was made without one")
			return v.Err()
		}
		now := s.now()
		if !now.Before(r.ExpiresAt) {
			return apperr.New(apperr.Conflict, "reservation %s expired at %s; reserve again", r.ID, r.ExpiresAt.Format(time.RFC3339))
		}
		ok, err := closeReservation(ctx, tx, r.ID, StateCommitted, now, oid, nil)
		if err != nil {
			return err
		}
		if !ok {
			return errConcurrentChange
		}
		if err := lockItems(ctx, tx, r.skus()); err != nil {
			return err
		}
		actorName := actor(ctx)
		for _, a := range r.allocationsInLockOrder() {
			after, err := sellAt(ctx, tx, a.sku, a.LocationID, a.Quantity, now)
			if err != nil {
				return err
			}
			resID := r.ID
			adj := Adjustment{
				ID: id.New(adjustmentPrefix), SKU: a.sku, LocationID: a.LocationID, Delta: -a.Quantity,
				OnHandBefore: after + a.Quantity, OnHandAfter: after, Reason: ReasonSale, Actor: actorName,
				ReservationID: &resID, OrderID: &oid, CreatedAt: now,
			}
			if err := insertAdjustment(ctx, tx, adj); err != nil {
				return err
			}
		}
		r.State, r.OrderID, r.UpdatedAt, r.ClosedAt = StateCommitted, &oid, now, &now
		if err := s.emit(ctx, tx, eventCommitted(r)); err != nil {
			return err
		}
		out, changed = r, true
		return nil
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("commit reservation %s: %w", ref, err)
	}
	if changed {
		s.metrics.reservation(outcomeCommitted, 1)
	}
	return out, nil
}

// Restock undoes the sale of a committed reservation whose order was
// cancelled before anything shipped: each allocation's units go back on
// hand at the location they were sold from, each change written to the
// audit log (reason returned, with the reservation and order ids) and
// announced as stock_adjusted. ref is the reservation's id or key. It is
// idempotent: a reservation is restocked at most once (its returned audit
// rows say so, checked under the SKU locks), and later calls return it
// unchanged. The reservation stays committed. Errors: not_found; conflict
// for a reservation that is not committed (a pending one is released
// instead).
func (s *Service) Restock(ctx context.Context, ref string) (Reservation, error) {
	var out Reservation
	err := s.write(ctx, func(tx *store.Tx) error {
		r, err := findReservation(ctx, tx, ref)
		if err != nil {
			return err
		}
		if r.State != StateCommitted {
			return apperr.New(apperr.Conflict, "reservation %s is %s, not committed; only a sale can be restocked", r.ID, r.State)
		}
		if err := lockItems(ctx, tx, r.skus()); err != nil {
			return err
		}
		done, err := restocked(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		out = r
		if done {
			return nil
		}
		now, actorName, resID := s.now(), actor(ctx), r.ID
		var orderID *string
		note := "sale undone"
		if r.OrderID != nil {
			oid := *r.OrderID
			orderID, note = &oid, "order "+oid+" cancelled"
		}
		for _, a := range r.allocationsInLockOrder() {
			after, err := restockAt(ctx, tx, a.sku, a.LocationID, a.Quantity, now)
			if err != nil {
				return err
			}
			adj := Adjustment{
				ID: id.New(adjustmentPrefix), SKU: a.sku, LocationID: a.LocationID, Delta: a.Quantity,
				OnHandBefore: after - a.Quantity, OnHandAfter: after, Reason: ReasonReturned, Note: note, Actor: actorName,
				ReservationID: &resID, OrderID: orderID, CreatedAt: now,
			}
			if err := insertAdjustment(ctx, tx, adj); err != nil {
				return err
			}
			if err := s.emit(ctx, tx, eventAdjusted(adj)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("restock reservation %s: %w", ref, err)
	}
	return out, nil
}

// ExpireStale releases every pending reservation whose expires_at is at or
// before now, each in its own transaction, and returns how many it
// expired. Safe to run from several processes at once: each reservation
// moves from pending to expired by a conditional UPDATE, so exactly one of
// them gives its stock back (and publishes stock_released with reason
// "expired").
func (s *Service) ExpireStale(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC()
	total := 0
	for {
		ids, err := expiredIDs(ctx, s.db, now, expiryBatch)
		if err != nil {
			return total, fmt.Errorf("expire reservations: %w", err)
		}
		for _, rid := range ids {
			expired := false
			err := s.db.InTx(ctx, func(tx *store.Tx) error {
				expired = false
				ok, err := closeReservation(ctx, tx, rid, StateExpired, now, "", &now)
				if err != nil || !ok {
					return err // !ok: released, committed or expired by someone else
				}
				r, _, _, err := readReservation(ctx, tx, "id", rid)
				if err != nil {
					return err
				}
				if err := s.giveBack(ctx, tx, r, now); err != nil {
					return err
				}
				if err := s.emit(ctx, tx, eventReleased(r, StateExpired)); err != nil {
					return err
				}
				expired = true
				return nil
			})
			if err != nil {
				return total, fmt.Errorf("expire reservation %s: %w", rid, err)
			}
			if expired {
				total++
				s.metrics.reservation(outcomeExpired, 1)
			}
		}
		if len(ids) < expiryBatch {
			return total, nil
		}
	}
}

// Run sweeps expired reservations every Config.ExpiryInterval until ctx is
// done, then returns nil. A failed sweep is logged and tried again at the
// next tick. It returns at once with the error of an invalid Config.
func (s *Service) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	t := time.NewTicker(s.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		n, err := s.ExpireStale(ctx, s.now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WarnContext(ctx, "reservation expiry failed", "error", err)
		case n > 0:
			s.log.InfoContext(ctx, "reservations expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
