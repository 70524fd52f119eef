package pricing

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates pricing's tables. Apply it with bus.Migrations (the
// outbox) to pricing's database.
var Migrations = store.Migrations{Name: "pricing", FS: migrationsFS}

// The SQL of pricing. Every function takes the Querier or Tx to run in; the
// service decides the transaction. None returns sql.ErrNoRows: a missing
// row is an apperr NotFound, or a false "changed" result for the
// conditional writes. Booleans and times are always passed as arguments,
// never as literals, so the same text runs on both engines.

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

func nullInt(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

// affected returns a function that reports whether a write changed exactly
// one row: affected("update x")(tx.Exec(…)).
func affected(what string) func(sql.Result, error) (bool, error) {
	return func(res sql.Result, err error) (bool, error) {
		ok, err := store.ChangedOne(res, err)
		if err != nil {
			return false, fmt.Errorf("%s: %w", what, err)
		}
		return ok, nil
	}
}

// lockRow takes the row lock of a row on PostgreSQL, so a read-modify-write
// without If-Match serialises with others; SQLite write transactions are
// serialised already.
func lockRow(ctx context.Context, tx *store.Tx, table, id string) error {
	if tx.Engine() != store.Postgres {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM `+table+` WHERE id = ? FOR UPDATE`, id)
	if err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	return nil
}

// --- price lists ---

const priceListColumns = `id, name, currency, prices_include_tax, customer_group, starts_at, ends_at, priority, version, created_at, updated_at`

func scanPriceList(r store.RowScanner, extra ...any) (PriceList, error) {
	var (
		pl           PriceList
		group        sql.NullString
		starts, ends sql.NullTime
	)
	dest := append([]any{&pl.ID, &pl.Name, &pl.Currency, &pl.PricesIncludeTax, &group, &starts, &ends,
		&pl.Priority, &pl.Version, &pl.CreatedAt, &pl.UpdatedAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return PriceList{}, err
	}
	pl.CustomerGroup, pl.StartsAt, pl.EndsAt = nullString(group), store.TimeOrNil(starts), store.TimeOrNil(ends)
	pl.CreatedAt, pl.UpdatedAt = pl.CreatedAt.UTC(), pl.UpdatedAt.UTC()
	pl.Prices = []Price{}
	return pl, nil
}

func insertPriceListRow(ctx context.Context, tx *store.Tx, pl PriceList) error {
	_, err := tx.Exec(ctx, `INSERT INTO pricing_price_lists (`+priceListColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		pl.ID, pl.Name, pl.Currency, pl.PricesIncludeTax, pl.CustomerGroup, pl.StartsAt, pl.EndsAt,
		pl.Priority, pl.Version, pl.CreatedAt, pl.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert price list: %w", err)
	}
	return nil
}

// updatePriceListRow writes pl at pl.Version if the row is still at prev.
func updatePriceListRow(ctx context.Context, tx *store.Tx, pl PriceList, prev int64) (bool, error) {
	return affected("update price list")(tx.Exec(ctx, `UPDATE pricing_price_lists SET name = ?, prices_include_tax = ?, customer_group = ?, starts_at = ?, ends_at = ?,
		priority = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?`,
		pl.Name, pl.PricesIncludeTax, pl.CustomerGroup, pl.StartsAt, pl.EndsAt, pl.Priority, pl.Version, pl.UpdatedAt, pl.ID, prev))
}

// replacePrices sets the list's prices to exactly prices.
func replacePrices(ctx context.Context, tx *store.Tx, listID string, prices []Price) error {
	if _, err := tx.Exec(ctx, `DELETE FROM pricing_prices WHERE price_list_id = ?`, listID); err != nil {
		return fmt.Errorf("replace prices: %w", err)
	}
	const batch = 200
	for start := 0; start < len(prices); start += batch {
		chunk := prices[start:min(start+batch, len(prices))]
		args := make([]any, 0, 3*len(chunk))
		for _, p := range chunk {
			args = append(args, listID, p.VariantID, p.Amount)
		}
		q := `INSERT INTO pricing_prices (price_list_id, variant_id, amount) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(chunk)), ", ")
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("replace prices: %w", err)
		}
	}
	return nil
}

