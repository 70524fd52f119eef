package cart

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/pricing"
)

// Catalog is what the cart asks the catalogue; catalog.Client satisfies it.
// GetVariant must answer apperr not_found for a variant that does not exist
// or whose product is not published; GetVariants must leave such a variant
// out of its answer, and take up to catalog.MaxVariantBatch distinct ids.
type Catalog interface {
	GetVariant(ctx context.Context, variantID string) (catalog.VariantRef, error)
	GetVariants(ctx context.Context, variantIDs []string) (map[string]catalog.VariantRef, error)
}

// Pricing is what the cart asks pricing; pricing.Client satisfies it.
type Pricing interface {
	Quote(ctx context.Context, req pricing.QuoteRequest) (pricing.Quote, error)
	ShippingOptions(ctx context.Context, req pricing.QuoteRequest) ([]pricing.ShippingOption, error)
	CheckCode(ctx context.Context, code, currency, customerID string) error
}

var (
	_ Catalog = catalog.Client(nil)
	_ Pricing = pricing.Client(nil)
)

// Service is the cart's use cases over its database. It is safe for
// concurrent use. Every error a caller may see is an *apperr.Error.
//
// Writes. Every change reads the cart, asks the catalogue and pricing what
// it needs outside any transaction, then applies the change to the row in a
// transaction ending in one conditional UPDATE … WHERE version = ?. With an
// If-Match version the condition is that version: a stale one is
// version_conflict and nothing changes. Without one, concurrent writers of
// a cart queue on its row lock (PostgreSQL) or the database's write lock
// (SQLite), and a change that still loses the race is tried again from a
// fresh read, so no update is ever lost. Every successful change adds one
// to the version and pushes expires_at to now + the idle TTL.
type Service struct {
	db      *store.DB
	outbox  *bus.Outbox
	log     *slog.Logger
	catalog Catalog
	pricing Pricing
	cfg     Config
	now     func() time.Time
}

// New returns the cart service on db, whose schema must have Migrations and
// bus.Migrations applied. cfg should have passed Validate; its zero fields
// take their defaults. A nil outbox writes events without waking a relay; a
// nil logger discards.
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, catalog Catalog, pricing Pricing, cfg Config) *Service {
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	return &Service{
		db:      db,
		outbox:  outbox,
		log:     logger, // the composition root labels it (component=cart)
		catalog: catalog,
		pricing: pricing,
		cfg:     cfg,
		// Microseconds: what PostgreSQL keeps, so a value read back equals
		// the one written on both engines.
		now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
}

// --- tokens and access ---

// newToken returns a new cart token (256 random bits) and its digest.
func newToken() (token, digest string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, tokenDigest(token)
}

func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// maxTokenLen bounds the X-Cart-Token a request may carry.
const maxTokenLen = 256

// tokenMatches compares a token with a stored digest in constant time.
func tokenMatches(digest, token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	want, err := hex.DecodeString(digest)
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], want) == 1
}

// mayOpen reports whether the caller may see the cart: a customer's cart
// only by that customer, an anonymous one only with its token.
func mayOpen(r record, c Caller) bool {
	if r.CustomerID != "" {
		return c.customerID() == r.CustomerID
	}
	return tokenMatches(r.TokenDigest, c.CartToken)
}

// open reads a live cart the caller may see; anything else is not_found.
func (s *Service) open(ctx context.Context, q store.Querier, cartID string, c Caller) (record, error) {
	if !id.Valid(cartPrefix, cartID) {
		return record{}, notFound(cartID)
	}
	r, err := getCart(ctx, q, cartID)
	if errors.Is(err, errNoCart) {
		return record{}, notFound(cartID)
	}
	if err != nil {
		return record{}, err
	}
	if !mayOpen(r, c) || !r.live(s.now()) {
		return record{}, notFound(cartID)
	}
	return r, nil
}

// ttl is the idle lifetime of the cart.
func (s *Service) ttl(r record) time.Duration {
	if r.CustomerID != "" {
		return s.cfg.IdleTTL
	}
	return s.cfg.AnonymousIdleTTL
}

