package inventory

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the inventory's tables. Apply it with bus.Migrations
// (the outbox) to the inventory's database.
var Migrations = store.Migrations{Name: "inventory", FS: migrationsFS}

// The SQL of the inventory. Every function takes the Querier or Tx to run
// in; the service decides the transaction. None returns sql.ErrNoRows: a
// missing row is an apperr NotFound, a false "found", or a false "changed"
// for the conditional writes.

func ptrString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// --- locations ---

const locationColumns = `id, code, name, address, country, priority, active, version, created_at, updated_at`

func scanLocation(r store.RowScanner) (Location, error) {
	var l Location
	if err := r.Scan(&l.ID, &l.Code, &l.Name, &l.Address, &l.Country, &l.Priority, &l.Active, &l.Version, &l.CreatedAt, &l.UpdatedAt); err != nil {
		return Location{}, err
	}
	l.CreatedAt, l.UpdatedAt = l.CreatedAt.UTC(), l.UpdatedAt.UTC()
	return l, nil
}

func getLocation(ctx context.Context, q store.Querier, locationID string) (Location, error) {
	l, err := scanLocation(q.QueryRow(ctx, `SELECT `+locationColumns+` FROM inventory_locations WHERE id = ?`, locationID))
	if errors.Is(err, sql.ErrNoRows) {
		return Location{}, notFound("stock location", locationID)
	}
	if err != nil {
		return Location{}, fmt.Errorf("read location: %w", err)
	}
	return l, nil
}

func insertLocation(ctx context.Context, tx *store.Tx, l Location) error {
	_, err := tx.Exec(ctx, `INSERT INTO inventory_locations (`+locationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.Code, l.Name, l.Address, l.Country, l.Priority, l.Active, l.Version, l.CreatedAt, l.UpdatedAt)
	return err
}

// updateLocation writes l if the row is still at version expected.
func updateLocation(ctx context.Context, tx *store.Tx, l Location, expected int64) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `UPDATE inventory_locations SET code = ?, name = ?, address = ?, country = ?, priority = ?, active = ?,
		version = ?, updated_at = ? WHERE id = ? AND version = ?`,
		l.Code, l.Name, l.Address, l.Country, l.Priority, l.Active, l.Version, l.UpdatedAt, l.ID, expected))
}

// listLocations returns locations in allocation order (priority, id) after
// the key (priority, id), at most limit.
func listLocations(ctx context.Context, q store.Querier, afterPriority int, afterID string, limit int) ([]Location, error) {
	query := `SELECT ` + locationColumns + ` FROM inventory_locations`
	var args []any
	if afterID != "" {
		query += ` WHERE priority > ? OR (priority = ? AND id > ?)`
		args = append(args, afterPriority, afterPriority, afterID)
	}
	query += ` ORDER BY priority, id LIMIT ?`
	args = append(args, limit)
	return store.All(ctx, q, "list locations", scanLocation, query, args...)
}

// --- items and levels ---