func getPriceList(ctx context.Context, q store.Querier, listID string) (PriceList, error) {
	pl, err := scanPriceList(q.QueryRow(ctx, `SELECT `+priceListColumns+` FROM pricing_price_lists WHERE id = ?`, listID))
	if errors.Is(err, sql.ErrNoRows) {
		return PriceList{}, notFound("price list", listID)
	}
	if err != nil {
		return PriceList{}, fmt.Errorf("get price list: %w", err)
	}
	lists := []*PriceList{&pl}
	if err := loadPrices(ctx, q, lists); err != nil {
		return PriceList{}, err
	}
	return pl, nil
}

func listPriceLists(ctx context.Context, q store.Querier, afterID string, limit int) ([]PriceList, error) {
	out, err := store.All(ctx, q, "list price lists", func(r store.RowScanner) (PriceList, error) { return scanPriceList(r) },
		`SELECT `+priceListColumns+` FROM pricing_price_lists WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, err
	}
	ptrs := make([]*PriceList, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	return out, loadPrices(ctx, q, ptrs)
}

// loadPrices fills in the prices of the lists, ordered by variant id.
func loadPrices(ctx context.Context, q store.Querier, lists []*PriceList) error {
	if len(lists) == 0 {
		return nil
	}
	byID := map[string]*PriceList{}
	ids := make([]string, len(lists))
	for i, pl := range lists {
		byID[pl.ID], ids[i] = pl, pl.ID
	}
	return store.Each(ctx, q, "load prices", func(r store.RowScanner) error {
		var listID string
		var p Price
		if err := r.Scan(&listID, &p.VariantID, &p.Amount); err != nil {
			return err
		}
		byID[listID].Prices = append(byID[listID].Prices, p)
		return nil
	}, `SELECT price_list_id, variant_id, amount FROM pricing_prices WHERE price_list_id IN (`+
		store.Placeholders(len(ids))+`) ORDER BY price_list_id, variant_id`, store.Args(ids)...)
}

// priceRows returns every price of the variants in lists of the currency,
// with the list; resolvePrices picks among them.
func priceRows(ctx context.Context, q store.Querier, currency string, variantIDs []string) ([]priceRow, error) {
	if len(variantIDs) == 0 {
		return nil, nil
	}
	return store.All(ctx, q, "load prices", func(row store.RowScanner) (priceRow, error) {
		var (
			r   priceRow
			err error
		)
		r.list, err = scanPriceList(row, &r.variantID, &r.amount)
		return r, err
	}, `SELECT l.id, l.name, l.currency, l.prices_include_tax, l.customer_group, l.starts_at, l.ends_at, l.priority,
		l.version, l.created_at, l.updated_at, p.variant_id, p.amount
		FROM pricing_prices p JOIN pricing_price_lists l ON l.id = p.price_list_id
		WHERE l.currency = ? AND p.variant_id IN (`+store.Placeholders(len(variantIDs))+`)`,
		append([]any{currency}, store.Args(variantIDs)...)...)
}

// --- promotions ---

const promotionColumns = `id, name, type, value_percent, value_amount, value_currency, target, target_ids, has_codes,
	usage_limit, usage_limit_per_customer, starts_at, ends_at, combinable, priority, conditions, buy_x_get_y, active,
	version, created_at, updated_at`

// promotionArgs are the column values of p, in promotionColumns order.
func promotionArgs(p Promotion) []any {
	var pct, amount sql.NullInt64
	var cur sql.NullString
	if p.Value != nil {
		if p.Value.Amount != nil {
			amount = sql.NullInt64{Int64: p.Value.Amount.Amount, Valid: true}
			cur = sql.NullString{String: p.Value.Amount.Currency, Valid: true}
		} else {
			pct = sql.NullInt64{Int64: p.Value.Percent, Valid: true}
		}
	}
	var bxgy sql.NullString
	if p.BuyXGetY != nil {
		bxgy = sql.NullString{String: store.JSONText(p.BuyXGetY), Valid: true}
	}
	return []any{p.ID, p.Name, string(p.Type), pct, amount, cur, string(p.Target), store.JSONText(p.TargetIDs), len(p.Codes) > 0,
		p.UsageLimit, p.UsageLimitPerCustomer, p.StartsAt, p.EndsAt, p.Combinable, p.Priority, store.JSONText(p.Conditions), bxgy, p.Active,
		p.Version, p.CreatedAt, p.UpdatedAt}
}

func scanPromotion(r store.RowScanner) (Promotion, error) {
	var (
		p                     Promotion
		pct, amount           sql.NullInt64
		cur, bxgy             sql.NullString
		targetIDs, conditions string
		hasCodes              bool
		limit, perCustomer    sql.NullInt64
		starts, ends          sql.NullTime
	)
	if err := r.Scan(&p.ID, &p.Name, &p.Type, &pct, &amount, &cur, &p.Target, &targetIDs, &hasCodes,
		&limit, &perCustomer, &starts, &ends, &p.Combinable, &p.Priority, &conditions, &bxgy, &p.Active,
		&p.Version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return Promotion{}, err
	}
	switch {
	case amount.Valid:
		p.Value = &PromotionValue{Amount: &money.Money{Amount: amount.Int64, Currency: cur.String}}
	case pct.Valid:
		p.Value = &PromotionValue{Percent: pct.Int64}
	}
	if err := json.Unmarshal([]byte(targetIDs), &p.TargetIDs); err != nil {
		return Promotion{}, fmt.Errorf("decode target_ids of %s: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(conditions), &p.Conditions); err != nil {
		return Promotion{}, fmt.Errorf("decode conditions of %s: %w", p.ID, err)
	}
	if p.Conditions.CustomerGroups == nil {
		p.Conditions.CustomerGroups = []string{}
	}
	if bxgy.Valid {
		p.BuyXGetY = new(BuyXGetY)
		if err := json.Unmarshal([]byte(bxgy.String), p.BuyXGetY); err != nil {
			return Promotion{}, fmt.Errorf("decode buy_x_get_y of %s: %w", p.ID, err)
		}
	}
	p.UsageLimit, p.UsageLimitPerCustomer = nullInt(limit), nullInt(perCustomer)
	p.StartsAt, p.EndsAt = store.TimeOrNil(starts), store.TimeOrNil(ends)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	p.Codes, p.Usage = []string{}, []CodeUsage{}
	return p, nil
}

func insertPromotionRow(ctx context.Context, tx *store.Tx, p Promotion) error {
	_, err := tx.Exec(ctx, `INSERT INTO pricing_promotions (`+promotionColumns+`) VALUES (`+store.Placeholders(21)+`)`, promotionArgs(p)...)
	if err != nil {
		return fmt.Errorf("insert promotion: %w", err)
	}
	return nil
}

func updatePromotionRow(ctx context.Context, tx *store.Tx, p Promotion, prev int64) (bool, error) {
	args := promotionArgs(p)[1:] // without id
	return affected("update promotion")(tx.Exec(ctx, `UPDATE pricing_promotions SET name = ?, type = ?, value_percent = ?, value_amount = ?, value_currency = ?,
		target = ?, target_ids = ?, has_codes = ?, usage_limit = ?, usage_limit_per_customer = ?, starts_at = ?, ends_at = ?, combinable = ?,
		priority = ?, conditions = ?, buy_x_get_y = ?, active = ?, version = ?, created_at = ?, updated_at = ? WHERE id = ? AND version = ?`,
		append(args, p.ID, prev)...))
}

// writeCodes makes the promotion's codes exactly p.Codes, each with the
// promotion's usage limit. Codes it no longer has are deleted (their
// redemptions stay on record); a code another promotion holds is a
// conflict naming codes[i].
func writeCodes(ctx context.Context, tx *store.Tx, p Promotion) error {
	codes, err := store.All(ctx, tx, "write codes", store.ScanString, `SELECT code FROM pricing_promotion_codes WHERE promotion_id = ?`, p.ID)
	if err != nil {
		return err
	}
	existing := map[string]bool{}
	for _, c := range codes {
		existing[c] = true
	}
	keep := map[string]bool{}
	for i, c := range p.Codes {
		keep[c] = true
		if existing[c] {
			if _, err := tx.Exec(ctx, `UPDATE pricing_promotion_codes SET position = ?, usage_limit = ? WHERE code = ?`, i, p.UsageLimit, c); err != nil {
				return fmt.Errorf("write codes: %w", err)
			}
			continue
		}
		var holder string
		err := tx.QueryRow(ctx, `SELECT promotion_id FROM pricing_promotion_codes WHERE code = ?`, c).Scan(&holder)
		switch {
		case err == nil:
			return codeTaken(i, c)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("write codes: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pricing_promotion_codes (code, promotion_id, position, usage_limit, used) VALUES (?, ?, ?, ?, 0)`,
			c, p.ID, i, p.UsageLimit); err != nil {
			if store.IsUniqueViolation(err) {
				return codeTaken(i, c)
			}
			return fmt.Errorf("write codes: %w", err)
		}
	}
	for c := range existing {
		if !keep[c] {
			if _, err := tx.Exec(ctx, `DELETE FROM pricing_promotion_codes WHERE code = ?`, c); err != nil {
				return fmt.Errorf("write codes: %w", err)
			}
		}
	}
	return nil
}

