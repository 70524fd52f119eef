package pricing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// Redeem implements Client. In one transaction it
//
//  1. inserts the redemption row, unique by Key (ON CONFLICT DO NOTHING: a
//     concurrent redemption with the same key waits for the first one and
//     then returns its result; a key used with other codes or another
//     order is idempotency_key_reused);
//  2. for each code (in code order, so two redemptions lock rows in the
//     same order): checks that it exists and its promotion is active and
//     within its window, then takes a use with the conditional
//     `UPDATE … SET used = used + 1 WHERE code = ? AND (usage_limit IS NULL
//     OR used < usage_limit)` — no row changed means code_exhausted;
//  3. for a promotion with a per-customer limit, takes a use of the
//     customer's counter the same way (used < limit), and records the
//     (redemption, code, customer) row;
//  4. marks the redemption redeemed and writes voucher_redeemed.
//
// Any failure rolls everything back: all codes or none. Because every use
// is a conditional update of one row, a limit is never exceeded whatever
// the concurrency (PostgreSQL re-checks the condition on the row version a
// concurrent transaction committed; SQLite serialises writers). Errors:
// validation_failed; code_invalid, code_expired, code_exhausted (naming
// the code); idempotency_key_reused.
func (s *Service) Redeem(ctx context.Context, req RedeemRequest) (Redemption, error) {
	var v apperr.Validation
	switch {
	case req.Key == "":
		v.Add("key", "required", "key (the idempotency key) is required")
	case len(req.Key) > MaxIdempotencyKey:
		v.Addf("key", "too_long", "key must be at most %d characters", MaxIdempotencyKey)
	}
	validateExternalID(&v, "order_id", req.OrderID, true)
	validateExternalID(&v, "customer_id", req.CustomerID, false)
	if req.Currency != "" {
		validateCurrency(&v, "currency", &req.Currency)
	}
	codes := normalizeCodes(&v, "codes", req.Codes)
	if len(codes) == 0 && len(req.Codes) <= MaxCodes {
		v.Add("codes", "required", "at least one code is required")
	}
	if err := v.Err(); err != nil {
		return Redemption{}, fmt.Errorf("redeem: %w", err)
	}
	var out Redemption
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		r, err := s.redeem(ctx, tx, req, codes)
		out = r
		return err
	})
	if err != nil {
		return Redemption{}, fmt.Errorf("redeem: %w", err)
	}
	return out, nil
}

