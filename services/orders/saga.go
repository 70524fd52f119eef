package orders

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/payments"
	"github.com/soukhq/souk/services/pricing"
)

// Saga statuses: running forward, compensating after a failure (or a
// cancellation), done (the order is confirmed or cancelled).
const (
	sagaRunning      = "running"
	sagaCompensating = "compensating"
	sagaDone         = "done"
)

// The saga's steps, forward in order; and the compensations, in the order
// they run (the reverse of the steps they undo). Capture has no
// compensation of its own: void_payment refunds a captured payment.
// Commit's is release_stock, which restocks a committed reservation.
const (
	stepRedeem    = "redeem_vouchers"
	stepReserve   = "reserve_stock"
	stepAuthorize = "authorize_payment"
	stepCommit    = "commit_stock"
	stepCapture   = "capture_payment"
	stepConfirm   = "confirm"

	stepVoid            = "void_payment"
	stepReleaseStock    = "release_stock"
	stepReleaseVouchers = "release_vouchers"
)

var (
	forwardSteps      = []string{stepRedeem, stepReserve, stepAuthorize, stepCommit, stepCapture, stepConfirm}
	compensationSteps = []string{stepVoid, stepReleaseStock, stepReleaseVouchers}
)

// Actions and outcomes of orders_saga_steps.
const (
	actionDo         = "do"
	actionCompensate = "compensate"

	outcomeOK      = "ok"
	outcomeSkipped = "skipped"
	outcomeRetry   = "retry"
	outcomeFailed  = "failed"
)

// epoch is lease_until of a saga nobody holds.
var epoch = time.Unix(0, 0).UTC()

// The idempotency keys of the participant operations: the order id and the
// operation, so a retried or resumed step never redeems, reserves,
// authorizes, captures, voids or refunds twice.
const (
	opRedeem       = "redeem"    // pricing.Redeem; pricing.Release takes it back
	opReserve      = "reserve"   // inventory.Reserve; Release, Commit and Restock refer to it
	opAuthorize    = "authorize" // payments.Authorize and ByKey
	opCapture      = "capture"   // payments.Capture
	opVoid         = "void"      // payments.Void
	opCancelRefund = "refund-cancel"
)

func opKey(orderID, op string) string { return orderID + "/" + op }

var (
	// errLeaseLost: another process took the saga over (this one was
	// too slow, past its lease); this one must stop touching it.
	errLeaseLost = errors.New("the saga's lease was taken over")
	// errConcurrentChange: the order changed between read and write.
	errConcurrentChange = errors.New("changed concurrently")
)

// Run is the saga executor: Config.Workers goroutines run claimed sagas
// until ctx is done, then Run returns nil once every worker has finished
// the step in hand (a shutdown never cuts a participant call short, and
// releases the sagas it held). On start it resumes every unfinished saga
// that no live lease holds — nothing a crashed process had in memory is
// needed — and then runs the sagas checkout hands it (in-process signal),
// those whose backoff ended and those a crashed process leaves behind
// (polled every Config.PollInterval). Any number of processes may Run on
// one database: a saga is claimed by a conditional UPDATE with a lease
// (Config.LeaseTTL), so only one runs it at a time. Run returns an error
// only when it is already running.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("orders: the saga executor is already running")
	}
	defer s.running.Store(false)
	work := make(chan *execution)
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for ex := range work {
				if ex.g.leaseOwner == "" {
					ex = s.claimFor(ctx, ex.g.orderID)
				}
				if ex != nil {
					s.runClaimed(ctx, ex)
				}
			}
		})
	}
	defer s.releaseHandedOver()
	defer wg.Wait()
	defer close(work)
	send := func(ex *execution) bool {
		select {
		case work <- ex:
			return true
		case <-ctx.Done():
			if ex.g.leaseOwner != "" {
				ex.release()
			}
			return false
		}
	}
	byID := func(orderID string) bool { return send(&execution{s: s, g: sagaRow{orderID: orderID}}) }
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	for due := true; ; {
		if due && !s.dispatchDue(ctx, byID) {
			return nil
		}
		due = false
		select {
		case <-ctx.Done():
			return nil
		case orderID := <-s.ready:
			if !byID(orderID) {
				return nil
			}
		case ex := <-s.claimed:
			if !send(ex) {
				return nil
			}
		case <-poll.C:
			due = true
		}
	}
}

// handOver gives the saga checkout just created, leased to this process,
// to the executor. When ctx ends first the lease expires and the saga is
// resumed like a crashed process's.
func (s *Service) handOver(ctx context.Context, ex *execution) {
	select {
	case s.claimed <- ex:
	case <-ctx.Done():
	}
}