// touch makes r the next version of a cart at version prev.
func (s *Service) touch(r *record, prev int64) {
	now := s.now()
	r.Version = prev + 1
	r.UpdatedAt = now
	r.ExpiresAt = now.Add(s.ttl(*r))
}

// --- the write path ---

// edit is a change to a cart, applied inside the write transaction to the
// row as it is then. It must be quick (no calls to other services) and
// repeatable. It returns errNoChange when the cart already is as asked,
// errConcurrentChange when what prepare checked no longer holds.
type edit func(r *record) error

var (
	errNoChange         = errors.New("nothing to change")
	errConcurrentChange = errors.New("changed concurrently")
)

// maxWriteAttempts bounds how often change starts over after losing a race.
const maxWriteAttempts = 8

// change applies a change to a live cart the caller may see. prepare runs
// outside any transaction on the cart as last read: it validates what needs
// the catalogue or pricing and returns the edit. See Service for the rules.
func (s *Service) change(ctx context.Context, cartID string, c Caller, ifMatch int64,
	prepare func(ctx context.Context, cur record) (edit, error)) (record, error) {
	for attempt := 1; ; attempt++ {
		cur, err := s.open(ctx, s.db, cartID, c)
		if err != nil {
			return record{}, err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return record{}, versionConflict(ifMatch, cur.Version)
		}
		apply, err := prepare(ctx, cur.clone())
		if err != nil {
			return record{}, err
		}
		var out record
		err = s.db.InTx(ctx, func(tx *store.Tx) error {
			// Usually nobody changed the cart since it was read: the
			// update conditional on that version needs no second read.
			ok, err := s.applyTo(ctx, tx, cur, apply, &out)
			if ok || err != nil {
				return err
			}
			if ifMatch > 0 {
				return s.lostRace(ctx, tx, cartID, ifMatch)
			}
			// Someone did: queue behind the other writers and apply the
			// edit to the cart as it is now.
			if err := lockCart(ctx, tx, cartID); err != nil {
				return err
			}
			r, err := s.open(ctx, tx, cartID, c)
			if err != nil {
				return err
			}
			if ok, err = s.applyTo(ctx, tx, r, apply, &out); ok || err != nil {
				return err
			}
			return errConcurrentChange
		})
		if errors.Is(err, errConcurrentChange) {
			if attempt < maxWriteAttempts {
				continue
			}
			return record{}, apperr.New(apperr.Conflict, "the cart is being changed by others at the same time; retry")
		}
		if err != nil {
			return record{}, err
		}
		return out, nil
	}
}

// applyTo applies an edit to the cart r and writes it conditionally on r's
// version, setting *out to the cart written (or r, when the edit changes
// nothing); false when the cart is no longer at that version.
func (s *Service) applyTo(ctx context.Context, tx *store.Tx, r record, apply edit, out *record) (bool, error) {
	next := r.clone()
	switch err := apply(&next); {
	case errors.Is(err, errNoChange):
		*out = r
		return true, nil
	case err != nil:
		return false, err
	}
	s.touch(&next, r.Version)
	ok, err := updateCart(ctx, tx, next, r.Version)
	if ok && err == nil {
		*out = next
	}
	return ok, err
}

// lostRace is the error of a conditional write that matched no row.
func (s *Service) lostRace(ctx context.Context, tx *store.Tx, cartID string, ifMatch int64) error {
	if ifMatch == 0 {
		return errConcurrentChange
	}
	r, err := getCart(ctx, tx, cartID)
	if errors.Is(err, errNoCart) {
		return notFound(cartID)
	}
	if err != nil {
		return err
	}
	return versionConflict(ifMatch, r.Version)
}

// --- use cases ---