// lockItems locks the settings rows of the SKUs, in SKU order, until the
// transaction ends. Every transaction that changes a SKU's levels takes
// this lock first, so changes to one SKU are serialised: what is read after
// it is what the transaction changes, which makes low-stock crossings and
// audit before/after values exact. Overselling is prevented by the
// conditional updates, not by this lock. SQLite serialises write
// transactions anyway (BEGIN IMMEDIATE), so there it is a no-op.
func lockItems(ctx context.Context, tx *store.Tx, skus []string) error {
	if tx.Engine() != store.Postgres || len(skus) == 0 {
		return nil
	}
	sorted := slices.Clone(skus)
	slices.Sort(sorted)
	rows, err := tx.Query(ctx, `SELECT sku FROM inventory_items WHERE sku IN (`+store.Placeholders(len(sorted))+`) ORDER BY sku FOR UPDATE`, store.Args(sorted)...)
	if err != nil {
		return fmt.Errorf("lock stock items: %w", err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock stock items: %w", err)
	}
	return nil
}

// ensureItem creates the settings row of a SKU with defaults when missing.
func ensureItem(ctx context.Context, tx *store.Tx, sku string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO inventory_items (sku, backorder, low_stock_threshold, version, created_at, updated_at)
		VALUES (?, FALSE, NULL, 1, ?, ?) ON CONFLICT (sku) DO NOTHING`, sku, now, now)
	if err != nil {
		return fmt.Errorf("create stock item %s: %w", sku, err)
	}
	return nil
}

// itemRow is a SKU's settings row.
type itemRow struct {
	sku       string
	backorder bool
	threshold *int64 // nil: the configured default
	version   int64
}

// levelRow is a level with what allocation needs of its location.
type levelRow struct {
	sku, locationID string
	onHand          int64
	reserved        int64
	backorder       bool // the CHECK's mirror of the SKU's setting
	version         int64
	active          bool
	priority        int
}

func (l levelRow) available() int64 { return l.onHand - l.reserved }

// stock is a SKU's settings and levels, levels in allocation order.
type stock struct {
	item   itemRow
	levels []levelRow
}

// view is the stock as the API shows it.
func (st stock) view(defaultThreshold int64) StockItem {
	it := StockItem{
		SKU: st.item.sku, Backorder: st.item.backorder, LowStockThreshold: defaultThreshold,
		Version: st.item.version, Levels: make([]Level, 0, len(st.levels)),
	}
	if st.item.threshold != nil {
		it.LowStockThreshold = *st.item.threshold
	}
	for _, l := range st.levels {
		it.OnHand += l.onHand
		it.Reserved += l.reserved
		it.Levels = append(it.Levels, Level{
			LocationID: l.locationID, OnHand: l.onHand, Reserved: l.reserved, Available: l.available(),
			LocationActive: l.active, Version: l.version,
		})
	}
	it.Available = it.OnHand - it.Reserved
	return it
}

// readStock reads the settings and levels of the SKUs the inventory knows,
// by SKU, in one statement: a consistent snapshot on both engines, inside
// a transaction or not.
func readStock(ctx context.Context, q store.Querier, skus []string) (map[string]*stock, error) {
	out := map[string]*stock{}
	if len(skus) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT i.sku, i.backorder, i.low_stock_threshold, i.version,
			l.location_id, l.on_hand, l.reserved, l.backorder, l.version, loc.active, loc.priority
		FROM inventory_items i
		LEFT JOIN inventory_stock_levels l ON l.sku = i.sku
		LEFT JOIN inventory_locations loc ON loc.id = l.location_id
		WHERE i.sku IN (`+store.Placeholders(len(skus))+`)
		ORDER BY i.sku, loc.priority, l.location_id`, store.Args(skus)...)
	if err != nil {
		return nil, fmt.Errorf("read stock: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			it        itemRow
			threshold sql.NullInt64
			locID     sql.NullString
			onHand    sql.NullInt64
			reserved  sql.NullInt64
			levelBO   sql.NullBool
			levelVer  sql.NullInt64
			active    sql.NullBool
			priority  sql.NullInt64
		)
		if err := rows.Scan(&it.sku, &it.backorder, &threshold, &it.version,
			&locID, &onHand, &reserved, &levelBO, &levelVer, &active, &priority); err != nil {
			return nil, fmt.Errorf("read stock: %w", err)
		}
		if threshold.Valid {
			it.threshold = &threshold.Int64
		}
		st := out[it.sku]
		if st == nil {
			st = &stock{item: it}
			out[it.sku] = st
		}
		if locID.Valid {
			st.levels = append(st.levels, levelRow{
				sku: it.sku, locationID: locID.String, onHand: onHand.Int64, reserved: reserved.Int64,
				backorder: levelBO.Bool, version: levelVer.Int64, active: active.Bool, priority: int(priority.Int64),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stock: %w", err)
	}
	return out, nil
}

// listItemSKUs returns the SKUs the inventory knows, in order, after after.
func listItemSKUs(ctx context.Context, q store.Querier, after string, limit int) ([]string, error) {
	return store.All(ctx, q, "list stock items", store.ScanString, `SELECT sku FROM inventory_items WHERE sku > ? ORDER BY sku LIMIT ?`, after, limit)
}

// updateItem writes a SKU's settings if it is still at version expected.
func updateItem(ctx context.Context, tx *store.Tx, it itemRow, expected int64, now time.Time) (bool, error) {
	var threshold any
	if it.threshold != nil {
		threshold = *it.threshold
	}
	return store.ChangedOne(tx.Exec(ctx, `UPDATE inventory_items SET backorder = ?, low_stock_threshold = ?, version = ?, updated_at = ?
		WHERE sku = ? AND version = ?`, it.backorder, threshold, it.version, now, it.sku, expected))
}

// setLevelsBackorder mirrors a change of the SKU's backorder setting onto
// its levels. Turning it off clears the flag only where the level is not
// over-committed: a level holding backorders keeps the relaxed CHECK until
// backorder is turned on and off again (no new backorders are taken there:
// allocation follows the SKU's setting).
func setLevelsBackorder(ctx context.Context, tx *store.Tx, sku string, on bool) error {
	var err error
	if on {
		_, err = tx.Exec(ctx, `UPDATE inventory_stock_levels SET backorder = TRUE WHERE sku = ?`, sku)
	} else {
		_, err = tx.Exec(ctx, `UPDATE inventory_stock_levels SET backorder = FALSE
			WHERE sku = ? AND on_hand >= 0 AND reserved <= on_hand`, sku)
	}
	if err != nil {
		return fmt.Errorf("mirror backorder of %s: %w", sku, err)
	}
	return nil
}

func insertLevel(ctx context.Context, tx *store.Tx, sku, locationID string, onHand int64, backorder bool, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO inventory_stock_levels (sku, location_id, on_hand, reserved, backorder, version, updated_at)
		VALUES (?, ?, ?, 0, ?, 1, ?)`, sku, locationID, onHand, backorder, now)
	if err != nil {
		return fmt.Errorf("create level %s@%s: %w", sku, locationID, err)
	}
	return nil
}

// changeOnHandRow adds delta to a level's on_hand, on condition that the
// level is still at version expected (the read the change was decided on)
// and, with guardReserved (a decrease for a SKU without backorder), that
// the level keeps enough for its reservations. It returns the new on_hand
// and false when the condition failed.
func changeOnHandRow(ctx context.Context, tx *store.Tx, sku, locationID string, delta, expected int64, guardReserved bool, now time.Time) (int64, bool, error) {
	query := `UPDATE inventory_stock_levels SET on_hand = on_hand + ?, version = version + 1, updated_at = ?
		WHERE sku = ? AND location_id = ? AND version = ?`
	args := []any{delta, now, sku, locationID, expected}
	if guardReserved {
		query += ` AND on_hand + ? >= reserved`
		args = append(args, delta)
	}
	var after int64
	err := tx.QueryRow(ctx, query+` RETURNING on_hand`, args...).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("change on hand of %s@%s: %w", sku, locationID, err)
	}
	return after, true, nil
}

// reserveAt takes qty units of a level for a reservation: the conditional
// UPDATE that keeps concurrent buyers from overselling. The row changes
// only if the level still has need units available (on_hand - reserved >=
// need) at the moment the UPDATE runs, which the database decides under the
// row's lock; need is qty for a plain allocation, and the part not
// backordered for a backorder one, which also requires the level to take
// backorders. false means another transaction took the stock first.
func reserveAt(ctx context.Context, tx *store.Tx, sku, locationID string, qty, need int64, backorder bool, now time.Time) (bool, error) {
	query := `UPDATE inventory_stock_levels SET reserved = reserved + ?, version = version + 1, updated_at = ?
		WHERE sku = ? AND location_id = ?`
	args := []any{qty, now, sku, locationID}
	if backorder {
		query += ` AND backorder`
	}
	if need > 0 {
		query += ` AND on_hand - reserved >= ?`
		args = append(args, need)
	}
	ok, err := store.ChangedOne(tx.Exec(ctx, query, args...))
	if err != nil {
		return false, fmt.Errorf("reserve %s@%s: %w", sku, locationID, err)
	}
	return ok, nil
}

// unreserveAt gives back qty reserved units of a level.
func unreserveAt(ctx context.Context, tx *store.Tx, sku, locationID string, qty int64, now time.Time) error {
	ok, err := store.ChangedOne(tx.Exec(ctx, `UPDATE inventory_stock_levels SET reserved = reserved - ?, version = version + 1, updated_at = ?
		WHERE sku = ? AND location_id = ? AND reserved >= ?`, qty, now, sku, locationID, qty))
	if err != nil {
		return fmt.Errorf("release %s@%s: %w", sku, locationID, err)
	}
	if !ok {
		return fmt.Errorf("release %s@%s: the level holds fewer than %d reserved units", sku, locationID, qty)
	}
	return nil
}

// sellAt turns qty reserved units of a level into a sale: on_hand and
// reserved both drop. It returns on_hand after.
func sellAt(ctx context.Context, tx *store.Tx, sku, locationID string, qty int64, now time.Time) (int64, error) {
	var after int64
	err := tx.QueryRow(ctx, `UPDATE inventory_stock_levels SET on_hand = on_hand - ?, reserved = reserved - ?, version = version + 1, updated_at = ?
		WHERE sku = ? AND location_id = ? AND reserved >= ? RETURNING on_hand`, qty, qty, now, sku, locationID, qty).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("commit %s@%s: the level holds fewer than %d reserved units", sku, locationID, qty)
	}
	if err != nil {
		return 0, fmt.Errorf("commit %s@%s: %w", sku, locationID, err)
	}
	return after, nil
}

// --- audit log ---

const adjustmentColumns = `id, sku, location_id, delta, on_hand_before, on_hand_after, reason, note, actor, reservation_id, order_id, created_at`

// restockAt puts qty units back on hand at a level (a sale undone) and
// returns its on_hand after.
func restockAt(ctx context.Context, tx *store.Tx, sku, locationID string, qty int64, now time.Time) (int64, error) {
	var after int64
	err := tx.QueryRow(ctx, `UPDATE inventory_stock_levels SET on_hand = on_hand + ?, version = version + 1, updated_at = ?
		WHERE sku = ? AND location_id = ? RETURNING on_hand`, qty, now, sku, locationID).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("restock %s@%s: no such stock level", sku, locationID)
	}
	if err != nil {
		return 0, fmt.Errorf("restock %s@%s: %w", sku, locationID, err)
	}
	return after, nil
}

// restocked reports whether the reservation's sale was already undone.
func restocked(ctx context.Context, q store.Querier, reservationID string) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM inventory_adjustments WHERE reservation_id = ? AND reason = ?`,
		reservationID, string(ReasonReturned)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read restock of %s: %w", reservationID, err)
	}
	return n > 0, nil
}

func insertAdjustment(ctx context.Context, tx *store.Tx, a Adjustment) error {
	var resID, orderID any
	if a.ReservationID != nil {
		resID = *a.ReservationID
	}
	if a.OrderID != nil {
		orderID = *a.OrderID
	}
	_, err := tx.Exec(ctx, `INSERT INTO inventory_adjustments (`+adjustmentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.SKU, a.LocationID, a.Delta, a.OnHandBefore, a.OnHandAfter, string(a.Reason), a.Note, a.Actor, resID, orderID, a.CreatedAt)
	if err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	return nil
}

// listAdjustments returns a SKU's audit rows newest first, before the id
// beforeID (all when empty), optionally at one location.
func listAdjustments(ctx context.Context, q store.Querier, sku, locationID, beforeID string, limit int) ([]Adjustment, error) {
	query := `SELECT ` + adjustmentColumns + ` FROM inventory_adjustments WHERE sku = ?`
	args := []any{sku}
	if locationID != "" {
		query += ` AND location_id = ?`
		args = append(args, locationID)
	}
	if beforeID != "" {
		query += ` AND id < ?`
		args = append(args, beforeID)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	return store.All(ctx, q, "list adjustments", scanAdjustment, query, args...)
}

// scanAdjustment reads a row of adjustmentColumns.
func scanAdjustment(r store.RowScanner) (Adjustment, error) {
	var (
		a              Adjustment
		reason         string
		resID, orderID sql.NullString
	)
	if err := r.Scan(&a.ID, &a.SKU, &a.LocationID, &a.Delta, &a.OnHandBefore, &a.OnHandAfter, &reason, &a.Note, &a.Actor,
		&resID, &orderID, &a.CreatedAt); err != nil {
		return Adjustment{}, err
	}
	a.Reason, a.ReservationID, a.OrderID, a.CreatedAt = Reason(reason), ptrString(resID), ptrString(orderID), a.CreatedAt.UTC()
	return a, nil
}

// --- reservations ---

// claimReservation inserts the reservation row (state pending, no lines
// yet) unless its key is taken: the insert-first half of idempotency. On
// PostgreSQL a concurrent claim of the same key waits here until the first
// transaction ends, then sees its row (or takes the key if it rolled back).
func claimReservation(ctx context.Context, tx *store.Tx, r Reservation, fingerprint string) (bool, error) {
	var orderID any
	if r.OrderID != nil {
		orderID = *r.OrderID
	}
	ok, err := store.ChangedOne(tx.Exec(ctx, `INSERT INTO inventory_reservations
		(id, idempotency_key, fingerprint, order_id, state, expires_at, created_at, updated_at, closed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (idempotency_key) DO NOTHING`,
		r.ID, r.Key, fingerprint, orderID, string(StatePending), r.ExpiresAt, r.CreatedAt, r.UpdatedAt))
	if err != nil {
		return false, fmt.Errorf("claim reservation key: %w", err)
	}
	return ok, nil
}

func insertReservationLines(ctx context.Context, tx *store.Tx, r Reservation) error {
	for i, l := range r.Lines {
		if _, err := tx.Exec(ctx, `INSERT INTO inventory_reservation_lines (reservation_id, line_no, sku, quantity, backordered) VALUES (?, ?, ?, ?, ?)`,
			r.ID, i, l.SKU, l.Quantity, l.Backordered); err != nil {
			return fmt.Errorf("write reservation line: %w", err)
		}
		for _, a := range l.Allocations {
			if _, err := tx.Exec(ctx, `INSERT INTO inventory_reservation_allocations (reservation_id, line_no, location_id, quantity, backordered)
				VALUES (?, ?, ?, ?, ?)`, r.ID, i, a.LocationID, a.Quantity, a.Backordered); err != nil {
				return fmt.Errorf("write reservation allocation: %w", err)
			}
		}
	}
	return nil
}

const reservationColumns = `id, idempotency_key, fingerprint, order_id, state, expires_at, created_at, updated_at, closed_at`

// readReservation reads a reservation by id or by key, with its lines, and
// its fingerprint. found is false when there is none.
func readReservation(ctx context.Context, q store.Querier, column, value string) (r Reservation, fingerprint string, found bool, err error) {
	var (
		orderID sql.NullString
		state   string
		closed  sql.NullTime
	)
	err = q.QueryRow(ctx, `SELECT `+reservationColumns+` FROM inventory_reservations WHERE `+column+` = ?`, value).
		Scan(&r.ID, &r.Key, &fingerprint, &orderID, &state, &r.ExpiresAt, &r.CreatedAt, &r.UpdatedAt, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, "", false, nil
	}
	if err != nil {
		return Reservation{}, "", false, fmt.Errorf("read reservation: %w", err)
	}
	r.OrderID, r.State, r.ClosedAt = ptrString(orderID), State(state), store.TimeOrNil(closed)
	r.ExpiresAt, r.CreatedAt, r.UpdatedAt = r.ExpiresAt.UTC(), r.CreatedAt.UTC(), r.UpdatedAt.UTC()

	rows, err := q.Query(ctx, `SELECT l.line_no, l.sku, l.quantity, l.backordered, a.location_id, a.quantity, a.backordered
		FROM inventory_reservation_lines l
		JOIN inventory_reservation_allocations a ON a.reservation_id = l.reservation_id AND a.line_no = l.line_no
		JOIN inventory_locations loc ON loc.id = a.location_id
		WHERE l.reservation_id = ?
		ORDER BY l.line_no, loc.priority, a.location_id`, r.ID)
	if err != nil {
		return Reservation{}, "", false, fmt.Errorf("read reservation lines: %w", err)
	}
	defer rows.Close()
	r.Lines = []ReservationLine{}
	last := -1
	for rows.Next() {
		var (
			lineNo int
			l      ReservationLine
			a      Allocation
		)
		if err := rows.Scan(&lineNo, &l.SKU, &l.Quantity, &l.Backordered, &a.LocationID, &a.Quantity, &a.Backordered); err != nil {
			return Reservation{}, "", false, fmt.Errorf("read reservation line: %w", err)
		}
		if lineNo != last {
			r.Lines = append(r.Lines, l)
			last = lineNo
		}
		cur := &r.Lines[len(r.Lines)-1]
		cur.Allocations = append(cur.Allocations, a)
	}
	if err := rows.Err(); err != nil {
		return Reservation{}, "", false, fmt.Errorf("read reservation lines: %w", err)
	}
	return r, fingerprint, true, nil
}

// closeReservation moves a pending reservation to state: the conditional
// state transition that makes release, commit and expiry happen once, even
// when several processes try at the same time. With notAfter set, only a
// reservation that expired by then moves (the expiry sweep); with orderID
// set, the order id is recorded (commit).
func closeReservation(ctx context.Context, tx *store.Tx, id string, to State, now time.Time, orderID string, expiredBy *time.Time) (bool, error) {
	query := `UPDATE inventory_reservations SET state = ?, updated_at = ?, closed_at = ?`
	args := []any{string(to), now, now}
	if orderID != "" {
		query += `, order_id = ?`
		args = append(args, orderID)
	}
	query += ` WHERE id = ? AND state = ?`
	args = append(args, id, string(StatePending))
	if expiredBy != nil {
		query += ` AND expires_at <= ?`
		args = append(args, *expiredBy)
	}
	ok, err := store.ChangedOne(tx.Exec(ctx, query, args...))
	if err != nil {
		return false, fmt.Errorf("mark reservation %s %s: %w", id, to, err)
	}
	return ok, nil
}

// expiredIDs lists pending reservations whose time ran out by now, oldest
// first.
func expiredIDs(ctx context.Context, q store.Querier, now time.Time, limit int) ([]string, error) {
	return store.All(ctx, q, "find expired reservations", store.ScanString,
		`SELECT id FROM inventory_reservations WHERE state = ? AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`, string(StatePending), now, limit)
}

// --- meta ---

// claimMeta records key once per database; false when it was already there.
func claimMeta(ctx context.Context, tx *store.Tx, key, value string, at time.Time) (bool, error) {
	ok, err := store.ChangedOne(tx.Exec(ctx, `INSERT INTO inventory_meta (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`, key, value, at))
	if err != nil {
		return false, fmt.Errorf("record %s: %w", key, err)
	}
	return ok, nil
}