// releaseHandedOver releases the sagas handed over after the executor
// stopped taking them, so the next process need not wait for their lease.
func (s *Service) releaseHandedOver() {
	for {
		select {
		case ex := <-s.claimed:
			ex.release()
		default:
			return
		}
	}
}

// dispatchDue hands every saga that is due and unheld to the workers;
// false when ctx ended.
func (s *Service) dispatchDue(ctx context.Context, send func(string) bool) bool {
	batch := 4 * s.cfg.Workers
	for range 16 { // bounded: sagas that stay due are found at the next poll
		ids, err := dueSagas(ctx, s.db, s.now(), batch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "orders: could not list due sagas", "error", err)
			}
			return ctx.Err() == nil
		}
		for _, orderID := range ids {
			if !send(orderID) {
				return false
			}
		}
		if len(ids) < batch {
			return true
		}
	}
	return true
}

// next is what a worker does after a step.
type next int

const (
	nextNow   next = iota // run the next step at once
	nextLater             // the saga waits (backoff); its lease is released
	nextDone              // the saga is finished
	nextCrash             // a test hook "killed" the process here
)

// execution is one claim of one saga by this process.
type execution struct {
	s       *Service
	g       sagaRow
	r       record
	resumed bool // claimed from a holder that stopped without releasing it
	// skipped are the records of steps that had nothing to do, written
	// with the next step's (a crash before it merely skips them again).
	skipped []stepRecord
}

// claimFor claims the saga; nil when it is not due, held elsewhere or
// cannot be read.
func (s *Service) claimFor(ctx context.Context, orderID string) *execution {
	ex, ok, err := s.claim(ctx, orderID)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "orders: could not claim saga", "order_id", orderID, "error", err)
		}
		return nil
	}
	if !ok {
		return nil
	}
	return ex
}

// runClaimed runs a saga this process holds until it finishes or has to
// wait.
func (s *Service) runClaimed(ctx context.Context, ex *execution) {
	orderID := ex.g.orderID
	for {
		if ctx.Err() != nil {
			ex.release()
			return
		}
		n, err := ex.step(ctx)
		if errors.Is(err, errCrashed) {
			return
		}
		if errors.Is(err, errLeaseLost) {
			s.log.WarnContext(ctx, "orders: another process took this saga over; leaving it to it", "order_id", orderID, "step", ex.g.step)
			return
		}
		if err != nil {
			// The database failed under the save: the saga goes on from
			// what the database holds, once it answers again.
			s.metrics.sagaSaveFailed()
			s.log.WarnContext(ctx, "orders: saga step not recorded; retrying from the last recorded step", "order_id", orderID, "step", ex.g.step, "error", err)
			if ex = s.retake(ctx, orderID); ex == nil {
				return
			}
			continue
		}
		switch n {
		case nextLater:
			s.kickAt(orderID, ex.g.nextAttemptAt)
			return
		case nextDone, nextCrash:
			return
		}
		ex.resumed = false
	}
}

// retake reads again a saga this process holds after a save of it failed.
// The execution's copy may be ahead of the database (the step it could not
// record), so the saga goes on from the database's copy, its step repeated
// as a resumed one: every participant call is idempotent by key. Without
// it the saga would wait for its own lease to expire (Config.LeaseTTL). nil
// when ctx ends, the saga is finished, or another process holds it now.
func (s *Service) retake(ctx context.Context, orderID string) *execution {
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil // the lease expires and the saga is resumed
		case <-time.After(s.backoff(n)):
		}
		g, err := getSaga(ctx, s.db, orderID)
		if err == nil && (g.status == sagaDone || g.leaseOwner != s.owner) {
			return nil
		}
		if err == nil {
			var r record
			if r, err = getOrder(ctx, s.db, orderID); err == nil {
				return &execution{s: s, g: g, r: r, resumed: true}
			}
		}
		if n%10 == 0 && ctx.Err() == nil {
			s.log.WarnContext(ctx, "orders: still cannot read a saga to retry its step", "order_id", orderID, "attempts", n, "error", err)
		}
	}
}

// claim takes the saga if it is due and unheld.
func (s *Service) claim(ctx context.Context, orderID string) (*execution, bool, error) {
	g, err := getSaga(ctx, s.db, orderID)
	if errors.Is(err, errNoOrder) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	if g.status == sagaDone || g.nextAttemptAt.After(now) || (g.leaseOwner != "" && !g.leaseUntil.Before(now)) {
		return nil, false, nil
	}
	until := now.Add(s.cfg.LeaseTTL)
	ok, err := claimSaga(ctx, s.db, orderID, g.leaseOwner, s.owner, now, until)
	if err != nil || !ok {
		return nil, false, err
	}
	r, err := getOrder(ctx, s.db, orderID)
	if err != nil {
		return nil, false, err
	}
	ex := &execution{s: s, g: g, r: r, resumed: g.leaseOwner != ""}
	ex.g.leaseOwner, ex.g.leaseUntil = s.owner, until
	if ex.resumed {
		s.log.InfoContext(ctx, "orders: resuming a saga whose process stopped", "order_id", orderID, "step", g.step, "previous_owner", g.leaseOwner)
	}
	return ex, true, nil
}

