package cart

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// CheckoutCart is what the orders service needs of a cart to place an
// order: what was chosen and where it goes, never prices (orders asks
// pricing itself and freezes the totals on the order). CustomerID and
// OrderID are "" when unset; ShippingMethodID "" when none was chosen.
type CheckoutCart struct {
	ID               string         `json:"id"`
	Status           Status         `json:"status"`
	Currency         string         `json:"currency"`
	CustomerID       string         `json:"customer_id,omitempty"`
	Email            string         `json:"email"`
	Items            []CheckoutItem `json:"items"`
	DiscountCodes    []string       `json:"discount_codes"`
	ShippingAddress  *Address       `json:"shipping_address"`
	BillingAddress   *Address       `json:"billing_address"`
	ShippingMethodID string         `json:"shipping_method_id"`
	OrderID          string         `json:"order_id,omitempty"`
	Version          int64          `json:"version"`
	// CustomerGroups are the groups of the cart's customer (for group
	// prices and promotions), set by CheckoutView only; empty for an
	// anonymous cart.
	CustomerGroups []string `json:"customer_groups,omitempty"`
}

// CheckoutViewInput is the shopper the orders service checks out for, as
// the Store API saw them: their X-Cart-Token, and their customer id and
// groups when they sent a customer access token. Every field is optional.
// Over HTTP the token travels as X-Cart-Token (never in the URL) and the
// rest as ?customer_id= and repeated ?customer_group=.
type CheckoutViewInput struct {
	CartToken      string
	CustomerID     string
	CustomerGroups []string
}

// caller turns the input back into the Caller it describes.
func (in CheckoutViewInput) caller() Caller {
	c := Caller{CartToken: in.CartToken}
	if in.CustomerID != "" {
		c.Principal = customerPrincipal(in.CustomerID)
		c.Principal.Groups = slices.Clone(in.CustomerGroups)
	}
	return c
}

// CheckoutViewInputOf describes a caller for the checkout-view route: its
// cart token, and its customer id and groups when it is a customer.
func CheckoutViewInputOf(c Caller) CheckoutViewInput {
	in := CheckoutViewInput{CartToken: c.CartToken}
	if id := c.customerID(); id != "" {
		in.CustomerID, in.CustomerGroups = id, slices.Clone(c.Principal.Groups)
	}
	return in
}

// CheckoutItem is a line of a CheckoutCart, described as the catalogue did
// when it was last added to.
type CheckoutItem struct {
	ID           string   `json:"id"`
	VariantID    string   `json:"variant_id"`
	ProductID    string   `json:"product_id"`
	SKU          string   `json:"sku"`
	Title        string   `json:"title"`
	VariantTitle string   `json:"variant_title"`
	CategoryIDs  []string `json:"category_ids"`
	Quantity     int64    `json:"quantity"`
}

// MarkCheckedOutInput is the body of the internal mark-checked-out route.
type MarkCheckedOutInput struct {
	OrderID string `json:"order_id"`
}

var _ Client = (*Service)(nil)

func checkoutCartOf(r record) CheckoutCart {
	out := CheckoutCart{
		ID: r.ID, Status: r.Status, Currency: r.Currency, CustomerID: r.CustomerID, Email: r.Email,
		Items: make([]CheckoutItem, len(r.Items)), DiscountCodes: slices.Clone(r.Codes),
		ShippingAddress: r.ShippingAddress, BillingAddress: r.BillingAddress,
		ShippingMethodID: r.ShippingMethodID, OrderID: r.OrderID, Version: r.Version,
	}
	for i, l := range r.Items {
		cats := slices.Clone(l.CategoryIDs)
		if cats == nil {
			cats = []string{}
		}
		out.Items[i] = CheckoutItem{ID: l.ID, VariantID: l.VariantID, ProductID: l.ProductID, SKU: l.SKU,
			Title: l.Title, VariantTitle: l.VariantTitle, CategoryIDs: cats, Quantity: l.Quantity}
	}
	if out.DiscountCodes == nil {
		out.DiscountCodes = []string{}
	}
	return out
}

// GetForCheckout implements Client: a live cart, or one checked out (so a
// resumed checkout sees its own order id). Expired and merged carts are
// not_found.
func (s *Service) GetForCheckout(ctx context.Context, cartID string) (CheckoutCart, error) {
	r, err := s.anyCart(ctx, cartID)
	if err != nil {
		return CheckoutCart{}, err
	}
	if r.Status != StatusCheckedOut && !r.live(s.now()) {
		return CheckoutCart{}, notFound(cartID)
	}
	return checkoutCartOf(r), nil
}

