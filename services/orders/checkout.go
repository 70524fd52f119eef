package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/pricing"
)

// Checkout places an order for the cart as the shopper c and runs its
// saga, waiting up to Config.WaitBudget for it:
//
//  1. The shopper must be allowed to use the cart exactly as the cart's
//     Store routes decide (else not_found), and the cart must be complete:
//     an email address, a shipping address and a shipping method
//     (checkout_incomplete naming each missing one), every line, code and
//     the method purchasable (the cart's cart_empty / cart_not_purchasable).
//  2. Pricing quotes the cart and the order is created pending with the
//     quote's totals frozen on it, in one transaction with its saga state
//     and its order_placed event.
//  3. The saga runs (see docs/adr/0016-checkout-saga.md). The answer is the confirmed order;
//     or the cancelled order together with the error the client is told,
//     whose code is the reason (out_of_stock, payment_declined, code_… —
//     see the Reason constants) and whose cause is a *CancelledError; or
//     the order still pending when the budget ran out (its saga goes on).
//
// One cart has at most one live (not cancelled) order. A checkout of a cart
// that has one is the same request — same Idempotency-Key (idemKey, may be
// empty) and same payment — and gets that order (waiting for its saga
// again), or any other request, which is a conflict. Errors before an order
// exists: validation_failed (payment.token, payment.provider), not_found,
// conflict, checkout_incomplete, cart_empty, cart_not_purchasable,
// shipping_method_unavailable, code_…, unavailable.
func (s *Service) Checkout(ctx context.Context, cartID string, c cart.Caller, in CheckoutInput, idemKey string) (Order, error) {
	o, err := s.checkout(ctx, cartID, c, in, idemKey)
	switch {
	case err == nil && o.Status == StatusPending:
		s.metrics.checkout(checkoutProcessing)
	case err == nil:
		s.metrics.checkout(checkoutConfirmed)
	case o.ID == "":
		s.metrics.checkout(checkoutRefused)
	case apperr.Is(err, ReasonOutOfStock):
		s.metrics.checkout(checkoutOutOfStock)
	case apperr.Is(err, ReasonPaymentDeclined):
		s.metrics.checkout(checkoutDeclined)
	default:
		s.metrics.checkout(checkoutCancelled)
	}
	return o, err
}

