package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// Service is the inventory's use cases over its database. It is safe for
// concurrent use, in one process and across processes sharing the
// database: every decision about stock is taken by the database inside a
// transaction, never in Go memory. Every write runs in one transaction
// together with its audit rows and outbox events, so an error leaves
// nothing half-written; every error a caller may see is an *apperr.Error.
type Service struct {
	db      *store.DB
	outbox  *bus.Outbox
	log     *slog.Logger
	cfg     Config
	metrics *metrics // nil: none
	now     func() time.Time

	// afterPlan, when set (tests), runs inside a reservation's transaction
	// between planning and applying the plan, to simulate a competitor.
	afterPlan func(ctx context.Context, tx *store.Tx) error
}

var _ Client = (*Service)(nil)

// New returns the inventory service on db, whose schema must have
// Migrations and bus.Migrations applied. Events go through outbox (a nil
// outbox writes the rows without waking a relay); a nil logger discards.
// cfg's zero fields take their defaults; the composition root checks it
// with Validate first (Run refuses an invalid one).
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, cfg Config, opts ...Option) *Service {
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
		// Microseconds: what PostgreSQL keeps, so a value read back equals
		// the one written on both engines.
		now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// errConcurrentChange: a row read in a transaction was changed by another
// one before the conditional write; write retries the whole transaction.
var errConcurrentChange = errors.New("changed concurrently")

const maxWriteAttempts = 5

// write runs fn in a transaction, again (from a fresh read) when it reports
// errConcurrentChange.
func (s *Service) write(ctx context.Context, fn func(tx *store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.db.InTx(ctx, fn)
		if !errors.Is(err, errConcurrentChange) {
			return err
		}
		if attempt == maxWriteAttempts {
			return apperr.New(apperr.Conflict, "the stock is being changed by others; retry")
		}
	}
}

// actor is who the audit log names for a change: the caller's principal,
// or "system" for work without one (expiry, seeding, in-process calls).
func actor(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok && p.Subject != "" {
		return p.Subject
	}
	return "system"
}

// --- stock locations ---

// CreateLocation validates and stores a new stock location at version 1.
// Errors: validation_failed naming each bad field, conflict naming "code"
// when another location has the code.
func (s *Service) CreateLocation(ctx context.Context, in LocationInput) (Location, error) {
	now := s.now()
	l := Location{
		ID: id.New(locationPrefix), Code: in.Code, Name: in.Name, Address: in.Address, Country: in.Country,
		Priority: DefaultLocationPrio, Active: true, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if in.Priority != nil {
		l.Priority = *in.Priority
	}
	if in.Active != nil {
		l.Active = *in.Active
	}
	l.normalize()
	var v apperr.Validation
	validateLocation(&v, l)
	if err := v.Err(); err != nil {
		return Location{}, fmt.Errorf("create stock location: %w", err)
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return insertLocation(ctx, tx, l)
	})
	if store.IsUniqueViolation(err) {
		err = codeTaken(l.Code)
	}
	if err != nil {
		return Location{}, fmt.Errorf("create stock location: %w", err)
	}
	return l, nil
}

func codeTaken(code string) error {
	return &apperr.Error{Code: apperr.Conflict, Message: fmt.Sprintf("another stock location has code %q", code),
		Fields: []apperr.FieldError{{Field: "code", Code: "taken", Message: "is the code of another stock location"}}}
}

// UpdateLocation applies a partial update. With ifMatch > 0 the location
// must still be at that version (else version_conflict); with 0 the last
// writer wins. An update that changes nothing returns the location as it
// is. Deactivating a location stops allocation from it; its stock and
// reservations stay. Errors as CreateLocation, plus not_found.
func (s *Service) UpdateLocation(ctx context.Context, locationID string, patch LocationPatch, ifMatch int64) (Location, error) {
	if !id.Valid(locationPrefix, locationID) {
		return Location{}, fmt.Errorf("update stock location: %w", notFound("stock location", locationID))
	}
	var out Location
	err := s.write(ctx, func(tx *store.Tx) error {
		cur, err := getLocation(ctx, tx, locationID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("stock location", ifMatch, cur.Version)
		}
		next := cur
		if patch.Code != nil {
			next.Code = *patch.Code
		}
		if patch.Name != nil {
			next.Name = *patch.Name
		}
		if patch.Address != nil {
			next.Address = *patch.Address
		}
		if patch.Country != nil {
			next.Country = *patch.Country
		}
		if patch.Priority != nil {
			next.Priority = *patch.Priority
		}
		if patch.Active != nil {
			next.Active = *patch.Active
		}
		next.normalize()
		var v apperr.Validation
		validateLocation(&v, next)
		if err := v.Err(); err != nil {
			return err
		}
		if next == cur {
			out = cur
			return nil
		}
		next.Version, next.UpdatedAt = cur.Version+1, s.now()
		ok, err := updateLocation(ctx, tx, next, cur.Version)
		if store.IsUniqueViolation(err) {
			return codeTaken(next.Code)
		}
		if err != nil {
			return fmt.Errorf("write location: %w", err)
		}
		if !ok {
			if ifMatch > 0 {
				return versionConflict("stock location", ifMatch, cur.Version+1)
			}
			return errConcurrentChange
		}
		out = next
		return nil
	})
	if err != nil {
		return Location{}, fmt.Errorf("update stock location: %w", err)
	}
	return out, nil
}

// GetLocation returns a stock location. Errors: not_found.
func (s *Service) GetLocation(ctx context.Context, locationID string) (Location, error) {
	if !id.Valid(locationPrefix, locationID) {
		return Location{}, fmt.Errorf("get stock location: %w", notFound("stock location", locationID))
	}
	l, err := getLocation(ctx, s.db, locationID)
	if err != nil {
		return Location{}, fmt.Errorf("get stock location: %w", err)
	}
	return l, nil
}

// ListLocations returns a page of stock locations in allocation order
// (priority, then id). limit is 1–100 (0 means 20); cursor is a previous
// page's NextCursor. Errors: validation_failed naming "limit" or "cursor".
func (s *Service) ListLocations(ctx context.Context, limit int, cursor string) (httpx.Page[Location], error) {
	var v apperr.Validation
	limit = httpx.CheckLimit(&v, limit)
	after := httpx.CursorKey(&v, cursor, parseLocationKey)
	if err := v.Err(); err != nil {
		return httpx.Page[Location]{}, fmt.Errorf("list stock locations: %w", err)
	}
	ls, err := listLocations(ctx, s.db, after.priority, after.id, limit+1)
	if err != nil {
		return httpx.Page[Location]{}, fmt.Errorf("list stock locations: %w", err)
	}
	return httpx.NextPage(ls, limit, func(l Location) string { return strconv.Itoa(l.Priority) + ":" + l.ID }), nil
}

// locationKey is the sort key of a location, "<priority>:<id>" in a cursor.
type locationKey struct {
	priority int
	id       string
}

func parseLocationKey(key string) (locationKey, bool) {
	prio, lid, cut := strings.Cut(key, ":")
	n, err := strconv.Atoi(prio)
	if !cut || err != nil || !id.Valid(locationPrefix, lid) {
		return locationKey{}, false
	}
	return locationKey{priority: n, id: lid}, true
}

// --- stock ---

// GetStock returns a SKU's stock. Errors: not_found for a SKU the inventory
// has never held stock or settings for.
func (s *Service) GetStock(ctx context.Context, sku string) (StockItem, error) {
	if !validSKU(sku) {
		return StockItem{}, fmt.Errorf("get stock: %w", notFound("stock item", sku))
	}
	st, err := readStock(ctx, s.db, []string{sku})
	if err != nil {
		return StockItem{}, fmt.Errorf("get stock of %s: %w", sku, err)
	}
	if st[sku] == nil {
		return StockItem{}, fmt.Errorf("get stock: %w", notFound("stock item", sku))
	}
	return st[sku].view(s.cfg.LowStockThreshold), nil
}

// ListStock returns the stock of the SKUs, in the order given, leaving out
// those the inventory does not know (one page, no cursor); or, when skus is
// empty, a page of every known SKU in SKU order. Errors: validation_failed
// naming "sku", "limit" or "cursor".
func (s *Service) ListStock(ctx context.Context, skus []string, limit int, cursor string) (httpx.Page[StockItem], error) {
	var v apperr.Validation
	limit = httpx.CheckLimit(&v, limit)
	after := httpx.CursorKey(&v, cursor, func(key string) (string, bool) { return key, validSKU(key) })
	if len(skus) > MaxSKUsPerRequest {
		v.Addf("sku", "too_many", "at most %d SKUs at once", MaxSKUsPerRequest)
	}
	if err := v.Err(); err != nil {
		return httpx.Page[StockItem]{}, fmt.Errorf("list stock: %w", err)
	}
	next := ""
	if len(skus) == 0 {
		var err error
		if skus, err = listItemSKUs(ctx, s.db, after, limit+1); err != nil {
			return httpx.Page[StockItem]{}, fmt.Errorf("list stock: %w", err)
		}
		if len(skus) > limit {
			next = skus[limit-1]
			skus = skus[:limit]
		}
	}
	st, err := readStock(ctx, s.db, skus)
	if err != nil {
		return httpx.Page[StockItem]{}, fmt.Errorf("list stock: %w", err)
	}
	out := make([]StockItem, 0, len(skus))
	for _, sku := range skus {
		if x := st[sku]; x != nil {
			out = append(out, x.view(s.cfg.LowStockThreshold))
		}
	}
	return httpx.NewPage(out, next), nil
}

// UpdateItem changes a SKU's settings, creating the SKU's record when the
// inventory does not know it yet (so backorder can be allowed before stock
// arrives). ifMatch as in UpdateLocation, against the item's Version.
// Turning backorder off stops new backorders at once; reservations already
// backordered stay. Errors: validation_failed ("sku",
// "low_stock_threshold"), version_conflict.
func (s *Service) UpdateItem(ctx context.Context, sku string, patch ItemPatch, ifMatch int64) (StockItem, error) {
	var v apperr.Validation
	checkSKU(&v, "sku", sku)
	if t := patch.LowStockThreshold.Value; t != nil && (*t < 0 || *t > MaxLowStockLevel) {
		v.Addf("low_stock_threshold", "out_of_range", "low_stock_threshold must be from 0 to %d", MaxLowStockLevel)
	}
	if err := v.Err(); err != nil {
		return StockItem{}, fmt.Errorf("update stock item: %w", err)
	}
	var out StockItem
	err := s.write(ctx, func(tx *store.Tx) error {
		now := s.now()
		if err := ensureItem(ctx, tx, sku, now); err != nil {
			return err
		}
		if err := lockItems(ctx, tx, []string{sku}); err != nil {
			return err
		}
		st, err := readStock(ctx, tx, []string{sku})
		if err != nil {
			return err
		}
		cur := st[sku]
		if ifMatch > 0 && cur.item.version != ifMatch {
			return versionConflict("stock item", ifMatch, cur.item.version)
		}
		next := cur.item
		if patch.Backorder != nil {
			next.backorder = *patch.Backorder
		}
		if patch.LowStockThreshold.Set {
			next.threshold = patch.LowStockThreshold.Value
		}
		if next.backorder == cur.item.backorder && equalPtr(next.threshold, cur.item.threshold) {
			out = cur.view(s.cfg.LowStockThreshold)
			return nil
		}
		next.version = cur.item.version + 1
		ok, err := updateItem(ctx, tx, next, cur.item.version, now)
		if err != nil {
			return fmt.Errorf("write stock item: %w", err)
		}
		if !ok {
			return errConcurrentChange
		}
		if next.backorder != cur.item.backorder {
			if err := setLevelsBackorder(ctx, tx, sku, next.backorder); err != nil {
				return err
			}
		}
		cur.item = next
		out = cur.view(s.cfg.LowStockThreshold)
		return nil
	})
	if err != nil {
		return StockItem{}, fmt.Errorf("update stock item %s: %w", sku, err)
	}
	return out, nil
}

func equalPtr(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// SetLevel sets a SKU's on_hand at a location (a count), creating the level
// (and the SKU's record) when there is none. With ifMatch > 0 the level
// must still be at that version. The change is written to the audit log
// (reason in.Reason, default cycle_count) and announced as stock_adjusted;
// setting the value it has changes nothing. Errors: validation_failed
// ("sku", "on_hand", "reason", "note"), not_found (the location),
// version_conflict, and conflict when, for a SKU without backorder, a
// lower on_hand would be below what is reserved there (raising it is always
// allowed, even when a level oversold under backorder stays short).
func (s *Service) SetLevel(ctx context.Context, sku, locationID string, in LevelInput, ifMatch int64) (StockItem, error) {
	if in.Reason == "" {
		in.Reason = ReasonCycleCount
	}
	var v apperr.Validation
	checkSKU(&v, "sku", sku)
	if in.OnHand < 0 || in.OnHand > MaxQuantity {
		v.Addf("on_hand", "out_of_range", "on_hand must be from 0 to %d", MaxQuantity)
	}
	checkManualReason(&v, in.Reason, 0, in.Note)
	if err := v.Err(); err != nil {
		return StockItem{}, fmt.Errorf("set stock level: %w", err)
	}
	if !id.Valid(locationPrefix, locationID) {
		return StockItem{}, fmt.Errorf("set stock level: %w", notFound("stock location", locationID))
	}
	var out StockItem
	err := s.write(ctx, func(tx *store.Tx) error {
		it, _, err := s.changeOnHand(ctx, tx, sku, locationID, stockChange{setTo: &in.OnHand, reason: in.Reason, note: in.Note, ifMatch: ifMatch})
		out = it
		return err
	})
	if err != nil {
		return StockItem{}, fmt.Errorf("set stock level of %s at %s: %w", sku, locationID, err)
	}
	return out, nil
}

// Adjust changes a SKU's on_hand at a location by a delta, for a reason
// (received and returned add, damaged and lost remove, correction and
// cycle_count either way), creating the level when there is none, and
// writes the audit row it returns. Errors: validation_failed ("sku",
// "location_id" — unknown too, "delta", "reason", "note"), conflict when
// on_hand would go below zero or, for a SKU without backorder, below what
// is reserved there.
func (s *Service) Adjust(ctx context.Context, sku string, in AdjustmentInput) (Adjustment, error) {
	var v apperr.Validation
	checkSKU(&v, "sku", sku)
	if in.LocationID == "" {
		v.Add("location_id", "required", "location_id is required")
	} else if !id.Valid(locationPrefix, in.LocationID) {
		v.Addf("location_id", "unknown", "no stock location %q", in.LocationID)
	}
	if in.Delta == 0 || in.Delta < -MaxQuantity || in.Delta > MaxQuantity {
		v.Addf("delta", "out_of_range", "delta must be a non-zero integer from -%d to %d", MaxQuantity, MaxQuantity)
	}
	checkManualReason(&v, in.Reason, in.Delta, in.Note)
	if err := v.Err(); err != nil {
		return Adjustment{}, fmt.Errorf("adjust stock: %w", err)
	}
	var out Adjustment
	err := s.write(ctx, func(tx *store.Tx) error {
		_, adj, err := s.changeOnHand(ctx, tx, sku, in.LocationID, stockChange{delta: in.Delta, reason: in.Reason, note: in.Note})
		if apperr.Is(err, apperr.NotFound) {
			var v apperr.Validation
			v.Addf("location_id", "unknown", "no stock location %q", in.LocationID)
			return v.Err()
		}
		out = adj
		return err
	})
	if err != nil {
		return Adjustment{}, fmt.Errorf("adjust stock of %s: %w", sku, err)
	}
	return out, nil
}

func checkManualReason(v *apperr.Validation, r Reason, delta int64, note string) {
	known, signOK := r.validManual(delta)
	switch {
	case r == "":
		v.Add("reason", "required", "reason is required")
	case !known:
		v.Addf("reason", "invalid", "reason must be one of %v", manualReasons)
	case delta != 0 && !signOK:
		v.Addf("reason", "invalid", "reason %q does not go with a delta of %d", r, delta)
	}
	if len([]rune(note)) > MaxNoteLen {
		v.Addf("note", "too_long", "note must be at most %d characters", MaxNoteLen)
	}
}

// stockChange is a manual change of on_hand: by delta, or to setTo.
type stockChange struct {
	delta   int64
	setTo   *int64
	reason  Reason
	note    string
	ifMatch int64 // the level's version, for SetLevel
}

// changeOnHand applies a manual change in tx: it locks the SKU, reads its
// stock, checks the rules, writes the level conditionally, the audit row
// and the events. It returns the SKU's stock after and the audit row (zero
// when nothing changed).
func (s *Service) changeOnHand(ctx context.Context, tx *store.Tx, sku, locationID string, c stockChange) (StockItem, Adjustment, error) {
	loc, err := getLocation(ctx, tx, locationID)
	if err != nil {
		return StockItem{}, Adjustment{}, err
	}
	now := s.now()
	if err := ensureItem(ctx, tx, sku, now); err != nil {
		return StockItem{}, Adjustment{}, err
	}
	if err := lockItems(ctx, tx, []string{sku}); err != nil {
		return StockItem{}, Adjustment{}, err
	}
	all, err := readStock(ctx, tx, []string{sku})
	if err != nil {
		return StockItem{}, Adjustment{}, err
	}
	st := all[sku]
	prev := st.view(s.cfg.LowStockThreshold)
	var level *levelRow
	for i := range st.levels {
		if st.levels[i].locationID == locationID {
			level = &st.levels[i]
		}
	}
	var before, reserved, version int64
	if level != nil {
		before, reserved, version = level.onHand, level.reserved, level.version
	}
	if c.ifMatch > 0 && version != c.ifMatch {
		return StockItem{}, Adjustment{}, versionConflict("stock level", c.ifMatch, version)
	}
	delta := c.delta
	if c.setTo != nil {
		delta = *c.setTo - before
	}
	after := before + delta
	switch {
	case delta < 0 && after < 0:
		return StockItem{}, Adjustment{}, apperr.New(apperr.Conflict, "%s has %d on hand at %s; it cannot go below zero", sku, before, loc.Code)
	case delta < 0 && !st.item.backorder && after < reserved:
		return StockItem{}, Adjustment{}, apperr.New(apperr.Conflict,
			"%d units of %s are reserved at %s; on hand cannot go below that (%d) unless the SKU takes backorders", reserved, sku, loc.Code, after)
	}
	if level != nil && delta == 0 {
		return st.view(s.cfg.LowStockThreshold), Adjustment{}, nil
	}
	if level == nil {
		if err := insertLevel(ctx, tx, sku, locationID, after, st.item.backorder, now); err != nil {
			return StockItem{}, Adjustment{}, err
		}
		st.levels = append(st.levels, levelRow{sku: sku, locationID: locationID, onHand: after, backorder: st.item.backorder,
			version: 1, active: loc.Active, priority: loc.Priority})
		sortLevels(st.levels)
	} else {
		guard := delta < 0 && !st.item.backorder
		got, ok, err := changeOnHandRow(ctx, tx, sku, locationID, delta, version, guard, now)
		if err != nil {
			return StockItem{}, Adjustment{}, err
		}
		if !ok || got != after {
			return StockItem{}, Adjustment{}, errConcurrentChange // cannot happen under the SKU lock
		}
		level.onHand, level.version = after, version+1
	}
	if delta == 0 {
		return st.view(s.cfg.LowStockThreshold), Adjustment{}, nil
	}
	adj := Adjustment{
		ID: id.New(adjustmentPrefix), SKU: sku, LocationID: locationID, Delta: delta, OnHandBefore: before, OnHandAfter: after,
		Reason: c.reason, Note: c.note, Actor: actor(ctx), CreatedAt: now,
	}
	if err := insertAdjustment(ctx, tx, adj); err != nil {
		return StockItem{}, Adjustment{}, err
	}
	next := st.view(s.cfg.LowStockThreshold)
	if err := s.emit(ctx, tx, eventAdjusted(adj)); err != nil {
		return StockItem{}, Adjustment{}, err
	}
	if err := s.checkLow(ctx, tx, prev, next); err != nil {
		return StockItem{}, Adjustment{}, err
	}
	return next, adj, nil
}

// sortLevels keeps levels in allocation order: location priority, then id.
func sortLevels(ls []levelRow) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && levelLess(ls[j], ls[j-1]); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func levelLess(a, b levelRow) bool {
	if a.priority != b.priority {
		return a.priority < b.priority
	}
	return a.locationID < b.locationID
}

// ListAdjustments returns a page of a SKU's audit log, newest first,
// optionally only at one location. Errors: not_found (an unknown SKU),
// validation_failed naming "limit", "cursor" or "location_id".
func (s *Service) ListAdjustments(ctx context.Context, sku, locationID string, limit int, cursor string) (httpx.Page[Adjustment], error) {
	var v apperr.Validation
	limit = httpx.CheckLimit(&v, limit)
	before := httpx.CursorKey(&v, cursor, func(key string) (string, bool) { return key, id.Valid(adjustmentPrefix, key) })
	if locationID != "" && !id.Valid(locationPrefix, locationID) {
		v.Addf("location_id", "invalid", "%q is not a stock location id", locationID)
	}
	if err := v.Err(); err != nil {
		return httpx.Page[Adjustment]{}, fmt.Errorf("list adjustments: %w", err)
	}
	if _, err := s.GetStock(ctx, sku); err != nil {
		return httpx.Page[Adjustment]{}, fmt.Errorf("list adjustments: %w", err)
	}
	as, err := listAdjustments(ctx, s.db, sku, locationID, before, limit+1)
	if err != nil {
		return httpx.Page[Adjustment]{}, fmt.Errorf("list adjustments of %s: %w", sku, err)
	}
	return httpx.NextPage(as, limit, func(a Adjustment) string { return a.ID }), nil
}