func codeTaken(i int, code string) error {
	return &apperr.Error{Code: apperr.Conflict, Message: fmt.Sprintf("code %q is in use by another promotion", code),
		Fields: []apperr.FieldError{{Field: fmt.Sprintf("codes[%d]", i), Code: "taken", Message: "in use by another promotion"}}}
}

func getPromotion(ctx context.Context, q store.Querier, promoID string) (Promotion, error) {
	p, err := scanPromotion(q.QueryRow(ctx, `SELECT `+promotionColumns+` FROM pricing_promotions WHERE id = ?`, promoID))
	if errors.Is(err, sql.ErrNoRows) {
		return Promotion{}, notFound("promotion", promoID)
	}
	if err != nil {
		return Promotion{}, fmt.Errorf("get promotion: %w", err)
	}
	ps := []Promotion{p}
	if err := loadCodes(ctx, q, ps); err != nil {
		return Promotion{}, err
	}
	return ps[0], nil
}

// queryPromotions runs a query selecting promotionColumns, with codes.
func queryPromotions(ctx context.Context, q store.Querier, query string, args ...any) ([]Promotion, error) {
	out, err := store.All(ctx, q, "list promotions", scanPromotion, query, args...)
	if err != nil {
		return nil, err
	}
	return out, loadCodes(ctx, q, out)
}

