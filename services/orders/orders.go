// Package orders is Souk's orders: the checkout saga that turns a cart into
// an order, the order's lifecycle after it (fulfilments, refunds,
// cancellation), the Store API's order routes and the Admin API's order
// operations. It owns the orders database (its own SQLite file or
// PostgreSQL schema) and publishes souk.orders.* events through the
// transactional outbox.
//
// The promise it exists for: no lost order, no oversell, no double charge.
// Checkout creates the order (pending, totals frozen) together with its
// saga state and its order_placed event in one transaction; the saga then
// redeems vouchers, reserves stock, authorizes the payment, commits the
// stock, captures and confirms — one step at a time, every step persisted,
// every participant call carrying an idempotency key derived from the order
// and the step — and a failing step compensates the steps before it in
// reverse. The executor (Run) claims sagas with leases, so any number of
// processes may run it, and resumes every unfinished saga after a crash.
// See docs/adr/0016-checkout-saga.md.
//
// Other services are reached only through the small interfaces in Deps,
// which their clients satisfy in process and over HTTP.
package orders

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/services/cart"
)

// The permissions of the Admin API routes. identity's role matrix grants
// them (orders:read to every staff role, orders:fulfil to fulfilment, …).
const (
	PermissionRead   auth.Permission = "orders:read"
	PermissionWrite  auth.Permission = "orders:write"
	PermissionFulfil auth.Permission = "orders:fulfil"
	PermissionRefund auth.Permission = "orders:refund"
)

// Id prefixes of the orders' resources.
const (
	orderPrefix      = "ord"
	fulfilmentPrefix = "ful"
	refundPrefix     = "rfd"
	auditPrefix      = "aud"
	stepPrefix       = "sst"
)

// Status is an order's lifecycle state: pending while its checkout saga
// runs, then confirmed or cancelled; a confirmed order becomes
// partially_fulfilled and fulfilled as it ships, or cancelled by staff
// before anything shipped.
type Status string

// The order statuses.
const (
	StatusPending            Status = "pending"
	StatusConfirmed          Status = "confirmed"
	StatusPartiallyFulfilled Status = "partially_fulfilled"
	StatusFulfilled          Status = "fulfilled"
	StatusCancelled          Status = "cancelled"
)

// The reasons an order is cancelled for (Cancellation.Reason), which are
// also the codes of the problem a checkout answers with. Besides these, the
// voucher codes of pricing (code_invalid, code_expired, code_exhausted,
// code_not_applicable) are reasons too: a voucher that could not be
// redeemed.
const (
	// ReasonOutOfStock: the stock could not be reserved (409); the
	// problem names each short line.
	ReasonOutOfStock = "out_of_stock"
	// ReasonPaymentDeclined: the provider declined the authorization
	// (402); the problem's field error carries the decline code.
	ReasonPaymentDeclined = "payment_declined"
	// ReasonPaymentUnavailable: payments could not authorize within the
	// step's time (503): nothing was charged; try again.
	ReasonPaymentUnavailable = "payment_unavailable"
	// ReasonServiceUnavailable: another participant (pricing, inventory)
	// could not be reached within the step's time (503).
	ReasonServiceUnavailable = "service_unavailable"
	// ReasonDeadlineExceeded: the saga was still unfinished at its
	// deadline and was compensated (503).
	ReasonDeadlineExceeded = "deadline_exceeded"
	// ReasonCaptureFailed: the payment was authorized but its capture was
	// refused (402).
	ReasonCaptureFailed = "payment_capture_failed"
	// ReasonCheckoutFailed: a participant refused a step for another
	// reason (a reservation expired, …) (409).
	ReasonCheckoutFailed = "checkout_failed"
	// ReasonByStaff: cancelled through the Admin API (409 for a checkout
	// still waiting on it).
	ReasonByStaff = "by_staff"
)

// Error codes of the orders service beyond apperr's and the reasons.
const (
	// CodeCheckoutIncomplete (422): the cart lacks what checkout requires
	// — an email address, a shipping address and a shipping method
	// (every item is physical: the catalogue has no digital goods yet);
	// the field errors name each missing one.
	CodeCheckoutIncomplete apperr.Code = "checkout_incomplete"
	// CodeNotPurchasable (422): as the cart's cart_not_purchasable — a
	// line pricing cannot price, named items[i].
	CodeNotPurchasable apperr.Code = "cart_not_purchasable"
	// CodeShippingUnavailable (422): the chosen shipping method does not
	// serve the cart (naming shipping_method_id).
	CodeShippingUnavailable apperr.Code = "shipping_method_unavailable"
	// CodeRefundExceedsCaptured (422): a refund over what was captured
	// and not yet refunded (naming amount).
	CodeRefundExceedsCaptured apperr.Code = "refund_exceeds_captured"
)