// CheckoutView implements Client: the cart as GetForCheckout shows it, but
// only to a caller the Store API would open it for — its customer's token
// for a customer's cart, its cart token for an anonymous one — and only
// while it is live or checked out (a retried checkout must find the order
// it became). Everything else is the same not_found the Store API answers.
// CustomerGroups are those of the cart's customer, as Get prices them.
func (s *Service) CheckoutView(ctx context.Context, cartID string, c Caller) (CheckoutCart, error) {
	r, err := s.anyCart(ctx, cartID)
	if err != nil {
		return CheckoutCart{}, err
	}
	if !mayOpen(r, c) || (r.Status != StatusCheckedOut && !r.live(s.now())) {
		return CheckoutCart{}, notFound(cartID)
	}
	out := checkoutCartOf(r)
	if groups := s.groups(ctx, r, c); len(groups) > 0 {
		out.CustomerGroups = groups
	}
	return out, nil
}

// MarkCheckedOut implements Client. An active cart becomes checked_out
// with the order id and souk.cart.cart_checked_out.v1 is published in the
// same transaction; the cart leaves the Store API. Marking it again for the
// same order is a no-op; for another order it is a conflict. An active cart
// whose idle time ran out while the order was being placed can still be
// marked until the expiry sweep has expired it. Errors:
// validation_failed naming order_id, not_found (unknown, expired or merged
// cart), conflict.
func (s *Service) MarkCheckedOut(ctx context.Context, cartID, orderID string) error {
	if !id.Valid(orderPrefix, orderID) {
		return fieldError(apperr.ValidationFailed, "order_id", "invalid", "order_id must be an order id (ord_…)")
	}
	if !id.Valid(cartPrefix, cartID) {
		return notFound(cartID)
	}
	for attempt := 1; ; attempt++ {
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			if err := lockCart(ctx, tx, cartID); err != nil {
				return err
			}
			r, err := getCart(ctx, tx, cartID)
			if errors.Is(err, errNoCart) {
				return notFound(cartID)
			}
			if err != nil {
				return err
			}
			switch r.Status {
			case StatusCheckedOut:
				if r.OrderID == orderID {
					return nil
				}
				return apperr.New(apperr.Conflict, "cart %q was checked out as order %q", cartID, r.OrderID)
			case StatusExpired:
				return notFound(cartID)
			}
			next := r.clone()
			next.Status, next.OrderID = StatusCheckedOut, orderID
			next.Version, next.UpdatedAt = r.Version+1, s.now()
			ok, err := updateCart(ctx, tx, next, r.Version)
			if err != nil {
				return err
			}
			if !ok {
				return errConcurrentChange
			}
			return s.announceCheckedOut(ctx, tx, next)
		})
		if errors.Is(err, errConcurrentChange) && attempt < maxWriteAttempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("mark cart %s checked out: %w", cartID, err)
		}
		return nil
	}
}

// Validate reports whether the live cart can be checked out as it is: nil,
// or cart_empty (naming items), or cart_not_purchasable (422) with a field
// error for each line that cannot be bought ("items[2]", code unpublished
// or price_missing), each discount code that does not apply
// ("discount_codes[0]", code code_expired …) and a shipping method that no
// longer serves the cart ("shipping_method_id"). It prices the cart, so it
// may also fail with unavailable; and not_found for a cart that is not
// live. Whether email and addresses are required is the order's business.
func (s *Service) Validate(ctx context.Context, cartID string) error {
	r, err := s.anyCart(ctx, cartID)
	if err != nil {
		return err
	}
	if !r.live(s.now()) {
		return notFound(cartID)
	}
	if len(r.Items) == 0 {
		return fieldError(CodeCartEmpty, "items", "empty", "the cart has no items")
	}
	view, err := s.price(ctx, r, Caller{})
	if err != nil {
		return fmt.Errorf("validate cart: %w", err)
	}
	var fields []apperr.FieldError
	for i, it := range view.Items {
		if it.Problem != "" {
			fields = append(fields, apperr.FieldError{Field: fmt.Sprintf("items[%d]", i), Code: it.Problem,
				Message: fmt.Sprintf("item %s (%s): %s", it.ID, it.SKU, problemMessages[it.Problem])})
		}
	}
	for i, code := range view.DiscountCodes {
		for _, p := range view.CodeProblems {
			if strings.EqualFold(p.Code, code) {
				fields = append(fields, apperr.FieldError{Field: fmt.Sprintf("discount_codes[%d]", i), Code: p.Problem,
					Message: fmt.Sprintf("discount code %s does not apply (%s); remove it to check out", code, p.Problem)})
				break
			}
		}
	}
	for _, p := range view.Problems {
		if p.Field != "" {
			fields = append(fields, apperr.FieldError{Field: p.Field, Code: p.Code, Message: p.Message})
		}
	}
	if len(fields) == 0 {
		return nil
	}
	msg := fields[0].Message
	if len(fields) > 1 {
		msg = fmt.Sprintf("%s (and %d more)", msg, len(fields)-1)
	}
	return &apperr.Error{Code: CodeNotPurchasable, Message: msg, Fields: fields}
}
