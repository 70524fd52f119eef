package cart

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the cart's table. Apply it with bus.Migrations (the
// outbox) to the cart's database.
var Migrations = store.Migrations{Name: "cart", FS: migrationsFS}

// line is a line item as stored: what the shopper chose and what the
// catalogue said about it when it was added (shown while the catalogue no
// longer knows the variant).
type line struct {
	ID           string   `json:"id"`
	VariantID    string   `json:"variant_id"`
	ProductID    string   `json:"product_id"`
	SKU          string   `json:"sku"`
	Title        string   `json:"title"`
	VariantTitle string   `json:"variant_title"`
	CategoryIDs  []string `json:"category_ids,omitempty"`
	Quantity     int64    `json:"quantity"`
}

// record is a cart as stored: one row of cart_carts.
type record struct {
	ID               string
	Currency         string
	Status           Status
	CustomerID       string
	TokenDigest      string
	Email            string
	Items            []line
	Codes            []string
	ShippingAddress  *Address
	BillingAddress   *Address
	ShippingMethodID string
	OrderID          string
	MergedInto       string
	Version          int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
	ExpiresAt        time.Time
}

// clone returns a deep copy, so an edit never aliases the original.
func (r record) clone() record {
	c := r
	c.Items = make([]line, len(r.Items))
	for i, l := range r.Items {
		l.CategoryIDs = slices.Clone(l.CategoryIDs)
		c.Items[i] = l
	}
	c.Codes = slices.Clone(r.Codes)
	if r.ShippingAddress != nil {
		a := *r.ShippingAddress
		c.ShippingAddress = &a
	}
	if r.BillingAddress != nil {
		a := *r.BillingAddress
		c.BillingAddress = &a
	}
	return c
}

// live reports whether the cart is active and not idle past its expiry.
func (r record) live(now time.Time) bool {
	return r.Status == StatusActive && now.Before(r.ExpiresAt)
}

// itemIndex returns the index of the line with the id, or -1.
func (r record) itemIndex(itemID string) int {
	return slices.IndexFunc(r.Items, func(l line) bool { return l.ID == itemID })
}

// The SQL of the cart. Every function takes the Querier or Tx to run in; the
// service decides the transaction. None returns sql.ErrNoRows: a missing row
// is errNoCart, a conditional write that matched nothing a false result.

// errNoCart: no row with the id. The service turns it into not_found.
var errNoCart = errors.New("no such cart")

const cartColumns = `id, currency, status, customer_id, token_digest, email, items, discount_codes,
	shipping_address, billing_address, shipping_method_id, order_id, merged_into, version, created_at, updated_at, expires_at`