// Create makes a new, empty cart and returns it with its token, the only
// time the token is shown. A customer caller's cart is bound to that
// customer. Errors: validation_failed naming currency or email.
func (s *Service) Create(ctx context.Context, c Caller, in CreateInput) (Cart, error) {
	var v apperr.Validation
	currency := validateCurrency(&v, "currency", strings.TrimSpace(in.Currency))
	email := strings.TrimSpace(in.Email)
	if email != "" {
		validateEmail(&v, "email", email)
	}
	if err := v.Err(); err != nil {
		return Cart{}, fmt.Errorf("create cart: %w", err)
	}
	token, digest := newToken()
	now := s.now()
	r := record{
		ID: id.New(cartPrefix), Currency: currency, Status: StatusActive, CustomerID: c.customerID(),
		TokenDigest: digest, Email: email, Items: []line{}, Codes: []string{},
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	r.ExpiresAt = now.Add(s.ttl(r))
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { return insertCart(ctx, tx, r) }); err != nil {
		return Cart{}, fmt.Errorf("create cart: %w", err)
	}
	out := s.viewAfterWrite(ctx, r, c)
	out.CartToken = token
	return out, nil
}

// Get returns a live cart the caller may see, priced now. Errors:
// not_found, unavailable (the catalogue or pricing cannot answer).
func (s *Service) Get(ctx context.Context, c Caller, cartID string) (Cart, error) {
	r, err := s.open(ctx, s.db, cartID, c)
	if err != nil {
		return Cart{}, err
	}
	out, err := s.price(ctx, r, c)
	if err != nil {
		return Cart{}, fmt.Errorf("get cart: %w", err)
	}
	return out, nil
}

// AdminGet returns any cart, in any status, priced now (for support).
// Errors: not_found, unavailable.
func (s *Service) AdminGet(ctx context.Context, cartID string) (Cart, error) {
	r, err := s.anyCart(ctx, cartID)
	if err != nil {
		return Cart{}, err
	}
	out, err := s.price(ctx, r, Caller{})
	if err != nil {
		return Cart{}, fmt.Errorf("get cart: %w", err)
	}
	return out, nil
}

// anyCart reads a cart whatever its status.
func (s *Service) anyCart(ctx context.Context, cartID string) (record, error) {
	if !id.Valid(cartPrefix, cartID) {
		return record{}, notFound(cartID)
	}
	r, err := getCart(ctx, s.db, cartID)
	if errors.Is(err, errNoCart) {
		return record{}, notFound(cartID)
	}
	return r, err
}

// AddItem adds quantity of a variant to the cart: to the line of the same
// variant when there is one (quantities add), else as a new line. The
// variant must be sold by the catalogue (published) and have a price in the
// cart's currency. Errors: validation_failed naming variant_id (unknown or
// unpublished), quantity (1 to MaxQuantity, the line's total included) or
// items (MaxLines reached); price_missing naming variant_id; not_found;
// version_conflict.
func (s *Service) AddItem(ctx context.Context, c Caller, cartID string, in ItemInput, ifMatch int64) (Cart, error) {
	var v apperr.Validation
	variantID := strings.TrimSpace(in.VariantID)
	switch {
	case variantID == "":
		v.Add("variant_id", "required", "variant_id is required")
	case len(variantID) > maxVariantIDLen || !printable(variantID):
		v.Add("variant_id", "invalid", "variant_id must be a variant id (var_…)")
	}
	validateQuantity(&v, "quantity", in.Quantity, 1, int64(s.cfg.MaxQuantity))
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	r, err := s.change(ctx, cartID, c, ifMatch, func(ctx context.Context, cur record) (edit, error) {
		ref, err := s.sellable(ctx, variantID, "variant_id")
		if err != nil {
			return nil, err
		}
		if err := s.checkPrice(ctx, cur, c, ref, in.Quantity, "variant_id"); err != nil {
			return nil, err
		}
		return func(r *record) error { return s.addLine(r, ref, in.Quantity) }, nil
	})
	if err != nil {
		return Cart{}, fmt.Errorf("add item: %w", err)
	}
	return s.viewAfterWrite(ctx, r, c), nil
}