func listPromotions(ctx context.Context, q store.Querier, afterID string, limit int) ([]Promotion, error) {
	return queryPromotions(ctx, q, `SELECT `+promotionColumns+` FROM pricing_promotions WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

// automaticPromotions returns the active promotions without codes.
func automaticPromotions(ctx context.Context, q store.Querier) ([]Promotion, error) {
	return queryPromotions(ctx, q, `SELECT `+promotionColumns+` FROM pricing_promotions WHERE active = ? AND has_codes = ? ORDER BY id`, true, false)
}

func promotionsByID(ctx context.Context, q store.Querier, ids []string) ([]Promotion, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryPromotions(ctx, q, `SELECT `+promotionColumns+` FROM pricing_promotions WHERE id IN (`+store.Placeholders(len(ids))+`) ORDER BY id`, store.Args(ids)...)
}

// loadCodes fills in the codes and their usage, in position order.
func loadCodes(ctx context.Context, q store.Querier, ps []Promotion) error {
	if len(ps) == 0 {
		return nil
	}
	idx := map[string]int{}
	ids := make([]string, len(ps))
	for i, p := range ps {
		idx[p.ID], ids[i] = i, p.ID
	}
	return store.Each(ctx, q, "load codes", func(r store.RowScanner) error {
		var pid string
		var u CodeUsage
		if err := r.Scan(&pid, &u.Code, &u.Used); err != nil {
			return err
		}
		p := &ps[idx[pid]]
		p.Codes = append(p.Codes, u.Code)
		p.Usage = append(p.Usage, u)
		return nil
	}, `SELECT promotion_id, code, used FROM pricing_promotion_codes WHERE promotion_id IN (`+
		store.Placeholders(len(ids))+`) ORDER BY promotion_id, position`, store.Args(ids)...)
}

// codeRow is a voucher code's row: its definition (promotion, usage limit)
// and its use count. The quote cache keeps the definition only.
type codeRow struct {
	code, promotionID string
	usageLimit        *int64
	used              int64
}

// codeRows returns the rows of the codes that exist, by code.
func codeRows(ctx context.Context, q store.Querier, codes []string) (map[string]codeRow, error) {
	out := map[string]codeRow{}
	if len(codes) == 0 {
		return out, nil
	}
	err := store.Each(ctx, q, "load codes", func(row store.RowScanner) error {
		var r codeRow
		var limit sql.NullInt64
		if err := row.Scan(&r.code, &r.promotionID, &limit, &r.used); err != nil {
			return err
		}
		r.usageLimit = nullInt(limit)
		out[r.code] = r
		return nil
	}, `SELECT code, promotion_id, usage_limit, used FROM pricing_promotion_codes WHERE code IN (`+
		store.Placeholders(len(codes))+`)`, store.Args(codes)...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// customerUsed returns how often the customer redeemed the promotion.
func customerUsed(ctx context.Context, q store.Querier, promoID, customerID string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT used FROM pricing_customer_usage WHERE promotion_id = ? AND customer_id = ?`, promoID, customerID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load customer usage: %w", err)
	}
	return n, nil
}