func (s *Service) checkout(ctx context.Context, cartID string, c cart.Caller, in CheckoutInput, idemKey string) (Order, error) {
	in.Payment.Provider, in.Payment.Token = strings.TrimSpace(in.Payment.Provider), strings.TrimSpace(in.Payment.Token)
	if err := validateCheckout(in); err != nil {
		return Order{}, fmt.Errorf("checkout: %w", err)
	}
	var co cart.CheckoutCart
	err := s.pol.cart.Do(resilience.Idempotent(ctx), func(ctx context.Context) (err error) {
		co, err = s.deps.Carts.CheckoutView(ctx, cartID, c)
		return err
	})
	if err != nil {
		return Order{}, fmt.Errorf("checkout: %w", dependencyError("cart", err))
	}
	fp := fingerprint(cartID, in, idemKey)
	if existing, found, err := liveOrderOfCart(ctx, s.db, cartID); err != nil {
		return Order{}, fmt.Errorf("checkout: %w", err)
	} else if found {
		return s.rejoin(ctx, existing, fp)
	}
	if co.Status == cart.StatusCheckedOut {
		return Order{}, apperr.New(apperr.Conflict, "cart %s was already checked out as order %s", cartID, co.OrderID)
	}
	if err := checkComplete(co); err != nil {
		return Order{}, fmt.Errorf("checkout: %w", err)
	}
	err = s.pol.cart.Do(resilience.Idempotent(ctx), func(ctx context.Context) error {
		return s.deps.Carts.Validate(ctx, cartID)
	})
	if err != nil {
		// A concurrent checkout of the cart may have placed (and even
		// confirmed, checking the cart out) its order meanwhile: that one
		// decides, not the cart's new state.
		if existing, found, lerr := liveOrderOfCart(ctx, s.db, cartID); lerr == nil && found {
			return s.rejoin(ctx, existing, fp)
		}
		return Order{}, fmt.Errorf("checkout: %w", dependencyError("cart", err))
	}
	customerID := co.CustomerID
	if customerID == "" && c.Principal.Kind == auth.KindCustomer {
		// An anonymous cart checked out by a logged-in shopper holding
		// its token: the order is theirs.
		customerID = c.Principal.Subject
	}
	var q pricing.Quote
	err = s.pol.pricing.Do(resilience.Idempotent(ctx), func(ctx context.Context) (err error) {
		q, err = s.deps.Pricing.Quote(ctx, quoteRequest(co, cart.PricingCustomerKey(customerID, co.Email)))
		return err
	})
	if err != nil {
		return Order{}, fmt.Errorf("checkout: price the cart: %w", dependencyError("pricing", err))
	}
	r, err := s.newOrder(co, customerID, c.CartToken, q, in, fp)
	if err != nil {
		return Order{}, fmt.Errorf("checkout: %w", err)
	}
	g := sagaRow{
		orderID: r.ID, status: sagaRunning, step: forwardSteps[0], nextAttemptAt: r.CreatedAt,
		deadline: r.CreatedAt.Add(s.cfg.SagaDeadline), paymentToken: in.Payment.Token, leaseUntil: epoch, updatedAt: r.CreatedAt,
	}
	// With this process's executor running, the saga is created leased to
	// it and handed over with the order: nothing to claim or read back.
	handOver := s.running.Load()
	if handOver {
		g.leaseOwner, g.leaseUntil = s.owner, r.CreatedAt.Add(s.cfg.LeaseTTL)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := insertOrder(ctx, tx, r); err != nil {
			return err
		}
		if err := insertSaga(ctx, tx, g); err != nil {
			return err
		}
		return s.emit(ctx, tx, EventOrderPlaced, r.ID, placedData(r.Order))
	})
	if store.IsUniqueViolation(err) {
		// Another checkout of the cart won the race to the one live order.
		existing, found, rerr := liveOrderOfCart(ctx, s.db, cartID)
		if rerr != nil {
			return Order{}, fmt.Errorf("checkout: %w", rerr)
		}
		if found {
			return s.rejoin(ctx, existing, fp)
		}
	}
	if err != nil {
		return Order{}, fmt.Errorf("checkout: create order: %w", err)
	}
	s.metrics.orderPlaced()
	s.log.InfoContext(ctx, "order placed", "order_id", r.ID, "cart_id", cartID, "total", r.Total.String())
	if handOver {
		s.handOver(ctx, &execution{s: s, g: g, r: r})
	} else {
		s.kick(r.ID)
	}
	return s.await(ctx, r.ID, s.cfg.WaitBudget)
}

// rejoin answers a checkout of a cart that already has a live order: the
// same request gets that order (its saga is kicked and awaited again),
// any other request a conflict.
func (s *Service) rejoin(ctx context.Context, existing record, fp string) (Order, error) {
	if existing.fingerprint != fp {
		return Order{}, &apperr.Error{Code: apperr.Conflict,
			Message: fmt.Sprintf("cart %s already has order %s, placed by another checkout request", existing.CartID, existing.ID),
			Err:     &ExistingOrderError{OrderID: existing.ID}}
	}
	s.kick(existing.ID)
	return s.await(ctx, existing.ID, s.cfg.WaitBudget)
}

// ExistingOrderError is the cause of the conflict a checkout of a cart
// with a live order from another request answers with: which order.
type ExistingOrderError struct {
	OrderID string
}

func (e *ExistingOrderError) Error() string { return "the cart has order " + e.OrderID }