// addLine merges quantity of the variant into r.
func (s *Service) addLine(r *record, ref catalog.VariantRef, quantity int64) error {
	maxQ := int64(s.cfg.MaxQuantity)
	if i := slices.IndexFunc(r.Items, func(l line) bool { return l.VariantID == ref.ID }); i >= 0 {
		q := r.Items[i].Quantity + quantity
		if q > maxQ {
			return fieldError(apperr.ValidationFailed, "quantity", "out_of_range",
				"the cart already holds %d of this variant; at most %d fit in one line", r.Items[i].Quantity, maxQ)
		}
		l := lineOf(ref, q)
		l.ID = r.Items[i].ID
		r.Items[i] = l
		return nil
	}
	if len(r.Items) >= s.cfg.MaxLines {
		return fieldError(apperr.ValidationFailed, "items", "too_many", "a cart holds at most %d lines", s.cfg.MaxLines)
	}
	l := lineOf(ref, quantity)
	l.ID = id.New(itemPrefix)
	r.Items = append(r.Items, l)
	return nil
}

// lineOf describes a variant as a line (without an id).
func lineOf(ref catalog.VariantRef, quantity int64) line {
	return line{
		VariantID: ref.ID, ProductID: ref.ProductID, SKU: ref.SKU, Title: ref.ProductTitle,
		VariantTitle: ref.Title, CategoryIDs: slices.Clone(ref.ProductCategoryIDs), Quantity: quantity,
	}
}

// sellable asks the catalogue for a variant it sells. not_found becomes a
// validation error naming field; anything else is unavailable.
func (s *Service) sellable(ctx context.Context, variantID, field string) (catalog.VariantRef, error) {
	ref, err := s.catalog.GetVariant(ctx, variantID)
	switch {
	case apperr.Is(err, apperr.NotFound):
		return catalog.VariantRef{}, fieldError(apperr.ValidationFailed, field, "unknown",
			"variant %q does not exist or is not for sale", variantID)
	case err != nil:
		return catalog.VariantRef{}, dependencyError("catalog", err)
	}
	return ref, nil
}

// checkPrice asks pricing whether the variant has a price in the cart's
// currency for this shopper.
func (s *Service) checkPrice(ctx context.Context, cur record, c Caller, ref catalog.VariantRef, quantity int64, field string) error {
	const probe = "probe"
	q, err := s.pricing.Quote(ctx, pricing.QuoteRequest{
		Currency: cur.Currency, CustomerID: PricingCustomerKey(cur.CustomerID, cur.Email), CustomerGroups: s.groups(ctx, cur, c),
		Lines: []pricing.QuoteLine{{ID: probe, VariantID: ref.ID, SKU: ref.SKU, ProductID: ref.ProductID,
			CategoryIDs: ref.ProductCategoryIDs, Quantity: quantity}},
	})
	if err != nil {
		return dependencyError("pricing", err)
	}
	for _, l := range q.Lines {
		if (l.ID == probe || l.VariantID == ref.ID) && l.Problem != "" {
			return fieldError(CodePriceMissing, field, l.Problem, "variant %q has no price in %s", ref.ID, cur.Currency)
		}
	}
	return nil
}

// UpdateItem sets the quantity of a line; 0 removes it. Errors:
// validation_failed naming quantity (0 to MaxQuantity), not_found (the cart
// or the item), version_conflict.
func (s *Service) UpdateItem(ctx context.Context, c Caller, cartID, itemID string, quantity, ifMatch int64) (Cart, error) {
	var v apperr.Validation
	validateQuantity(&v, "quantity", quantity, 0, int64(s.cfg.MaxQuantity))
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	r, err := s.change(ctx, cartID, c, ifMatch, func(context.Context, record) (edit, error) {
		return func(r *record) error {
			i := r.itemIndex(itemID)
			switch {
			case i < 0:
				return apperr.New(apperr.NotFound, "item %q is not in the cart", itemID)
			case quantity == 0:
				r.Items = slices.Delete(r.Items, i, i+1)
			case r.Items[i].Quantity == quantity:
				return errNoChange
			default:
				r.Items[i].Quantity = quantity
			}
			return nil
		}, nil
	})
	if err != nil {
		return Cart{}, fmt.Errorf("update item: %w", err)
	}
	return s.viewAfterWrite(ctx, r, c), nil
}