func scanCart(s store.RowScanner) (record, error) {
	var (
		r                         record
		customer, order, merged   sql.NullString
		items, codes              string
		shipping, billing         sql.NullString
		status                    string
		created, updated, expires time.Time
	)
	if err := s.Scan(&r.ID, &r.Currency, &status, &customer, &r.TokenDigest, &r.Email, &items, &codes,
		&shipping, &billing, &r.ShippingMethodID, &order, &merged, &r.Version, &created, &updated, &expires); err != nil {
		return record{}, err
	}
	r.Status, r.CustomerID, r.OrderID, r.MergedInto = Status(status), customer.String, order.String, merged.String
	r.CreatedAt, r.UpdatedAt, r.ExpiresAt = created.UTC(), updated.UTC(), expires.UTC()
	if err := json.Unmarshal([]byte(items), &r.Items); err != nil {
		return record{}, fmt.Errorf("decode items of %s: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(codes), &r.Codes); err != nil {
		return record{}, fmt.Errorf("decode discount codes of %s: %w", r.ID, err)
	}
	for _, a := range []struct {
		col sql.NullString
		dst **Address
	}{{shipping, &r.ShippingAddress}, {billing, &r.BillingAddress}} {
		if !a.col.Valid {
			continue
		}
		var addr Address
		if err := json.Unmarshal([]byte(a.col.String), &addr); err != nil {
			return record{}, fmt.Errorf("decode address of %s: %w", r.ID, err)
		}
		*a.dst = &addr
	}
	if r.Items == nil {
		r.Items = []line{}
	}
	if r.Codes == nil {
		r.Codes = []string{}
	}
	return r, nil
}

// getCart reads a cart by id: errNoCart when there is none.
func getCart(ctx context.Context, q store.Querier, cartID string) (record, error) {
	r, err := scanCart(q.QueryRow(ctx, `SELECT `+cartColumns+` FROM cart_carts WHERE id = ?`, cartID))
	if errors.Is(err, sql.ErrNoRows) {
		return record{}, errNoCart
	}
	if err != nil {
		return record{}, fmt.Errorf("read cart: %w", err)
	}
	return r, nil
}

// lockCart takes the row lock of a cart until tx ends (PostgreSQL; SQLite
// write transactions are exclusive already), so concurrent writers of one
// cart queue instead of losing their conditional update.
func lockCart(ctx context.Context, tx *store.Tx, cartID string) error {
	if tx.Engine() != store.Postgres {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM cart_carts WHERE id = ? FOR UPDATE`, cartID)
	if err != nil {
		return fmt.Errorf("lock cart: %w", err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock cart: %w", err)
	}
	return nil
}

// nullable maps "" to NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func addressJSON(a *Address) any {
	if a == nil {
		return nil
	}
	return store.JSONText(a)
}

func itemsJSON(items []line) string {
	if items == nil {
		items = []line{}
	}
	return store.JSONText(items)
}

func codesJSON(codes []string) string {
	if codes == nil {
		codes = []string{}
	}
	return store.JSONText(codes)
}

func insertCart(ctx context.Context, tx *store.Tx, r record) error {
	_, err := tx.Exec(ctx, `INSERT INTO cart_carts (`+cartColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Currency, string(r.Status), nullable(r.CustomerID), r.TokenDigest, r.Email, itemsJSON(r.Items), codesJSON(r.Codes),
		addressJSON(r.ShippingAddress), addressJSON(r.BillingAddress), r.ShippingMethodID, nullable(r.OrderID), nullable(r.MergedInto),
		r.Version, r.CreatedAt, r.UpdatedAt, r.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert cart: %w", err)
	}
	return nil
}

// updateCart writes r over the row if the row is still at version expected:
// the optimistic check and the write are one statement. It reports whether
// the row was written.
func updateCart(ctx context.Context, tx *store.Tx, r record, expected int64) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE cart_carts SET status = ?, customer_id = ?, email = ?, items = ?, discount_codes = ?,
		shipping_address = ?, billing_address = ?, shipping_method_id = ?, order_id = ?, merged_into = ?,
		version = ?, updated_at = ?, expires_at = ?
		WHERE id = ? AND version = ?`,
		string(r.Status), nullable(r.CustomerID), r.Email, itemsJSON(r.Items), codesJSON(r.Codes),
		addressJSON(r.ShippingAddress), addressJSON(r.BillingAddress), r.ShippingMethodID, nullable(r.OrderID), nullable(r.MergedInto),
		r.Version, r.UpdatedAt, r.ExpiresAt, r.ID, expected)
	if err != nil {
		return false, fmt.Errorf("update cart: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update cart: %w", err)
	}
	return n == 1, nil
}

// latestCustomerCart returns the id of the customer's most recently changed
// live cart in the currency other than except, or "".
func latestCustomerCart(ctx context.Context, q store.Querier, customerID, currency, except string, now time.Time) (string, error) {
	var cartID string
	err := q.QueryRow(ctx, `SELECT id FROM cart_carts
		WHERE customer_id = ? AND status = ? AND currency = ? AND id <> ? AND expires_at > ?
		ORDER BY updated_at DESC, id DESC LIMIT 1`,
		customerID, string(StatusActive), currency, except, now).Scan(&cartID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find the customer's cart: %w", err)
	}
	return cartID, nil
}

// expireBatch marks up to limit active carts idle since before now expired
// and reports how many it marked. The outer WHERE repeats the condition, so
// a cart changed (its expiry pushed) or expired by another process between
// the sub-select and the update is left alone: each cart expires once.
func expireBatch(ctx context.Context, db *store.DB, now time.Time, limit int) (int, error) {
	res, err := db.Exec(ctx, `UPDATE cart_carts SET status = ?, version = version + 1, updated_at = ?
		WHERE status = ? AND expires_at <= ? AND id IN (
			SELECT id FROM cart_carts WHERE status = ? AND expires_at <= ? ORDER BY expires_at, id LIMIT ?)`,
		string(StatusExpired), now, string(StatusActive), now, string(StatusActive), now, limit)
	if err != nil {
		return 0, fmt.Errorf("expire carts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("expire carts: %w", err)
	}
	return int(n), nil
}