// Capture policies: when the authorized payment is captured.
const (
	// CaptureOnConfirmation captures as the order is confirmed (default).
	CaptureOnConfirmation = "on_confirmation"
	// CaptureOnFulfilment captures with the order's first fulfilment.
	CaptureOnFulfilment = "on_fulfilment"
)

// Limits of requests; a request over one is validation_failed naming the
// field.
const (
	maxTokenLen    = 255
	maxProviderLen = 32
	maxReasonLen   = 500
	maxTrackingLen = 100
	maxCarrierLen  = 100
)

// Address is a postal address of an order: the cart's, copied when the
// order is placed (same fields, same validation — the cart checked it).
type Address = cart.Address

// Item is a line of an order: what was bought, described and priced as it
// was when the order was placed (frozen), and how much of it has shipped.
type Item struct {
	ID                string      `json:"id"`
	VariantID         string      `json:"variant_id"`
	ProductID         string      `json:"product_id"`
	SKU               string      `json:"sku"`
	Title             string      `json:"title"`
	VariantTitle      string      `json:"variant_title"`
	Quantity          int64       `json:"quantity"`
	UnitPrice         money.Money `json:"unit_price"`
	Subtotal          money.Money `json:"subtotal"`
	Discount          money.Money `json:"discount"`
	Tax               money.Money `json:"tax"`
	Total             money.Money `json:"total"`
	FulfilledQuantity int64       `json:"fulfilled_quantity"`
}

// Promotion is a promotion applied to the order and what it took off.
type Promotion struct {
	PromotionID string      `json:"promotion_id"`
	Name        string      `json:"name"`
	Code        string      `json:"code,omitempty"`
	Amount      money.Money `json:"amount"`
}

// ShippingMethod is the order's shipping method as priced at checkout.
type ShippingMethod struct {
	ID    string      `json:"id"`
	Name  string      `json:"name"`
	Price money.Money `json:"price"`
}

// Payment is what the order knows of its payment: the provider, the
// payments service's id once authorized, the capture policy and the amounts
// authorized, captured and refunded.
type Payment struct {
	Provider      string      `json:"provider"`
	PaymentID     *string     `json:"payment_id"`
	CapturePolicy string      `json:"capture_policy"`
	Authorized    money.Money `json:"authorized"`
	Captured      money.Money `json:"captured"`
	Refunded      money.Money `json:"refunded"`
}

// Cancellation says why and when an order was cancelled: Reason is one of
// the Reason… codes (or a pricing code_…), Message explains it, Errors name
// what caused it (the short SKUs, the decline code, the exhausted voucher).
type Cancellation struct {
	Reason      string              `json:"reason"`
	Message     string              `json:"message"`
	Errors      []apperr.FieldError `json:"errors"`
	CancelledAt time.Time           `json:"cancelled_at"`
}

// Fulfilment is one shipment of (part of) an order.
type Fulfilment struct {
	ID             string           `json:"id"`
	Items          []FulfilmentItem `json:"items"`
	TrackingNumber *string          `json:"tracking_number"`
	Carrier        *string          `json:"carrier"`
	CreatedBy      string           `json:"created_by"`
	CreatedAt      time.Time        `json:"created_at"`
}

// FulfilmentItem is how much of an order line a fulfilment ships.
type FulfilmentItem struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
}

// Refund states.
const (
	RefundPending   = "pending"
	RefundSucceeded = "succeeded"
	RefundFailed    = "failed"
)

// Refund is money given back on an order: pending while payments is being
// asked, then succeeded or failed (with the code payments gave).
type Refund struct {
	ID          string      `json:"id"`
	Amount      money.Money `json:"amount"`
	Reason      string      `json:"reason"`
	Status      string      `json:"status"`
	FailureCode *string     `json:"failure_code"`
	CreatedBy   string      `json:"created_by"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// Order is an order as the Store API shows it: the totals frozen at
// checkout (total = subtotal − discount_total + shipping_total, + tax_total
// when prices exclude tax), its payment, shipments and refunds.
type Order struct {
	ID               string          `json:"id"`
	Status           Status          `json:"status"`
	CartID           string          `json:"cart_id"`
	CustomerID       *string         `json:"customer_id"`
	Email            string          `json:"email"`
	Currency         string          `json:"currency"`
	Items            []Item          `json:"items"`
	DiscountCodes    []string        `json:"discount_codes"`
	Promotions       []Promotion     `json:"promotions"`
	Subtotal         money.Money     `json:"subtotal"`
	DiscountTotal    money.Money     `json:"discount_total"`
	ShippingTotal    money.Money     `json:"shipping_total"`
	TaxTotal         money.Money     `json:"tax_total"`
	Total            money.Money     `json:"total"`
	PricesIncludeTax bool            `json:"prices_include_tax"`
	ShippingAddress  *Address        `json:"shipping_address"`
	BillingAddress   *Address        `json:"billing_address"`
	ShippingMethod   *ShippingMethod `json:"shipping_method"`
	Payment          Payment         `json:"payment"`
	RefundedTotal    money.Money     `json:"refunded_total"`
	Cancellation     *Cancellation   `json:"cancellation"`
	Fulfilments      []Fulfilment    `json:"fulfilments"`
	Refunds          []Refund        `json:"refunds"`
	Version          int64           `json:"version"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	ConfirmedAt      *time.Time      `json:"confirmed_at"`
}

