package orders

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/resilience"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/cart"
)

// Service is the orders' use cases over their database: checkout and its
// saga, the Store API's order reads, the Admin API's order operations and
// the customers' read model. It is safe for concurrent use, and several
// processes may share one database: sagas are claimed with leases and
// every change is a conditional write. Every error a caller may see is an
// *apperr.Error.
type Service struct {
	db      *store.DB
	outbox  *bus.Outbox
	log     *slog.Logger
	cfg     Config
	deps    Deps
	metrics *metrics // nil: none
	reg     prometheus.Registerer
	now     func() time.Time
	// pol are the participants' resilience policies: every call to one
	// goes through its policy (timeout, breaker, bulkhead).
	pol policies

	// owner names this Service as a lease holder; unique per process
	// (and per Service, so two in one test are two processes).
	owner string
	// ready carries order ids whose saga should run now (checkout, admin
	// cancel, the end of a backoff) to Run's workers.
	ready chan string
	// claimed carries sagas checkout created already leased to this
	// process, with the order in hand, to Run's workers: no claim to write
	// and nothing to read back.
	claimed chan *execution
	running atomic.Bool
	waiters waiters
	hooks   hooks

	subMu sync.Mutex
	sub   *bus.Subscription
}

// hooks let tests stop a saga where a crash could: afterCall runs when a
// participant call returned, before its outcome is recorded; afterSave
// once a step's outcome is committed. Returning true makes the worker stop
// at once and keep its lease, as a process that died there would.
// failSave, when it returns an error, fails a save of the saga's state
// before it reaches the database, as a database that went away would.
type hooks struct {
	afterCall func(orderID, step string) bool
	afterSave func(orderID, step string) bool
	failSave  func(orderID string) error
}

// New returns the orders service on db, whose schema must have Migrations
// and bus.Migrations applied. Events go through outbox (nil: written
// without waking a relay); a nil logger discards. cfg must pass Validate
// (its zero fields take their defaults) and deps must name every
// participant. Nothing runs until Run (the saga executor) and Subscribe
// (the read model) are called.
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, cfg Config, deps Deps, opts ...Option) (*Service, error) {
	if db == nil {
		return nil, errors.New("orders: a database is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	s := &Service{
		db:     db,
		outbox: outbox,
		log:    logger,
		cfg:    cfg,
		deps:   deps,
		// Microseconds: what PostgreSQL keeps, so a value read back equals
		// the one written on both engines.
		now:     func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		owner:   id.New("exec"),
		ready:   make(chan string, 4096),
		claimed: make(chan *execution, max(cfg.Workers, 1)),
		waiters: waiters{m: map[string][]*waiter{}},
	}
	for _, opt := range opts {
		opt(s)
	}
	s.metrics = newMetrics(s.reg)
	var err error
	if s.pol, err = newPolicies(cfg, s.reg, s.now); err != nil {
		return nil, err
	}
	return s, nil
}

// policies are the participants' resilience policies, one per dependency
// and shared by every call to it, so its breaker and bulkhead see all of
// its traffic.
type policies struct {
	cart, pricing, inventory, payments *resilience.Policy
}

func newPolicies(cfg Config, reg prometheus.Registerer, now func() time.Time) (policies, error) {
	mk := func(name string) (*resilience.Policy, error) {
		return resilience.New(resilience.Config{
			Name:    "orders." + name,
			Timeout: cfg.CallTimeout,
			// Only calls marked resilience.Idempotent (checkout's reads)
			// are retried in place; saga steps retry durably instead,
			// their attempts recorded.
			MaxAttempts:             2,
			BreakerFailureThreshold: cfg.BreakerFailures,
			BreakerDelay:            cfg.BreakerDelay,
			MaxConcurrent:           4*cfg.Workers + 64,
			MaxWait:                 cfg.CallTimeout,
			Registerer:              reg,
		}, resilience.WithClock(now))
	}
	var (
		p   policies
		err error
	)
	for _, x := range []struct {
		dst  **resilience.Policy
		name string
	}{{&p.cart, "cart"}, {&p.pricing, "pricing"}, {&p.inventory, "inventory"}, {&p.payments, "payments"}} {
		if *x.dst, err = mk(x.name); err != nil {
			return policies{}, fmt.Errorf("orders: %w", err)
		}
	}
	return p, nil
}

// waiters are the requests waiting for a saga of this process to finish.
type waiters struct {
	mu sync.Mutex
	m  map[string][]*waiter
}

// waiter is one request waiting for an order's saga.
type waiter struct {
	done chan struct{} // closed when the saga finished here
	// order is the confirmed order as its last transaction committed it,
	// set before done is closed; nil when the waiter must read it.
	order *Order
}

// add registers a waiter for the order; its done is closed when its saga
// finishes here. Call the returned function when done waiting.
func (w *waiters) add(orderID string) (*waiter, func()) {
	wt := &waiter{done: make(chan struct{})}
	w.mu.Lock()
	w.m[orderID] = append(w.m[orderID], wt)
	w.mu.Unlock()
	return wt, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[orderID]
		for i, c := range list {
			if c == wt {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, orderID)
		} else {
			w.m[orderID] = list
		}
	}
}