// RemoveItem removes a line. Errors: not_found (the cart or the item),
// version_conflict.
func (s *Service) RemoveItem(ctx context.Context, c Caller, cartID, itemID string, ifMatch int64) (Cart, error) {
	r, err := s.change(ctx, cartID, c, ifMatch, func(context.Context, record) (edit, error) {
		return func(r *record) error {
			i := r.itemIndex(itemID)
			if i < 0 {
				return apperr.New(apperr.NotFound, "item %q is not in the cart", itemID)
			}
			r.Items = slices.Delete(r.Items, i, i+1)
			return nil
		}, nil
	})
	if err != nil {
		return Cart{}, fmt.Errorf("remove item: %w", err)
	}
	return s.viewAfterWrite(ctx, r, c), nil
}

// AddCode applies a discount code after pricing's CheckCode accepts it for
// the cart's currency and customer. Adding a code the cart holds changes
// nothing. Errors: code_invalid, code_expired, code_exhausted (422, naming
// code); validation_failed naming code or discount_codes (MaxCodes);
// not_found; version_conflict.
func (s *Service) AddCode(ctx context.Context, c Caller, cartID, code string, ifMatch int64) (Cart, error) {
	code = normalizeCode(code)
	var v apperr.Validation
	validateCode(&v, "code", code)
	if err := v.Err(); err != nil {
		return Cart{}, err
	}
	r, err := s.change(ctx, cartID, c, ifMatch, func(ctx context.Context, cur record) (edit, error) {
		if !containsFold(cur.Codes, code) {
			if err := s.pricing.CheckCode(ctx, code, cur.Currency, PricingCustomerKey(cur.CustomerID, cur.Email)); err != nil {
				return nil, codeError(err)
			}
		}
		return func(r *record) error {
			switch {
			case containsFold(r.Codes, code):
				return errNoChange
			case !containsFold(cur.Codes, code) && r.CustomerID != cur.CustomerID:
				return errConcurrentChange // checked for another customer
			case len(r.Codes) >= MaxCodes:
				return fieldError(apperr.ValidationFailed, "discount_codes", "too_many", "a cart holds at most %d discount codes", MaxCodes)
			}
			r.Codes = append(r.Codes, code)
			return nil
		}, nil
	})
	if err != nil {
		return Cart{}, fmt.Errorf("add discount code: %w", err)
	}
	return s.viewAfterWrite(ctx, r, c), nil
}

// codeError names the code field in CheckCode's refusals and reports the
// rest as unavailable.
func codeError(err error) error {
	var e *apperr.Error
	if errors.As(err, &e) {
		switch e.Code {
		case pricing.CodeInvalid, pricing.CodeExpired, pricing.CodeExhausted, pricing.CodeNotApplicable:
			return &apperr.Error{Code: e.Code, Message: e.Message, Err: err,
				Fields: []apperr.FieldError{{Field: "code", Code: string(e.Code), Message: e.Message}}}
		}
	}
	return dependencyError("pricing", err)
}

// RemoveCode removes a discount code (compared case-insensitively).
// Errors: not_found (the cart, or a code it does not hold),
// version_conflict.
func (s *Service) RemoveCode(ctx context.Context, c Caller, cartID, code string, ifMatch int64) (Cart, error) {
	code = normalizeCode(code)
	r, err := s.change(ctx, cartID, c, ifMatch, func(context.Context, record) (edit, error) {
		return func(r *record) error {
			i := slices.IndexFunc(r.Codes, func(x string) bool { return strings.EqualFold(x, code) })
			if i < 0 {
				return apperr.New(apperr.NotFound, "discount code %q is not applied to the cart", code)
			}
			r.Codes = slices.Delete(r.Codes, i, i+1)
			return nil
		}, nil
	})
	if err != nil {
		return Cart{}, fmt.Errorf("remove discount code: %w", err)
	}
	return s.viewAfterWrite(ctx, r, c), nil
}