// --- redemptions ---

func getRedemption(ctx context.Context, q store.Querier, key string) (Redemption, redemptionExtra, error) {
	var (
		r  Redemption
		ex redemptionExtra
	)
	err := q.QueryRow(ctx, `SELECT id, idem_key, order_id, customer_id, currency, state FROM pricing_redemptions WHERE idem_key = ?`, key).
		Scan(&r.ID, &r.Key, &r.OrderID, &ex.customerID, &ex.currency, &r.State)
	if errors.Is(err, sql.ErrNoRows) {
		return Redemption{}, ex, notFound("redemption", key)
	}
	if err != nil {
		return Redemption{}, ex, fmt.Errorf("get redemption: %w", err)
	}
	r.Codes = []string{}
	err = store.Each(ctx, q, "get redemption", func(row store.RowScanner) error {
		var rc redeemedCode
		if err := row.Scan(&rc.code, &rc.promotionID, &rc.perCustomer); err != nil {
			return err
		}
		r.Codes = append(r.Codes, rc.code)
		ex.codes = append(ex.codes, rc)
		return nil
	}, `SELECT code, promotion_id, per_customer FROM pricing_redemption_codes WHERE redemption_id = ? ORDER BY position`, r.ID)
	if err != nil {
		return Redemption{}, ex, err
	}
	return r, ex, nil
}

// redemptionExtra is what a redemption row holds beyond Redemption.
type redemptionExtra struct {
	customerID, currency string
	codes                []redeemedCode
}

type redeemedCode struct {
	code, promotionID string
	perCustomer       bool
}

// --- tax rates ---

const taxRateColumns = `id, country, region, rate_bps, name, version, created_at, updated_at`