// kickAt kicks the saga when its backoff ends (by this process's clock; the
// poll catches it otherwise).
func (s *Service) kickAt(orderID string, at time.Time) {
	time.AfterFunc(max(at.Sub(s.now()), 0), func() { s.kick(orderID) })
}

// release hands the saga back without progress (a shutdown).
func (ex *execution) release() {
	ex.g.leaseOwner, ex.g.leaseUntil = "", epoch
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ex.save(ctx, nil, nil); err != nil {
		ex.s.log.Warn("orders: could not release a saga at shutdown; its lease will expire", "order_id", ex.g.orderID, "error", err)
	}
}

// step runs the saga's next step (or starts compensating) and records it.
func (ex *execution) step(ctx context.Context) (next, error) {
	s, g := ex.s, &ex.g
	if g.status == sagaRunning {
		now := s.now()
		switch {
		case g.cancelRequested != "":
			detail := reasonDetail{Message: "cancelled by staff: " + g.cancelRequested, Errors: []apperr.FieldError{}}
			return ex.compensateFrom(ctx, nil, g.step, g.attempts > 0 && g.step != stepConfirm, ReasonByStaff, detail)
		case g.step != stepConfirm && !now.Before(g.deadline):
			detail := reasonDetail{Message: fmt.Sprintf("the checkout did not finish within %v; nothing was charged", s.cfg.SagaDeadline),
				Errors: []apperr.FieldError{}}
			return ex.compensateFrom(ctx, nil, g.step, g.attempts > 0, ReasonDeadlineExceeded, detail)
		}
		return ex.forward(ctx)
	}
	return ex.backward(ctx)
}

// result is what a step did: skipped (nothing to do), or err; and the
// change it makes to the order and the saga when it is recorded.
type result struct {
	skipped bool
	err     error
	note    string // recorded with an ok outcome (a warning)
	saga    func(g *sagaRow)
	order   func(ctx context.Context, tx *store.Tx, r *record) error
}

// forward runs the current forward step once.
func (ex *execution) forward(ctx context.Context) (next, error) {
	s, g := ex.s, &ex.g
	step := g.step
	started := s.now()
	if g.stepStartedAt == nil {
		g.stepStartedAt = &started
	}
	g.attempts++
	res := ex.do(ctx, step)
	if s.hooks.afterCall != nil && s.hooks.afterCall(g.orderID, step) {
		return nextCrash, nil
	}
	rec := ex.record(step, actionDo, started, res)
	now := s.now()
	switch {
	case res.err == nil:
		if res.saga != nil {
			res.saga(g)
		}
		i := slices.Index(forwardSteps, step)
		if step == stepConfirm {
			return ex.finish(ctx, []stepRecord{rec}, res.order)
		}
		g.step, g.attempts, g.stepStartedAt, g.nextAttemptAt = forwardSteps[i+1], 0, nil, now
		if res.skipped && res.order == nil && res.saga == nil {
			// Nothing happened that a crash could lose: no transaction.
			ex.skipped = append(ex.skipped, rec)
			return nextNow, nil
		}
		return nextNow, ex.saveStep(ctx, rec, res.order)
	case transient(step, res.err):
		giveUp := step != stepConfirm &&
			(now.Sub(*g.stepStartedAt) >= s.cfg.StepTimeout || !now.Before(g.deadline))
		if !giveUp {
			return ex.retryLater(ctx, rec)
		}
		rec.outcome = outcomeFailed
		reason, detail := unavailableReason(step, s.cfg.StepTimeout)
		return ex.compensateFrom(ctx, &rec, step, true, reason, detail)
	default:
		reason, detail := ex.failureReason(step, res.err)
		return ex.compensateFrom(ctx, &rec, step, false, reason, detail)
	}
}

// compensationRefusals is how often a compensation a participant refuses
// is tried before it is recorded as failed.
const compensationRefusals = 3