// fingerprint identifies "the same checkout request": the cart, the
// Idempotency-Key (when sent) and the payment asked for.
func fingerprint(cartID string, in CheckoutInput, idemKey string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%q\n%q", cartID, idemKey, in.Payment.Provider, in.Payment.Token)
	return hex.EncodeToString(h.Sum(nil))
}

func validateCheckout(in CheckoutInput) error {
	var v apperr.Validation
	switch t := in.Payment.Token; {
	case t == "":
		v.Add("payment.token", "required", "payment.token is required (the token the payment provider gave the storefront)")
	case len(t) > maxTokenLen || !printableASCII(t):
		v.Addf("payment.token", "invalid", "payment.token must be 1 to %d printable ASCII characters", maxTokenLen)
	}
	if p := in.Payment.Provider; p != "" && (len(p) > maxProviderLen || !printableASCII(p) || strings.ToLower(p) != p) {
		v.Addf("payment.provider", "invalid", "payment.provider must be a provider name such as \"test\" or \"stripe\"")
	}
	return v.Err()
}

// checkComplete reports what checkout requires and the cart lacks: an
// email address (for the confirmation), a shipping address and a shipping
// method — every item is physical, as the catalogue has no digital goods.
func checkComplete(co cart.CheckoutCart) error {
	var fields []apperr.FieldError
	if co.Email == "" {
		fields = append(fields, apperr.FieldError{Field: "email", Code: "required", Message: "an email address is required to place an order"})
	}
	if co.ShippingAddress == nil {
		fields = append(fields, apperr.FieldError{Field: "shipping_address", Code: "required", Message: "a shipping address is required to place an order"})
	}
	if co.ShippingMethodID == "" {
		fields = append(fields, apperr.FieldError{Field: "shipping_method_id", Code: "required", Message: "a shipping method is required to place an order"})
	}
	if len(fields) == 0 {
		return nil
	}
	msg := fields[0].Message
	if len(fields) > 1 {
		msg = fmt.Sprintf("%s (and %d more)", msg, len(fields)-1)
	}
	return &apperr.Error{Code: CodeCheckoutIncomplete, Message: msg, Fields: fields}
}

// quoteRequest is pricing's request for the cart, as the cart prices it;
// customerKey counts per-customer voucher uses (cart.PricingCustomerKey).
func quoteRequest(co cart.CheckoutCart, customerKey string) pricing.QuoteRequest {
	req := pricing.QuoteRequest{
		Currency: co.Currency, CustomerID: customerKey, CustomerGroups: slices.Clone(co.CustomerGroups),
		Codes: slices.Clone(co.DiscountCodes), ShippingMethodID: co.ShippingMethodID,
	}
	for _, it := range co.Items {
		req.Lines = append(req.Lines, pricing.QuoteLine{ID: it.ID, VariantID: it.VariantID, SKU: it.SKU, ProductID: it.ProductID,
			CategoryIDs: slices.Clone(it.CategoryIDs), Quantity: it.Quantity})
	}
	if a := co.ShippingAddress; a != nil {
		req.ShippingAddress = &pricing.Address{Country: a.Country, Region: a.Region, PostalCode: a.PostalCode}
	}
	return req
}