// notify wakes everyone waiting for the order, handing them final — the
// order as committed — when it is known (nil: they read it).
func (w *waiters) notify(orderID string, final *Order) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wt := range w.m[orderID] {
		wt.order = final
		close(wt.done)
	}
	delete(w.m, orderID)
}

// kick asks this process's executor to run the order's saga now. It never
// blocks: when the queue is full, the executor's poll finds the saga.
func (s *Service) kick(orderID string) {
	select {
	case s.ready <- orderID:
	default:
	}
}

// awaitPoll is how often a waiting request reads its saga, for sagas that
// finish in another process (one that finishes here wakes it at once).
const awaitPoll = 250 * time.Millisecond

// await waits, up to budget, until the order's saga is done, and returns
// the order as it is then. A cancelled order comes with the error a client
// is told (its reason as the code). The saga finishing in this process
// wakes the wait at once, with the order it confirmed (no read); one
// finishing elsewhere is seen by polling.
func (s *Service) await(ctx context.Context, orderID string, budget time.Duration) (Order, error) {
	w, stop := s.waiters.add(orderID)
	defer stop()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	poll := time.NewTicker(awaitPoll)
	defer poll.Stop()
	for finished := false; !finished; {
		g, err := getSaga(ctx, s.db, orderID)
		if err != nil {
			return Order{}, err
		}
		if g.status == sagaDone {
			break
		}
		select {
		case <-w.done:
			// This process finished the saga (it notifies only once the
			// saga is done and committed).
			if w.order != nil {
				return *w.order, nil
			}
			finished = true
		case <-poll.C:
		case <-timer.C:
			return s.load(ctx, s.db, orderID)
		case <-ctx.Done():
			return s.load(context.WithoutCancel(ctx), s.db, orderID)
		}
	}
	o, err := s.load(ctx, s.db, orderID)
	if err != nil {
		return Order{}, err
	}
	if o.Status == StatusCancelled {
		return o, cancellationError(o)
	}
	return o, nil
}

// cancellationError is the error a client is told about a cancelled order:
// its reason as the code, naming the order.
func cancellationError(o Order) error {
	c := o.Cancellation
	if c == nil {
		return apperr.New(apperr.Conflict, "order %s was cancelled", o.ID)
	}
	return &apperr.Error{Code: apperr.Code(c.Reason), Message: fmt.Sprintf("order %s was cancelled: %s", o.ID, c.Message),
		Fields: c.Errors, Err: &CancelledError{OrderID: o.ID, Reason: c.Reason}}
}

// CancelledError is the cause of the error a checkout answers with when
// the saga cancelled its order: which order, and why (errors.As).
type CancelledError struct {
	OrderID string
	Reason  string
}

func (e *CancelledError) Error() string { return "order " + e.OrderID + " cancelled: " + e.Reason }

// --- reads ---

// load reads an order with its fulfilments and refunds.
func (s *Service) load(ctx context.Context, q store.Querier, orderID string) (Order, error) {
	r, err := getOrder(ctx, q, orderID)
	if errors.Is(err, errNoOrder) {
		return Order{}, notFound("order", orderID)
	}
	if err != nil {
		return Order{}, err
	}
	return s.complete(ctx, q, r)
}

func (s *Service) complete(ctx context.Context, q store.Querier, r record) (Order, error) {
	var err error
	o := r.Order
	if o.Fulfilments, err = listFulfilments(ctx, q, o.ID); err != nil {
		return Order{}, err
	}
	if o.Refunds, err = listRefunds(ctx, q, o.ID, o.Currency); err != nil {
		return Order{}, err
	}
	return o, nil
}

// Get returns an order to a shopper: the customer it belongs to (their
// access token), or whoever holds the token of the cart it was placed from.
// Anything else — another customer, a wrong token, an unknown id — is the
// same not_found.
func (s *Service) Get(ctx context.Context, c cart.Caller, orderID string) (Order, error) {
	if !id.Valid(orderPrefix, orderID) {
		return Order{}, notFound("order", orderID)
	}
	r, err := getOrder(ctx, s.db, orderID)
	if errors.Is(err, errNoOrder) || (err == nil && !mayRead(r, c)) {
		return Order{}, notFound("order", orderID)
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	return s.complete(ctx, s.db, r)
}

// mayRead reports whether the shopper may see the order.
func mayRead(r record, c cart.Caller) bool {
	if c.Principal.Kind == auth.KindCustomer && r.CustomerID != nil && *r.CustomerID == c.Principal.Subject {
		return true
	}
	return r.tokenDigest != "" && tokenMatches(r.tokenDigest, c.CartToken)
}

// tokenDigest is the digest of a cart token the order keeps (the cart
// keeps the same digest; neither keeps the token).
func tokenDigest(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenMatches compares a token with a stored digest in constant time.
func tokenMatches(digest, token string) bool {
	if token == "" || len(token) > 256 {
		return false
	}
	want, err := hex.DecodeString(digest)
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], want) == 1
}