// backward runs the current compensation once. Compensations never give
// up on transient failures; one a participant keeps refusing
// (compensationRefusals times) is recorded as failed (and logged for a
// person) and the next one runs.
func (ex *execution) backward(ctx context.Context) (next, error) {
	s, g := ex.s, &ex.g
	step := g.step
	started := s.now()
	if g.stepStartedAt == nil {
		g.stepStartedAt = &started
	}
	g.attempts++
	res := ex.undo(ctx, step)
	if s.hooks.afterCall != nil && s.hooks.afterCall(g.orderID, step) {
		return nextCrash, nil
	}
	rec := ex.record(step, actionCompensate, started, res)
	switch {
	case res.err != nil && transient(step, res.err):
		return ex.retryLater(ctx, rec)
	case res.err != nil && g.attempts < compensationRefusals:
		// A refusal may come from a state about to settle (a staff refund
		// of the payment still in flight): ask again a few times first.
		rec.outcome = outcomeRetry
		return ex.retryLater(ctx, rec)
	case res.err != nil:
		s.log.ErrorContext(ctx, "orders: a compensation was refused; a person must settle it", "order_id", g.orderID, "step", step, "error", res.err)
	case res.saga != nil:
		res.saga(g)
	}
	change := res.order
	if res.err != nil {
		change = nil
	}
	i := slices.Index(compensationSteps, step)
	if i == len(compensationSteps)-1 {
		return ex.finish(ctx, []stepRecord{rec}, change)
	}
	g.step, g.attempts, g.stepStartedAt, g.nextAttemptAt = compensationSteps[i+1], 0, nil, s.now()
	return nextNow, ex.saveStep(ctx, rec, change)
}

// compensateFrom switches the saga to compensating after failedStep
// (compensating it too when include: it may have acted — a transient
// failure, a deadline or a staff cancellation after an attempt), with the
// reason the client will be told. rec, when set, is the failing attempt.
func (ex *execution) compensateFrom(ctx context.Context, rec *stepRecord, failedStep string, include bool, reason string, detail reasonDetail) (next, error) {
	s, g := ex.s, &ex.g
	last := slices.Index(forwardSteps, failedStep)
	if !include {
		last--
	}
	// The first compensation undoes the last step that may have acted.
	first := ""
	switch {
	case last >= slices.Index(forwardSteps, stepAuthorize):
		first = stepVoid
	case last == slices.Index(forwardSteps, stepReserve):
		first = stepReleaseStock
	case last == slices.Index(forwardSteps, stepRedeem):
		first = stepReleaseVouchers
	}
	g.status, g.failedStep, g.reason, g.detail = sagaCompensating, failedStep, reason, detail
	g.paymentToken = "" // never needed again
	g.step, g.attempts, g.stepStartedAt, g.nextAttemptAt = first, 0, nil, s.now()
	s.metrics.compensation(reason)
	s.log.InfoContext(ctx, "orders: saga compensating", "order_id", g.orderID, "failed_step", failedStep, "reason", reason)
	var recs []stepRecord
	if rec != nil {
		recs = append(recs, *rec)
	}
	if first == "" {
		return ex.finish(ctx, recs, nil)
	}
	return nextNow, ex.save(ctx, recs, nil)
}

// retryLater records a transient failure and releases the saga until its
// backoff ends.
func (ex *execution) retryLater(ctx context.Context, rec stepRecord) (next, error) {
	s, g := ex.s, &ex.g
	g.nextAttemptAt = s.now().Add(s.backoff(g.attempts))
	g.leaseOwner, g.leaseUntil = "", epoch
	if err := ex.save(ctx, []stepRecord{rec}, nil); err != nil {
		return 0, err
	}
	return nextLater, nil
}

// backoff is the pause after the n-th failed attempt: RetryBackoff
// doubling up to MaxBackoff, ±50 % jitter so retries spread out.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return d/2 + rand.N(d)
}

// saveStep records a finished attempt and the move to the next step, then
// runs the afterSave hook.
func (ex *execution) saveStep(ctx context.Context, rec stepRecord, change func(context.Context, *store.Tx, *record) error) error {
	if err := ex.save(ctx, []stepRecord{rec}, change); err != nil {
		return err
	}
	if h := ex.s.hooks.afterSave; h != nil && h(ex.g.orderID, rec.step) {
		return errCrashed
	}
	return nil
}

// errCrashed stops a worker as if its process died (test hooks only).
var errCrashed = errors.New("crashed (test hook)")