// Update changes the cart's checkout details: fields not Set are left
// alone, null clears. A shipping method must be one pricing offers for the
// cart's shipping address (the one in the patch, if any). Clearing the
// address clears the method; changing it keeps the method only while it is
// still offered. Errors: validation_failed naming each bad field
// (shipping_address.line1, billing_address.country, email …);
// shipping_method_unavailable naming shipping_method_id; not_found;
// version_conflict.
func (s *Service) Update(ctx context.Context, c Caller, cartID string, p Patch, ifMatch int64) (Cart, error) {
	p, err := validatePatch(p)
	if err != nil {
		return Cart{}, err
	}
	r, err := s.change(ctx, cartID, c, ifMatch, func(ctx context.Context, cur record) (edit, error) {
		return s.preparePatch(ctx, cur, c, p)
	})
	if err != nil {
		return Cart{}, fmt.Errorf("update cart: %w", err)
	}
	return s.viewAfterWrite(ctx, r, c), nil
}

// validatePatch checks and normalizes a patch's values.
func validatePatch(p Patch) (Patch, error) {
	var v apperr.Validation
	if p.Email.Set && p.Email.Value != nil {
		e := strings.TrimSpace(*p.Email.Value)
		validateEmail(&v, "email", e)
		p.Email = Value(e)
	}
	for _, a := range []struct {
		field string
		val   *Nullable[Address]
	}{{"shipping_address", &p.ShippingAddress}, {"billing_address", &p.BillingAddress}} {
		if a.val.Set && a.val.Value != nil {
			n := normalizeAddress(*a.val.Value)
			validateAddress(&v, a.field, n)
			*a.val = Value(n)
		}
	}
	if p.ShippingMethodID.Set && p.ShippingMethodID.Value != nil {
		m := strings.TrimSpace(*p.ShippingMethodID.Value)
		switch {
		case m == "":
			v.Add("shipping_method_id", "required", "shipping_method_id cannot be empty; send null to clear it")
		case len(m) > MaxMethodIDLen || !printable(m):
			v.Add("shipping_method_id", "invalid", "shipping_method_id must be the id of one of the cart's shipping methods")
		}
		p.ShippingMethodID = Value(m)
	}
	return p, v.Err()
}

// preparePatch decides the shipping method (which needs pricing) and
// returns the edit applying the patch.
func (s *Service) preparePatch(ctx context.Context, cur record, c Caller, p Patch) (edit, error) {
	address := cur.ShippingAddress
	if p.ShippingAddress.Set {
		address = p.ShippingAddress.Value
	}
	method := cur.ShippingMethodID
	checked := false // the method was decided on cur's shipping details
	switch {
	case p.ShippingMethodID.Set && p.ShippingMethodID.Value != nil:
		method = *p.ShippingMethodID.Value
		if address == nil {
			return nil, fieldError(CodeShippingMethodUnavailable, "shipping_method_id", "shipping_address_required",
				"set a shipping address before choosing a shipping method")
		}
		offered, err := s.offers(ctx, cur, c, address, method)
		if err != nil {
			return nil, err
		}
		if !offered {
			return nil, fieldError(CodeShippingMethodUnavailable, "shipping_method_id", "not_offered",
				"shipping method %q is not offered for this cart's address; GET /store/carts/%s/shipping-methods lists those that are", method, cur.ID)
		}
		checked = true
	case p.ShippingMethodID.Set:
		method = ""
	case p.ShippingAddress.Set && method != "":
		if address == nil {
			method = ""
		} else {
			offered, err := s.offers(ctx, cur, c, address, method)
			if err != nil {
				return nil, err
			}
			if !offered {
				method = ""
			}
		}
		checked = true
	}
	return func(r *record) error {
		if checked && (!reflect.DeepEqual(r.ShippingAddress, cur.ShippingAddress) || r.ShippingMethodID != cur.ShippingMethodID) {
			return errConcurrentChange
		}
		before := r.clone()
		if p.Email.Set {
			r.Email = ""
			if p.Email.Value != nil {
				r.Email = *p.Email.Value
			}
		}
		if p.ShippingAddress.Set {
			r.ShippingAddress = p.ShippingAddress.Value
		}
		if p.BillingAddress.Set {
			r.BillingAddress = p.BillingAddress.Value
		}
		if checked || p.ShippingMethodID.Set {
			r.ShippingMethodID = method
		}
		if r.ShippingAddress == nil {
			r.ShippingMethodID = ""
		}
		if reflect.DeepEqual(before, *r) {
			return errNoChange
		}
		return nil
	}, nil
}