func scanTaxRate(r store.RowScanner) (TaxRate, error) {
	var t TaxRate
	var region string
	if err := r.Scan(&t.ID, &t.Country, &region, &t.RateBps, &t.Name, &t.Version, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return TaxRate{}, err
	}
	if region != "" {
		t.Region = &region
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

func insertTaxRate(ctx context.Context, tx *store.Tx, t TaxRate) error {
	region := ""
	if t.Region != nil {
		region = *t.Region
	}
	_, err := tx.Exec(ctx, `INSERT INTO pricing_tax_rates (`+taxRateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Country, region, t.RateBps, t.Name, t.Version, t.CreatedAt, t.UpdatedAt)
	if store.IsUniqueViolation(err) {
		field := "country"
		if region != "" {
			field = "region"
		}
		return &apperr.Error{Code: apperr.Conflict, Message: fmt.Sprintf("a tax rate for %s %s exists already; change it instead", t.Country, region),
			Fields: []apperr.FieldError{{Field: field, Code: "taken", Message: "this place has a tax rate already"}}}
	}
	if err != nil {
		return fmt.Errorf("insert tax rate: %w", err)
	}
	return nil
}

func updateTaxRateRow(ctx context.Context, tx *store.Tx, t TaxRate, prev int64) (bool, error) {
	return affected("update tax rate")(tx.Exec(ctx, `UPDATE pricing_tax_rates SET rate_bps = ?, name = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?`,
		t.RateBps, t.Name, t.Version, t.UpdatedAt, t.ID, prev))
}

func getTaxRate(ctx context.Context, q store.Querier, rateID string) (TaxRate, error) {
	t, err := scanTaxRate(q.QueryRow(ctx, `SELECT `+taxRateColumns+` FROM pricing_tax_rates WHERE id = ?`, rateID))
	if errors.Is(err, sql.ErrNoRows) {
		return TaxRate{}, notFound("tax rate", rateID)
	}
	if err != nil {
		return TaxRate{}, fmt.Errorf("get tax rate: %w", err)
	}
	return t, nil
}

func listTaxRates(ctx context.Context, q store.Querier, afterID string, limit int) ([]TaxRate, error) {
	return queryTaxRates(ctx, q, `SELECT `+taxRateColumns+` FROM pricing_tax_rates WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

// allTaxRates returns every tax rate, for the quote cache's tables.
func allTaxRates(ctx context.Context, q store.Querier) ([]TaxRate, error) {
	return queryTaxRates(ctx, q, `SELECT `+taxRateColumns+` FROM pricing_tax_rates ORDER BY id`)
}

// queryTaxRates runs a query selecting taxRateColumns.
func queryTaxRates(ctx context.Context, q store.Querier, query string, args ...any) ([]TaxRate, error) {
	return store.All(ctx, q, "list tax rates", scanTaxRate, query, args...)
}

// --- shipping methods ---

const shippingColumns = `id, name, countries, rates, free_over, active, version, created_at, updated_at`

func scanShippingMethod(r store.RowScanner) (ShippingMethod, error) {
	var (
		m                ShippingMethod
		countries, rates string
		freeOver         sql.NullString
	)
	if err := r.Scan(&m.ID, &m.Name, &countries, &rates, &freeOver, &m.Active, &m.Version, &m.CreatedAt, &m.UpdatedAt); err != nil {
		return ShippingMethod{}, err
	}
	if err := json.Unmarshal([]byte(countries), &m.Countries); err != nil {
		return ShippingMethod{}, fmt.Errorf("decode countries of %s: %w", m.ID, err)
	}
	if err := json.Unmarshal([]byte(rates), &m.Rates); err != nil {
		return ShippingMethod{}, fmt.Errorf("decode rates of %s: %w", m.ID, err)
	}
	if freeOver.Valid {
		m.FreeOver = new(money.Money)
		if err := json.Unmarshal([]byte(freeOver.String), m.FreeOver); err != nil {
			return ShippingMethod{}, fmt.Errorf("decode free_over of %s: %w", m.ID, err)
		}
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m, nil
}

func shippingArgs(m ShippingMethod) []any {
	var freeOver sql.NullString
	if m.FreeOver != nil {
		freeOver = sql.NullString{String: store.JSONText(m.FreeOver), Valid: true}
	}
	return []any{m.ID, m.Name, store.JSONText(m.Countries), store.JSONText(m.Rates), freeOver, m.Active, m.Version, m.CreatedAt, m.UpdatedAt}
}

func insertShippingMethod(ctx context.Context, tx *store.Tx, m ShippingMethod) error {
	if _, err := tx.Exec(ctx, `INSERT INTO pricing_shipping_methods (`+shippingColumns+`) VALUES (`+store.Placeholders(9)+`)`, shippingArgs(m)...); err != nil {
		return fmt.Errorf("insert shipping method: %w", err)
	}
	return nil
}

func updateShippingMethodRow(ctx context.Context, tx *store.Tx, m ShippingMethod, prev int64) (bool, error) {
	args := shippingArgs(m)[1:]
	return affected("update shipping method")(tx.Exec(ctx, `UPDATE pricing_shipping_methods SET name = ?, countries = ?, rates = ?, free_over = ?, active = ?, version = ?,
		created_at = ?, updated_at = ? WHERE id = ? AND version = ?`, append(args, m.ID, prev)...))
}

func getShippingMethod(ctx context.Context, q store.Querier, methodID string) (ShippingMethod, error) {
	m, err := scanShippingMethod(q.QueryRow(ctx, `SELECT `+shippingColumns+` FROM pricing_shipping_methods WHERE id = ?`, methodID))
	if errors.Is(err, sql.ErrNoRows) {
		return ShippingMethod{}, notFound("shipping method", methodID)
	}
	if err != nil {
		return ShippingMethod{}, fmt.Errorf("get shipping method: %w", err)
	}
	return m, nil
}

func queryShippingMethods(ctx context.Context, q store.Querier, query string, args ...any) ([]ShippingMethod, error) {
	return store.All(ctx, q, "list shipping methods", scanShippingMethod, query, args...)
}

func listShippingMethods(ctx context.Context, q store.Querier, afterID string, limit int) ([]ShippingMethod, error) {
	return queryShippingMethods(ctx, q, `SELECT `+shippingColumns+` FROM pricing_shipping_methods WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

// allShippingMethods returns every shipping method, active or not, for the
// quote cache's tables.
func allShippingMethods(ctx context.Context, q store.Querier) ([]ShippingMethod, error) {
	return queryShippingMethods(ctx, q, `SELECT `+shippingColumns+` FROM pricing_shipping_methods ORDER BY id`)
}