// finish ends the saga: the order confirmed (when it ran forward to the
// end) or cancelled (after its compensations), with the event saying so,
// in the transaction that records the last step.
func (ex *execution) finish(ctx context.Context, recs []stepRecord, change func(context.Context, *store.Tx, *record) error) (next, error) {
	s, g := ex.s, &ex.g
	now := s.now()
	confirm := g.status == sagaRunning
	g.status, g.attempts, g.stepStartedAt, g.nextAttemptAt = sagaDone, 0, nil, now
	g.leaseOwner, g.leaseUntil, g.paymentToken = "", epoch, ""
	var final record
	err := ex.save(ctx, recs, func(ctx context.Context, tx *store.Tx, r *record) error {
		if change != nil {
			if err := change(ctx, tx, r); err != nil {
				return err
			}
		}
		if confirm {
			r.Status, r.ConfirmedAt = StatusConfirmed, &now
			final = *r
			return s.emit(ctx, tx, EventOrderConfirmed, r.ID, confirmedData(r.Order))
		}
		errs := g.detail.Errors
		if errs == nil {
			errs = []apperr.FieldError{}
		}
		r.Status = StatusCancelled
		r.Cancellation = &Cancellation{Reason: g.reason, Message: g.detail.Message, Errors: errs, CancelledAt: now}
		final = *r
		return s.emit(ctx, tx, EventOrderCancelled, r.ID, OrderCancelled{OrderID: r.ID, CustomerID: r.CustomerID, Email: r.Email,
			Reason: g.reason, Message: g.detail.Message, Refunded: money.New(r.refundedAmt, r.Currency), CancelledAt: now})
	})
	if err != nil {
		return 0, err
	}
	var answer *Order
	if confirm {
		s.metrics.orderConfirmed(final.Total)
		s.log.InfoContext(ctx, "order confirmed", "order_id", g.orderID, "total", final.Total.String())
		if g.cancelRequested != "" {
			// Staff asked to cancel while the last step ran: the order is
			// confirmed, so its saga reopens to undo it all.
			return ex.reopen(ctx)
		}
		// The order as committed (save keeps ex.r so), as load would read
		// it: a saga that just confirmed an order has made no fulfilment
		// or refund of it.
		r := ex.r.clone()
		r.derive()
		answer = &r.Order
	} else {
		s.metrics.orderCancelled(g.reason)
		s.log.InfoContext(ctx, "order cancelled", "order_id", g.orderID, "reason", g.reason)
	}
	s.waiters.notify(g.orderID, answer)
	if h := s.hooks.afterSave; h != nil && len(recs) > 0 && h(g.orderID, recs[len(recs)-1].step) {
		return nextCrash, nil
	}
	return nextDone, nil
}

// save records the saga's state, the attempts and the order's change in
// one transaction — if this process still holds the saga's lease — and
// picks up a cancellation staff asked for meanwhile. It is not cut short
// by ctx's cancellation: what a participant did must be recorded.
func (ex *execution) save(ctx context.Context, recs []stepRecord, change func(context.Context, *store.Tx, *record) error) error {
	s := ex.s
	ctx = context.WithoutCancel(ctx)
	owner := s.owner
	if ex.g.leaseOwner != "" {
		ex.g.leaseUntil = s.now().Add(s.cfg.LeaseTTL) // progress renews the lease
	}
	recs = append(ex.skipped, recs...)
	if h := s.hooks.failSave; h != nil {
		if err := h(ex.g.orderID); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		var (
			updated   *record
			cancelReq string
		)
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			updated = nil
			var (
				ok  bool
				err error
			)
			ok, cancelReq, err = saveSaga(ctx, tx, ex.g, owner)
			if err != nil {
				return err
			}
			if !ok {
				return errLeaseLost
			}
			for _, rec := range recs {
				if err := insertStep(ctx, tx, ex.g.orderID, rec); err != nil {
					return err
				}
			}
			if change == nil {
				return nil
			}
			// The order as this execution last wrote or read it; after a
			// concurrent change (a staff operation) as it is now.
			r := ex.r.clone()
			if attempt > 1 {
				if r, err = getOrder(ctx, tx, ex.g.orderID); err != nil {
					return err
				}
			}
			prev := r.Version
			if err := change(ctx, tx, &r); err != nil {
				return err
			}
			r.Version, r.UpdatedAt = prev+1, s.now()
			if ok, err = updateOrder(ctx, tx, r, prev); err != nil {
				return err
			}
			if !ok {
				return errConcurrentChange
			}
			updated = &r
			return nil
		})
		if errors.Is(err, errConcurrentChange) && attempt < 5 {
			continue
		}
		if err != nil {
			return err
		}
		ex.skipped = nil
		if updated != nil {
			ex.r = *updated
		}
		ex.g.cancelRequested = cancelReq
		for _, rec := range recs {
			s.metrics.step(rec.step, rec.action, rec.outcome, rec.finished.Sub(rec.started))
		}
		return nil
	}
}