// AdminOrder is an order as the Admin API shows it: the order, its saga
// with the history of every step, and the audit log of staff operations.
type AdminOrder struct {
	Order
	Saga  SagaView     `json:"saga"`
	Audit []AuditEntry `json:"audit"`
}

// SagaView is an order's checkout saga: where it is, and every attempt of
// every step so far (oldest first).
type SagaView struct {
	Status        string     `json:"status"`
	Step          string     `json:"step"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	Deadline      time.Time  `json:"deadline"`
	Steps         []SagaStep `json:"steps"`
}

// SagaStep is one attempt of one saga step: Action do (forward) or
// compensate; Outcome ok, skipped (nothing to do), retry (a transient
// failure; tried again later) or failed.
type SagaStep struct {
	Step         string     `json:"step"`
	Action       string     `json:"action"`
	Outcome      string     `json:"outcome"`
	ErrorCode    *string    `json:"error_code"`
	ErrorMessage *string    `json:"error_message"`
	Attempt      int        `json:"attempt"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at"`
}

// AuditEntry is one staff operation on an order: who (the principal's
// subject and kind), what (cancel, fulfil, refund, with its details) and
// when.
type AuditEntry struct {
	ID        string          `json:"id"`
	Actor     string          `json:"actor"`
	ActorKind string          `json:"actor_kind"`
	Action    string          `json:"action"`
	Detail    json.RawMessage `json:"detail"`
	CreatedAt time.Time       `json:"created_at"`
}

// CustomerOrder is one line of a customer's order list: the read model fed
// by the orders' own events (see Subscribe).
type CustomerOrder struct {
	ID            string      `json:"id"`
	Status        Status      `json:"status"`
	Total         money.Money `json:"total"`
	RefundedTotal money.Money `json:"refunded_total"`
	ItemCount     int64       `json:"item_count"`
	PlacedAt      time.Time   `json:"placed_at"`
	UpdatedAt     time.Time   `json:"updated_at"`
}

// CheckoutInput is the body of POST /store/carts/{id}/checkout.
type CheckoutInput struct {
	Payment PaymentInput `json:"payment"`
}

// PaymentInput says how to pay: Provider ("test", "stripe"; empty for the
// configured primary) and the Token the storefront obtained from it.
type PaymentInput struct {
	Provider string `json:"provider,omitempty"`
	Token    string `json:"token"`
}

// FulfilmentInput is the body of POST /admin/orders/{id}/fulfilments:
// the items shipped (default: everything not shipped yet) and where to
// follow them.
type FulfilmentInput struct {
	Items          []FulfilmentItem `json:"items,omitempty"`
	TrackingNumber string           `json:"tracking_number,omitempty"`
	Carrier        string           `json:"carrier,omitempty"`
}

// RefundInput is the body of POST /admin/orders/{id}/refunds: Amount
// (default: everything captured and not refunded yet) and why.
type RefundInput struct {
	Amount *money.Money `json:"amount,omitempty"`
	Reason string       `json:"reason"`
}

// CancelInput is the body of POST /admin/orders/{id}/cancel.
type CancelInput struct {
	Reason string `json:"reason"`
}

// ListFilter selects orders for the Admin API's list.
type ListFilter struct {
	Status     Status
	CustomerID string
	Limit      int
	Cursor     string
}

// validStatus reports whether s is an order status.
func validStatus(s Status) bool {
	switch s {
	case StatusPending, StatusConfirmed, StatusPartiallyFulfilled, StatusFulfilled, StatusCancelled:
		return true
	}
	return false
}

func notFound(kind, ref string) error {
	return apperr.New(apperr.NotFound, "%s %q not found", kind, ref)
}

// fieldError returns an error of the code naming one field.
func fieldError(code apperr.Code, field, fieldCode, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &apperr.Error{Code: code, Message: msg, Fields: []apperr.FieldError{{Field: field, Code: fieldCode, Message: msg}}}
}

// printableASCII reports whether s is printable ASCII without spaces
// (tokens, providers).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