func (s *Service) redeem(ctx context.Context, tx *store.Tx, req RedeemRequest, codes []string) (Redemption, error) {
	now := s.now()
	r := Redemption{ID: id.New(redemptionPrefix), Key: req.Key, OrderID: req.OrderID, Codes: codes, State: RedemptionPending}
	inserted, err := affected("insert redemption")(tx.Exec(ctx, `INSERT INTO pricing_redemptions (id, idem_key, order_id, customer_id, currency, state, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING`, r.ID, r.Key, r.OrderID, req.CustomerID, req.Currency, r.State, now))
	if err != nil {
		return Redemption{}, err
	}
	if !inserted {
		prev, ex, err := getRedemption(ctx, tx, req.Key)
		if err != nil {
			return Redemption{}, err
		}
		if prev.State == RedemptionReleased && prev.OrderID == "" {
			return prev, nil // released before it was redeemed: stays released
		}
		if prev.OrderID != req.OrderID || ex.customerID != req.CustomerID || !sameSet(prev.Codes, codes) {
			return Redemption{}, apperr.New(apperr.IdempotencyKeyReused, "key %q was used for another redemption", req.Key)
		}
		return prev, nil
	}

	var snap RedemptionSnapshot
	ordered := slices.Clone(codes)
	slices.Sort(ordered) // lock order
	for _, code := range ordered {
		var promoID string
		err := tx.QueryRow(ctx, `SELECT promotion_id FROM pricing_promotion_codes WHERE code = ?`, code).Scan(&promoID)
		if errors.Is(err, sql.ErrNoRows) {
			return Redemption{}, codeError(CodeInvalid, code)
		}
		if err != nil {
			return Redemption{}, fmt.Errorf("load code: %w", err)
		}
		p, err := scanPromotion(tx.QueryRow(ctx, `SELECT `+promotionColumns+` FROM pricing_promotions WHERE id = ?`, promoID))
		if err != nil {
			return Redemption{}, fmt.Errorf("load promotion: %w", err)
		}
		if problem := usableAt(p, now); problem != "" {
			return Redemption{}, codeError(problem, code)
		}
		ok, err := affected("use code")(tx.Exec(ctx,
			`UPDATE pricing_promotion_codes SET used = used + 1 WHERE code = ? AND (usage_limit IS NULL OR used < usage_limit)`, code))
		if err != nil {
			return Redemption{}, err
		}
		if !ok {
			return Redemption{}, codeError(CodeExhausted, code)
		}
		perCustomer := p.UsageLimitPerCustomer != nil
		if perCustomer {
			if req.CustomerID == "" {
				return Redemption{}, &apperr.Error{Code: apperr.ValidationFailed,
					Message: fmt.Sprintf("code %q is limited per customer: customer_id is required", code),
					Fields:  []apperr.FieldError{{Field: "customer_id", Code: "required", Message: "required for codes limited per customer"}}}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO pricing_customer_usage (promotion_id, customer_id, used) VALUES (?, ?, 0)
				ON CONFLICT (promotion_id, customer_id) DO NOTHING`, p.ID, req.CustomerID); err != nil {
				return Redemption{}, fmt.Errorf("count customer use: %w", err)
			}
			ok, err := affected("count customer use")(tx.Exec(ctx,
				`UPDATE pricing_customer_usage SET used = used + 1 WHERE promotion_id = ? AND customer_id = ? AND used < ?`,
				p.ID, req.CustomerID, *p.UsageLimitPerCustomer))
			if err != nil {
				return Redemption{}, err
			}
			if !ok {
				return Redemption{}, codeError(CodeExhausted, code)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pricing_redemption_codes (redemption_id, code, promotion_id, customer_id, position, per_customer)
			VALUES (?, ?, ?, ?, ?, ?)`, r.ID, code, p.ID, req.CustomerID, slices.Index(codes, code), perCustomer); err != nil {
			return Redemption{}, fmt.Errorf("record code use: %w", err)
		}
		if !slices.Contains(snap.PromotionIDs, p.ID) {
			snap.PromotionIDs = append(snap.PromotionIDs, p.ID)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE pricing_redemptions SET state = ? WHERE id = ?`, RedemptionRedeemed, r.ID); err != nil {
		return Redemption{}, fmt.Errorf("mark redeemed: %w", err)
	}
	r.State = RedemptionRedeemed
	slices.Sort(snap.PromotionIDs)
	snap.ID, snap.Key, snap.OrderID, snap.CustomerID, snap.Codes, snap.State = r.ID, r.Key, r.OrderID, req.CustomerID, r.Codes, r.State
	if err := s.publish(ctx, tx, EventVoucherRedeemed, r.ID, snap); err != nil {
		return Redemption{}, err
	}
	return r, nil
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// Release implements Client: in one transaction, the conditional
// `UPDATE pricing_redemptions SET state = 'released' … WHERE idem_key = ?
// AND state = 'redeemed'` lets exactly one caller through, which gives
// each code's use back (and the customer's) and writes voucher_released.
// Releasing again is a no-op. Releasing a key never redeemed records it as
// released, so a redemption arriving late with that key (a saga's
// compensation overtaking its action) takes nothing.
func (s *Service) Release(ctx context.Context, key string) error {
	if key == "" || len(key) > MaxIdempotencyKey {
		return fmt.Errorf("release: %w", &apperr.Error{Code: apperr.ValidationFailed, Message: "key must have 1 to 255 characters",
			Fields: []apperr.FieldError{{Field: "key", Code: "invalid", Message: "must have 1 to 255 characters"}}})
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		released, err := affected("release")(tx.Exec(ctx, `UPDATE pricing_redemptions SET state = ?, released_at = ? WHERE idem_key = ? AND state = ?`,
			RedemptionReleased, now, key, RedemptionRedeemed))
		if err != nil {
			return err
		}
		if !released {
			_, err := tx.Exec(ctx, `INSERT INTO pricing_redemptions (id, idem_key, order_id, customer_id, currency, state, created_at, released_at)
				VALUES (?, ?, '', '', '', ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING`, id.New(redemptionPrefix), key, RedemptionReleased, now, now)
			if err != nil {
				return fmt.Errorf("record release: %w", err)
			}
			return nil
		}
		r, ex, err := getRedemption(ctx, tx, key)
		if err != nil {
			return err
		}
		snap := RedemptionSnapshot{ID: r.ID, Key: r.Key, OrderID: r.OrderID, CustomerID: ex.customerID, Codes: r.Codes, State: r.State, PromotionIDs: []string{}}
		for _, c := range ex.codes {
			if _, err := tx.Exec(ctx, `UPDATE pricing_promotion_codes SET used = used - 1 WHERE code = ? AND used > 0`, c.code); err != nil {
				return fmt.Errorf("give code back: %w", err)
			}
			if c.perCustomer {
				if _, err := tx.Exec(ctx, `UPDATE pricing_customer_usage SET used = used - 1 WHERE promotion_id = ? AND customer_id = ? AND used > 0`,
					c.promotionID, ex.customerID); err != nil {
					return fmt.Errorf("give customer use back: %w", err)
				}
			}
			if !slices.Contains(snap.PromotionIDs, c.promotionID) {
				snap.PromotionIDs = append(snap.PromotionIDs, c.promotionID)
			}
		}
		slices.Sort(snap.PromotionIDs)
		return s.publish(ctx, tx, EventVoucherReleased, r.ID, snap)
	})
	if err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}