// record is the history row of one attempt.
func (ex *execution) record(step, action string, started time.Time, res result) stepRecord {
	rec := stepRecord{id: id.New(stepPrefix), step: step, action: action, outcome: outcomeOK, attempt: ex.g.attempts,
		started: started, finished: ex.s.now(), errMsg: res.note}
	switch {
	case res.err != nil:
		rec.outcome = outcomeFailed
		if transient(step, res.err) {
			rec.outcome = outcomeRetry
		}
		rec.errCode, rec.errMsg = string(apperr.CodeOf(res.err)), truncate(res.err.Error(), 500)
		if errors.Is(res.err, context.DeadlineExceeded) {
			rec.errCode = "timeout"
		}
	case res.skipped:
		rec.outcome = outcomeSkipped
	}
	return rec
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// transient reports whether a participant's error may go away by itself:
// it was unreachable, failed internally, timed out, or asked to retry.
func transient(step string, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	switch apperr.CodeOf(err) {
	case apperr.Unavailable, apperr.Internal, apperr.RateLimited, apperr.IdempotencyInFlight:
		return true
	case apperr.Conflict:
		// inventory: "the stock kept changing; retry with the same key".
		return step == stepReserve
	}
	return false
}

// unavailableReason is the reason of a saga whose step kept failing
// transiently until its time ran out.
func unavailableReason(step string, d time.Duration) (string, reasonDetail) {
	if step == stepAuthorize || step == stepCapture {
		return ReasonPaymentUnavailable, reasonDetail{Errors: []apperr.FieldError{},
			Message: fmt.Sprintf("payments did not answer within %v; nothing was charged; try again", d)}
	}
	return ReasonServiceUnavailable, reasonDetail{Errors: []apperr.FieldError{},
		Message: fmt.Sprintf("a service the checkout needs did not answer within %v (%s); try again", d, step)}
}

// failureReason is the reason of a saga whose step a participant refused,
// with what the client is told: the short SKUs, the decline code, the
// voucher that could not be used.
func (ex *execution) failureReason(step string, err error) (string, reasonDetail) {
	code := apperr.CodeOf(err)
	var e *apperr.Error
	errors.As(err, &e)
	msg := ""
	if e != nil {
		msg = e.Message
	}
	d := reasonDetail{Message: msg, Errors: []apperr.FieldError{}}
	switch {
	case step == stepRedeem && strings.HasPrefix(string(code), "code_"):
		for _, f := range e.Fields {
			d.Errors = append(d.Errors, apperr.FieldError{Field: "discount_codes", Code: f.Code, Message: f.Message})
		}
		if len(d.Errors) == 0 {
			d.Errors = append(d.Errors, apperr.FieldError{Field: "discount_codes", Code: string(code), Message: msg})
		}
		return string(code), d
	case step == stepReserve && code == inventory.CodeOutOfStock:
		shortages, _ := inventory.InsufficientStock(err)
		var skus []string
		for _, sh := range shortages {
			i := slices.IndexFunc(ex.r.Items, func(it Item) bool { return it.SKU == sh.SKU })
			d.Errors = append(d.Errors, apperr.FieldError{Field: fmt.Sprintf("items[%d]", max(i, 0)), Code: string(inventory.CodeOutOfStock),
				Message: fmt.Sprintf("%s: want %d, have %d", sh.SKU, sh.Want, sh.Have)})
			skus = append(skus, sh.SKU)
		}
		d.Message = "not enough stock of " + strings.Join(skus, ", ")
		if len(skus) == 0 {
			d.Message = "not enough stock"
		}
		return ReasonOutOfStock, d
	case step == stepAuthorize && code == payments.CodeDeclined:
		decline := "card_declined"
		if e != nil && len(e.Fields) > 0 && e.Fields[0].Code != "" {
			decline = e.Fields[0].Code
		}
		d.Errors = append(d.Errors, apperr.FieldError{Field: "payment", Code: decline, Message: "the payment was declined (" + decline + ")"})
		if d.Message == "" {
			d.Message = "the payment was declined"
		}
		return ReasonPaymentDeclined, d
	case step == stepCapture:
		d.Message = "the payment was authorized but could not be captured: " + msg
		return ReasonCaptureFailed, d
	}
	d.Message = fmt.Sprintf("%s was refused: %s", step, msg)
	return ReasonCheckoutFailed, d
}

// do runs a forward step's participant call, through the participant's
// resilience policy (one attempt bounded by CallTimeout; the saga retries
// durably). A shutdown (ctx cancelled) does not cut the call short: its
// outcome must be recorded.
func (ex *execution) do(ctx context.Context, step string) result {
	s, r := ex.s, ex.r
	ctx = context.WithoutCancel(ctx)
	switch step {
	case stepRedeem:
		if len(r.DiscountCodes) == 0 {
			return result{skipped: true}
		}
		return result{err: s.pol.pricing.Do(ctx, func(ctx context.Context) error {
			_, err := s.deps.Pricing.Redeem(ctx, pricing.RedeemRequest{Key: opKey(r.ID, opRedeem), OrderID: r.ID,
				CustomerID: pricingCustomer(r), Codes: r.DiscountCodes, Currency: r.Currency})
			return err
		})}

	case stepReserve:
		var res inventory.Reservation
		err := s.pol.inventory.Do(ctx, func(ctx context.Context) (err error) {
			res, err = s.deps.Inventory.Reserve(ctx, inventory.ReserveRequest{Key: opKey(r.ID, opReserve), OrderID: r.ID,
				Lines: reserveLines(r.Items), TTL: s.cfg.ReservationTTL})
			return err
		})
		if err != nil {
			return result{err: err}
		}
		return result{saga: func(g *sagaRow) { g.reservationID = res.ID }}

	case stepAuthorize:
		if r.Total.Amount == 0 {
			return result{skipped: true, note: "nothing to pay"}
		}
		key := opKey(r.ID, opAuthorize)
		var p payments.Payment
		if ex.resumed || ex.g.attempts > 1 {
			// An earlier attempt may have authorized before its answer was
			// lost (or recorded): ask payments what that key did first.
			err := s.pol.payments.Do(ctx, func(ctx context.Context) (err error) {
				p, err = s.deps.Payments.ByKey(ctx, key)
				return err
			})
			switch {
			case err == nil && p.Status == payments.StatusFailed:
				return result{err: declined(p)}
			case err == nil:
				return authorized(p)
			case !apperr.Is(err, apperr.NotFound):
				return result{err: err}
			}
		}
		err := s.pol.payments.Do(ctx, func(ctx context.Context) (err error) {
			p, err = s.deps.Payments.Authorize(ctx, payments.AuthorizeRequest{Key: key, OrderID: r.ID, Amount: r.Total,
				Provider: r.provider, Token: ex.g.paymentToken, CustomerID: deref(r.CustomerID), Email: r.Email})
			return err
		})
		if err != nil {
			return result{err: err}
		}
		return authorized(p)

	case stepCommit:
		return result{err: s.pol.inventory.Do(ctx, func(ctx context.Context) error {
			_, err := s.deps.Inventory.Commit(ctx, opKey(r.ID, opReserve), r.ID)
			return err
		})}

	case stepCapture:
		if r.Payment.CapturePolicy != CaptureOnConfirmation || r.Total.Amount == 0 {
			return result{skipped: true}
		}
		var p payments.Payment
		err := s.pol.payments.Do(ctx, func(ctx context.Context) (err error) {
			p, err = s.deps.Payments.Capture(ctx, opKey(r.ID, opCapture), r.paymentID, r.Total)
			return err
		})
		if err != nil {
			return result{err: err}
		}
		return result{order: func(_ context.Context, _ *store.Tx, r *record) error {
			r.capturedAmt = p.Captured.Amount
			return nil
		}}

	case stepConfirm:
		err := s.pol.cart.Do(ctx, func(ctx context.Context) error {
			return s.deps.Carts.MarkCheckedOut(ctx, r.CartID, r.ID)
		})
		if err == nil || transient(step, err) {
			return result{err: err}
		}
		// The order stands (stock committed, payment taken); a cart that
		// cannot be marked (it expired meanwhile) is only noted.
		s.log.WarnContext(ctx, "orders: the cart could not be marked checked out", "order_id", r.ID, "cart_id", r.CartID, "error", err)
		return result{note: "cart not marked checked out: " + truncate(err.Error(), 400)}
	}
	return result{err: fmt.Errorf("unknown saga step %q", step)}
}

// authorized is the result of an authorization: the payment recorded on
// the order, the token forgotten.
func authorized(p payments.Payment) result {
	return result{
		saga: func(g *sagaRow) { g.paymentToken = "" },
		order: func(_ context.Context, _ *store.Tx, r *record) error {
			r.paymentID, r.provider, r.authAmt = p.ID, p.Provider, p.Amount.Amount
			r.Payment.Provider = p.Provider
			return nil
		},
	}
}

// declined is the payment_declined error of a payment that failed.
func declined(p payments.Payment) error {
	code := p.FailureCode
	if code == "" {
		code = "card_declined"
	}
	return &apperr.Error{Code: payments.CodeDeclined, Message: "the payment was declined (" + code + ")",
		Fields: []apperr.FieldError{{Field: "payment", Code: code, Message: "declined"}}}
}

// undo runs a compensation's participant calls, as do does.
func (ex *execution) undo(ctx context.Context, step string) result {
	s, r := ex.s, ex.r
	ctx = context.WithoutCancel(ctx)
	switch step {
	case stepVoid:
		if r.Total.Amount == 0 {
			return result{skipped: true}
		}
		var p payments.Payment
		err := s.pol.payments.Do(ctx, func(ctx context.Context) (err error) {
			if r.paymentID != "" {
				p, err = s.deps.Payments.Get(ctx, r.paymentID)
			} else {
				p, err = s.deps.Payments.ByKey(ctx, opKey(r.ID, opAuthorize))
			}
			return err
		})
		switch {
		case apperr.Is(err, apperr.NotFound):
			return result{skipped: true, note: "no authorization was made"}
		case err != nil:
			return result{err: err}
		}
		switch p.Status {
		case payments.StatusAuthorized:
			return result{err: s.pol.payments.Do(ctx, func(ctx context.Context) error {
				_, err := s.deps.Payments.Void(ctx, opKey(r.ID, opVoid), p.ID)
				return err
			})}
		case payments.StatusCaptured, payments.StatusPartiallyRefunded:
			amount, err := p.Captured.Sub(p.Refunded)
			if err != nil {
				return result{err: err}
			}
			err = s.pol.payments.Do(ctx, func(ctx context.Context) error {
				_, err := s.deps.Payments.Refund(ctx, opKey(r.ID, opCancelRefund), p.ID, amount)
				return err
			})
			if err != nil {
				return result{err: err}
			}
			return result{note: "captured payment refunded", order: ex.cancelRefund(p.Captured, amount)}
		}
		return result{skipped: true, note: "payment is " + string(p.Status)}

	case stepReleaseStock:
		var res inventory.Reservation
		err := s.pol.inventory.Do(ctx, func(ctx context.Context) (err error) {
			res, err = s.deps.Inventory.GetReservation(ctx, opKey(r.ID, opReserve))
			return err
		})
		switch {
		case apperr.Is(err, apperr.NotFound):
			return result{skipped: true, note: "no stock was reserved"}
		case err != nil:
			return result{err: err}
		}
		return result{err: s.pol.inventory.Do(ctx, func(ctx context.Context) (err error) {
			switch res.State {
			case inventory.StatePending:
				_, err = s.deps.Inventory.Release(ctx, res.ID)
			case inventory.StateCommitted:
				_, err = s.deps.Inventory.Restock(ctx, res.ID)
			}
			return err
		})}

	case stepReleaseVouchers:
		if len(r.DiscountCodes) == 0 {
			return result{skipped: true}
		}
		return result{err: s.pol.pricing.Do(ctx, func(ctx context.Context) error {
			return s.deps.Pricing.Release(ctx, opKey(r.ID, opRedeem))
		})}
	}
	return result{err: fmt.Errorf("unknown compensation %q", step)}
}

// cancelRefund records the refund of a cancelled order's captured payment
// (captured as payments knows it: a capture whose answer was lost was
// never recorded here).
func (ex *execution) cancelRefund(captured, amount money.Money) func(context.Context, *store.Tx, *record) error {
	return func(ctx context.Context, tx *store.Tx, r *record) error {
		key := opKey(r.ID, opCancelRefund)
		if _, found, err := refundByKey(ctx, tx, r.ID, key, r.Currency); err != nil || found {
			return err
		}
		now := ex.s.now()
		rf := refundRow{Refund: Refund{ID: id.New(refundPrefix), Amount: amount, Reason: "order cancelled", Status: RefundSucceeded,
			CreatedBy: "system", CreatedAt: now, UpdatedAt: now}, orderID: r.ID, key: key}
		if err := insertRefund(ctx, tx, rf); err != nil {
			return err
		}
		r.capturedAmt = max(r.capturedAmt, captured.Amount)
		r.refundedAmt = min(r.refundedAmt+amount.Amount, r.capturedAmt-r.pendingAmt)
		return nil
	}
}

// reserveLines are the order's lines for inventory, one per SKU.
func reserveLines(items []Item) []inventory.ReserveLine {
	var out []inventory.ReserveLine
	for _, it := range items {
		if i := slices.IndexFunc(out, func(l inventory.ReserveLine) bool { return l.SKU == it.SKU }); i >= 0 {
			out[i].Quantity += it.Quantity
			continue
		}
		out = append(out, inventory.ReserveLine{SKU: it.SKU, Quantity: it.Quantity})
	}
	return out
}

// pricingCustomer is the customer key voucher limits count per customer.
// pricingCustomer is whom pricing counts the order's per-customer voucher
// uses against: the key the checkout quoted it with.
func pricingCustomer(r record) string { return cart.PricingCustomerKey(deref(r.CustomerID), r.Email) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// reopen makes the finished saga of a confirmed order compensate
// everything, as staff asked, and keeps running it here.
func (ex *execution) reopen(ctx context.Context) (next, error) {
	s := ex.s
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	ok, err := reopenForCancel(ctx, s.db, ex.g.orderID, ex.g.cancelRequested, s.owner, now.Add(s.cfg.LeaseTTL), now)
	if err != nil {
		return 0, err
	}
	if !ok {
		return nextDone, nil
	}
	g, err := getSaga(ctx, s.db, ex.g.orderID)
	if err != nil {
		return 0, err
	}
	ex.g = g
	s.metrics.compensation(ReasonByStaff)
	return nextNow, nil
}