// offers reports whether pricing offers the method for the cart shipped to
// address.
func (s *Service) offers(ctx context.Context, cur record, c Caller, address *Address, method string) (bool, error) {
	cur.ShippingAddress = address
	cur.ShippingMethodID = ""
	options, err := s.shippingOptions(ctx, cur, c)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(options, func(o pricing.ShippingOption) bool { return o.ID == method }), nil
}

// ShippingMethods lists the shipping methods pricing offers for the cart's
// shipping address, priced for the cart. Errors: shipping_address_required
// naming shipping_address; not_found; unavailable.
func (s *Service) ShippingMethods(ctx context.Context, c Caller, cartID string) ([]ShippingMethod, error) {
	r, err := s.open(ctx, s.db, cartID, c)
	if err != nil {
		return nil, err
	}
	if r.ShippingAddress == nil {
		return nil, fieldError(CodeShippingAddressRequired, "shipping_address", "required",
			"the cart has no shipping address; set one with PATCH /store/carts/%s first", cartID)
	}
	options, err := s.shippingOptions(ctx, r, c)
	if err != nil {
		return nil, fmt.Errorf("list shipping methods: %w", err)
	}
	out := make([]ShippingMethod, len(options))
	for i, o := range options {
		out[i] = shippingMethodOf(o)
	}
	return out, nil
}

func (s *Service) shippingOptions(ctx context.Context, r record, c Caller) ([]pricing.ShippingOption, error) {
	lines, gone, err := s.resolve(ctx, r)
	if err != nil {
		return nil, err
	}
	options, err := s.pricing.ShippingOptions(ctx, s.quoteRequest(ctx, r, c, lines, gone))
	if err != nil {
		return nil, dependencyError("pricing", err)
	}
	return options, nil
}

func shippingMethodOf(o pricing.ShippingOption) ShippingMethod {
	return ShippingMethod{ID: o.ID, Name: o.Name, Price: o.Price, Free: o.Free}
}

// dependencyError reports a failure of another service as unavailable,
// keeping the cause for the logs.
func dependencyError(dep string, err error) error {
	if apperr.Is(err, apperr.Unavailable) {
		return err
	}
	return apperr.Wrap(err, apperr.Unavailable, dep+" could not answer; retry later")
}

// --- expiry ---

// expiryBatch is how many carts one statement of ExpireStale marks.
const expiryBatch = 500

// ExpireStale marks every active cart whose expires_at is not after now
// expired, in batches, and returns how many it marked. Safe to run from
// several processes at once: each cart moves from active to expired by a
// conditional UPDATE, once, and a cart changed meanwhile (its expiry
// pushed) is left alone.
func (s *Service) ExpireStale(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC()
	total := 0
	for {
		n, err := expireBatch(ctx, s.db, now, expiryBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < expiryBatch {
			return total, nil
		}
	}
}

// Run expires idle carts every Config.ExpiryInterval until ctx is done,
// then returns nil. A failed sweep is logged and tried again at the next
// tick. It returns at once with the error of an invalid Config.
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
			s.log.WarnContext(ctx, "cart expiry failed", "error", err)
		case n > 0:
			s.log.InfoContext(ctx, "carts expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
