package cart

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/store"
)

// Merge hands an anonymous cart to the customer who just logged in. The
// caller must be a customer and open cartID as its owner would (the
// anonymous cart's X-Cart-Token); ifMatch, when set, is that cart's
// version. The rule:
//
//   - When the customer has no other live cart in the same currency, the
//     anonymous cart is bound to them (its customer_id set, its expiry now
//     the customer carts' IdleTTL) and returned.
//   - Otherwise the anonymous cart is merged into the customer's most
//     recently changed live cart in that currency, which survives and is
//     returned: lines of the same variant add their quantities (capped at
//     MaxQuantity), other lines are appended while the cart has room
//     (MaxLines; what does not fit is dropped), discount codes are added
//     (up to MaxCodes), and each checkout detail set on the anonymous cart
//     (email, billing address, the shipping address with its method)
//     replaces the customer cart's — it is what the shopper entered last.
//     The anonymous cart becomes expired with merged_into naming the
//     survivor. Carts in other currencies are never merged.
//
// Merging the customer's own cart returns it unchanged, and repeating a
// merge (the anonymous cart already merged into this customer's live cart)
// returns the survivor again, so a retried request is harmless. Errors:
// unauthorized (no customer token), forbidden (a staff or API key token),
// not_found, version_conflict.
func (s *Service) Merge(ctx context.Context, c Caller, cartID string, ifMatch int64) (Cart, error) {
	customer := c.customerID()
	switch {
	case c.Principal.Subject == "":
		return Cart{}, apperr.New(apperr.Unauthorized, "merging a cart needs the customer's access token")
	case customer == "":
		return Cart{}, apperr.New(apperr.Forbidden, "only a customer can take over an anonymous cart")
	}
	for attempt := 1; ; attempt++ {
		out, err := s.merge(ctx, c, customer, cartID, ifMatch)
		if errors.Is(err, errConcurrentChange) {
			if attempt < maxWriteAttempts {
				continue
			}
			return Cart{}, apperr.New(apperr.Conflict, "the carts are being changed by others at the same time; retry")
		}
		if err != nil {
			return Cart{}, fmt.Errorf("merge cart: %w", err)
		}
		return s.viewAfterWrite(ctx, out, c), nil
	}
}

// merge makes one attempt; errConcurrentChange means start over.
func (s *Service) merge(ctx context.Context, c Caller, customer, cartID string, ifMatch int64) (record, error) {
	src, err := s.anyCart(ctx, cartID)
	if err != nil {
		return record{}, err
	}
	if !mayOpen(src, c) {
		return record{}, notFound(cartID)
	}
	now := s.now()
	if !src.live(now) {
		// A retried merge: answer with the cart it went into.
		if src.MergedInto != "" && src.CustomerID == "" {
			if into, err := s.open(ctx, s.db, src.MergedInto, c); err == nil {
				return into, nil
			}
		}
		return record{}, notFound(cartID)
	}
	if ifMatch > 0 && src.Version != ifMatch {
		return record{}, versionConflict(ifMatch, src.Version)
	}
	if src.CustomerID == customer {
		return src, nil
	}
	intoID, err := latestCustomerCart(ctx, s.db, customer, src.Currency, src.ID, now)
	if err != nil {
		return record{}, err
	}
	var out record
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		ids := []string{src.ID}
		if intoID != "" {
			ids = append(ids, intoID)
		}
		slices.Sort(ids) // one lock order: two merges never deadlock
		for _, cid := range ids {
			if err := lockCart(ctx, tx, cid); err != nil {
				return err
			}
		}
		from, err := s.open(ctx, tx, src.ID, c)
		if err != nil {
			return err
		}
		if ifMatch > 0 && from.Version != ifMatch {
			return versionConflict(ifMatch, from.Version)
		}
		if from.CustomerID != "" {
			return errConcurrentChange // bound meanwhile: start over
		}
		if intoID == "" {
			next := from.clone()
			next.CustomerID = customer
			s.touch(&next, from.Version)
			return s.save(ctx, tx, &out, next, from.Version)
		}
		into, err := getCart(ctx, tx, intoID)
		if err != nil || into.CustomerID != customer || !into.live(s.now()) {
			return errConcurrentChange // gone meanwhile: start over
		}
		next := into.clone()
		s.absorb(&next, from)
		s.touch(&next, into.Version)
		merged := from.clone()
		merged.Status, merged.MergedInto = StatusExpired, into.ID
		merged.Version, merged.UpdatedAt = from.Version+1, s.now()
		var ignored record
		if err := s.save(ctx, tx, &ignored, merged, from.Version); err != nil {
			return err
		}
		return s.save(ctx, tx, &out, next, into.Version)
	})
	return out, err
}

// save writes r over the row at version expected into *out, or reports the
// lost race.
func (s *Service) save(ctx context.Context, tx *store.Tx, out *record, r record, expected int64) error {
	ok, err := updateCart(ctx, tx, r, expected)
	if err != nil {
		return err
	}
	if !ok {
		return errConcurrentChange
	}
	*out = r
	return nil
}

// absorb merges the anonymous cart from into the customer's cart into
// (see Merge for the rule).
func (s *Service) absorb(into *record, from record) {
	maxQ := int64(s.cfg.MaxQuantity)
	for _, l := range from.Items {
		if i := slices.IndexFunc(into.Items, func(x line) bool { return x.VariantID == l.VariantID }); i >= 0 {
			into.Items[i].Quantity = min(into.Items[i].Quantity+l.Quantity, maxQ)
			continue
		}
		if len(into.Items) < s.cfg.MaxLines {
			l.Quantity = min(l.Quantity, maxQ)
			into.Items = append(into.Items, l)
		}
	}
	for _, code := range from.Codes {
		if !containsFold(into.Codes, code) && len(into.Codes) < MaxCodes {
			into.Codes = append(into.Codes, code)
		}
	}
	if from.Email != "" {
		into.Email = from.Email
	}
	if from.BillingAddress != nil {
		into.BillingAddress = from.BillingAddress
	}
	if from.ShippingAddress != nil {
		into.ShippingAddress, into.ShippingMethodID = from.ShippingAddress, from.ShippingMethodID
	}
}

// customerPrincipal is a principal standing for a customer.
func customerPrincipal(customerID string) auth.Principal {
	return auth.Principal{Subject: customerID, Kind: auth.KindCustomer}
}