// newOrder builds the pending order of the cart with the quote's totals
// frozen on it, or says why the quote cannot be an order (a line without
// a price, a code that does not apply, a shipping method that does not
// serve the cart).
func (s *Service) newOrder(co cart.CheckoutCart, customerID, cartToken string, q pricing.Quote, in CheckoutInput, fp string) (record, error) {
	if q.Currency != co.Currency {
		return record{}, apperr.New(apperr.Unavailable, "pricing quoted %s for a %s cart", q.Currency, co.Currency)
	}
	quoted := make(map[string]pricing.QuotedLine, len(q.Lines))
	for _, l := range q.Lines {
		quoted[l.ID] = l
	}
	var fields []apperr.FieldError
	items := make([]Item, len(co.Items))
	for i, it := range co.Items {
		ql, ok := quoted[it.ID]
		if !ok || ql.Problem != "" {
			fields = append(fields, apperr.FieldError{Field: fmt.Sprintf("items[%d]", i), Code: pricing.ProblemPriceMissing,
				Message: fmt.Sprintf("item %s (%s) has no price in %s", it.ID, it.SKU, co.Currency)})
			continue
		}
		items[i] = Item{ID: it.ID, VariantID: it.VariantID, ProductID: it.ProductID, SKU: it.SKU, Title: it.Title,
			VariantTitle: it.VariantTitle, Quantity: it.Quantity, UnitPrice: ql.UnitPrice, Subtotal: ql.Subtotal,
			Discount: ql.Discount, Tax: ql.Tax, Total: ql.Total}
	}
	if len(fields) > 0 {
		return record{}, &apperr.Error{Code: CodeNotPurchasable, Message: fields[0].Message, Fields: fields}
	}
	for _, p := range q.CodeProblems {
		i := slices.IndexFunc(co.DiscountCodes, func(c string) bool { return strings.EqualFold(c, p.Code) })
		return record{}, fieldError(apperr.Code(p.Problem), fmt.Sprintf("discount_codes[%d]", max(i, 0)), p.Problem,
			"discount code %s cannot be used (%s); remove it to check out", strings.ToUpper(p.Code), p.Problem)
	}
	if q.Shipping == nil {
		return record{}, fieldError(CodeShippingUnavailable, "shipping_method_id", "unavailable",
			"shipping method %q does not serve this cart; choose another", co.ShippingMethodID)
	}
	now := s.now()
	r := record{
		Order: Order{
			ID: id.New(orderPrefix), Status: StatusPending, CartID: co.ID, Email: co.Email, Currency: co.Currency,
			Items: items, DiscountCodes: slices.Clone(co.DiscountCodes), Promotions: []Promotion{},
			Subtotal: q.Subtotal, DiscountTotal: q.DiscountTotal, ShippingTotal: q.ShippingTotal, TaxTotal: q.TaxTotal, Total: q.Total,
			PricesIncludeTax: q.PricesIncludeTax, ShippingAddress: addressOf(co.ShippingAddress), BillingAddress: addressOf(co.BillingAddress),
			ShippingMethod: &ShippingMethod{ID: q.Shipping.ID, Name: q.Shipping.Name, Price: q.Shipping.Price},
			Payment:        Payment{Provider: in.Payment.Provider, CapturePolicy: s.cfg.CapturePolicy},
			Version:        1, CreatedAt: now, UpdatedAt: now,
		},
		tokenDigest: tokenDigest(cartToken),
		fingerprint: fp,
		provider:    in.Payment.Provider,
	}
	if customerID != "" {
		r.CustomerID = &customerID
	}
	if r.DiscountCodes == nil {
		r.DiscountCodes = []string{}
	}
	for _, p := range q.Promotions {
		r.Promotions = append(r.Promotions, Promotion{PromotionID: p.PromotionID, Name: p.Name, Code: p.Code, Amount: p.Amount})
	}
	zero := money.Zero(r.Currency)
	r.Payment.Authorized, r.Payment.Captured, r.Payment.Refunded, r.RefundedTotal = zero, zero, zero, zero
	return r, nil
}

// addressOf is the order's own copy of a cart's address.
func addressOf(a *cart.Address) *Address {
	if a == nil {
		return nil
	}
	c := *a
	return &c
}

// dependencyError passes a participant's coded refusals on as they are and
// reports anything else (a failure without a code, a remote internal
// error) as unavailable, naming the dependency.
func dependencyError(dep string, err error) error {
	switch apperr.CodeOf(err) {
	case apperr.Internal, apperr.Unavailable:
		return apperr.Wrap(err, apperr.Unavailable, dep+" is unavailable; try again")
	}
	return err
}