// AdminGet returns any order with its saga, the history of every saga
// step and the audit log. Errors: not_found.
func (s *Service) AdminGet(ctx context.Context, orderID string) (AdminOrder, error) {
	if !id.Valid(orderPrefix, orderID) {
		return AdminOrder{}, notFound("order", orderID)
	}
	o, err := s.load(ctx, s.db, orderID)
	if err != nil {
		return AdminOrder{}, fmt.Errorf("get order: %w", err)
	}
	g, err := getSaga(ctx, s.db, orderID)
	if err != nil {
		return AdminOrder{}, fmt.Errorf("get order: %w", err)
	}
	out := AdminOrder{Order: o, Saga: SagaView{Status: g.status, Step: g.step, Attempts: g.attempts, Deadline: g.deadline}}
	if g.status != sagaDone {
		t := g.nextAttemptAt
		out.Saga.NextAttemptAt = &t
	}
	if out.Saga.Steps, err = listSteps(ctx, s.db, orderID); err != nil {
		return AdminOrder{}, fmt.Errorf("get order: %w", err)
	}
	if out.Audit, err = listAudit(ctx, s.db, orderID); err != nil {
		return AdminOrder{}, fmt.Errorf("get order: %w", err)
	}
	return out, nil
}

// List returns a page of orders, newest first, optionally of one status
// and one customer. Errors: validation_failed naming status, limit or
// cursor.
func (s *Service) List(ctx context.Context, f ListFilter) (httpx.Page[Order], error) {
	var v apperr.Validation
	limit := httpx.CheckLimit(&v, f.Limit)
	if f.Status != "" && !validStatus(f.Status) {
		v.Addf("status", "invalid", "status must be one of pending, confirmed, partially_fulfilled, fulfilled, cancelled")
	}
	before := cursorID(&v, f.Cursor, orderPrefix)
	if err := v.Err(); err != nil {
		return httpx.Page[Order]{}, fmt.Errorf("list orders: %w", err)
	}
	rs, err := listOrders(ctx, s.db, f, before, limit+1)
	if err != nil {
		return httpx.Page[Order]{}, fmt.Errorf("list orders: %w", err)
	}
	next := ""
	if len(rs) > limit {
		next, rs = rs[limit-1].ID, rs[:limit]
	}
	out := make([]Order, len(rs))
	for i, r := range rs {
		if out[i], err = s.complete(ctx, s.db, r); err != nil {
			return httpx.Page[Order]{}, fmt.Errorf("list orders: %w", err)
		}
	}
	return httpx.NewPage(out, next), nil
}

// CustomerOrders returns a page of the customer's orders, newest first,
// from the read model the orders' events feed (see Subscribe): an order
// appears there once its order_placed event was consumed. Errors:
// validation_failed naming limit or cursor.
func (s *Service) CustomerOrders(ctx context.Context, customerID string, limit int, cursor string) (httpx.Page[CustomerOrder], error) {
	var v apperr.Validation
	limit = httpx.CheckLimit(&v, limit)
	before := cursorID(&v, cursor, orderPrefix)
	if err := v.Err(); err != nil {
		return httpx.Page[CustomerOrder]{}, fmt.Errorf("list customer orders: %w", err)
	}
	cs, err := listCustomerOrders(ctx, s.db, customerID, before, limit+1)
	if err != nil {
		return httpx.Page[CustomerOrder]{}, fmt.Errorf("list customer orders: %w", err)
	}
	next := ""
	if len(cs) > limit {
		next, cs = cs[limit-1].ID, cs[:limit]
	}
	return httpx.NewPage(cs, next), nil
}

// cursorID decodes a cursor that must hold an id with the prefix.
func cursorID(v *apperr.Validation, cursor, prefix string) string {
	if cursor == "" {
		return ""
	}
	key, err := httpx.DecodeCursor(cursor)
	if err != nil || !id.Valid(prefix, key) {
		v.Add("cursor", "invalid", "cursor is not one this list returned")
		return ""
	}
	return key
}

// actorOf is who the audit log names: the caller's principal, or system.
func actorOf(ctx context.Context) (subject, kind string) {
	if p, ok := auth.FromContext(ctx); ok && p.Subject != "" {
		return p.Subject, string(p.Kind)
	}
	return "system", "system"
}
