package notify

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

// OrderConfirmed is the data of souk.orders.order_confirmed.v1, as far as
// notify needs it. Unknown fields are ignored, so orders may add some.
type OrderConfirmed struct {
	OrderID         string      `json:"order_id"`
	CustomerID      *string     `json:"customer_id"`
	Email           string      `json:"email"`
	Currency        string      `json:"currency"`
	Items           []OrderItem `json:"items"`
	Subtotal        money.Money `json:"subtotal"`
	DiscountTotal   money.Money `json:"discount_total"`
	ShippingTotal   money.Money `json:"shipping_total"`
	TaxTotal        money.Money `json:"tax_total"`
	Total           money.Money `json:"total"`
	ShippingAddress *Address    `json:"shipping_address"`
	ConfirmedAt     time.Time   `json:"confirmed_at"`
}

// OrderItem is a line of a confirmed order.
type OrderItem struct {
	VariantID    string      `json:"variant_id"`
	SKU          string      `json:"sku"`
	Title        string      `json:"title"`
	VariantTitle string      `json:"variant_title"`
	Quantity     int64       `json:"quantity"`
	UnitPrice    money.Money `json:"unit_price"`
	Total        money.Money `json:"total"`
}

// Address is a postal address of an order.
type Address struct {
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// kindOrderConfirmed is the kind of the order confirmation email.
const kindOrderConfirmed = "order_confirmed"

//go:embed templates
var templatesFS embed.FS

// templates are the parsed email templates.
type templates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

func parseTemplates() (*templates, error) {
	subject, err := texttemplate.ParseFS(templatesFS, "templates/order_confirmed.subject.txt")
	if err != nil {
		return nil, fmt.Errorf("notify: parse templates: %w", err)
	}
	text, err := texttemplate.ParseFS(templatesFS, "templates/order_confirmed.txt")
	if err != nil {
		return nil, fmt.Errorf("notify: parse templates: %w", err)
	}
	html, err := htmltemplate.ParseFS(templatesFS, "templates/order_confirmed.html")
	if err != nil {
		return nil, fmt.Errorf("notify: parse templates: %w", err)
	}
	subject.Option("missingkey=error")
	text.Option("missingkey=error")
	html.Option("missingkey=error")
	return &templates{subject: subject, text: text, html: html}, nil
}

// orderView is what the order confirmation templates see: everything
// already formatted.
type orderView struct {
	StoreName   string
	Subject     string
	OrderNumber string
	Greeting    string
	ConfirmedAt string
	Items       []itemView
	Subtotal    string
	Discount    string // "" when there is none
	Shipping    string
	Tax         string
	TaxIncluded bool // the total already contains the tax
	Total       string
	Address     []string // nil without a shipping address
}

type itemView struct {
	Title, VariantTitle, SKU string
	Quantity                 int64
	UnitPrice, Total         string
}

// rendered is an email ready to be stored.
type rendered struct {
	subject, text, html string
}

// renderOrderConfirmed renders the order confirmation of oc.
func (s *Service) renderOrderConfirmed(oc OrderConfirmed) (rendered, error) {
	v := orderView{
		StoreName:   s.cfg.StoreName,
		OrderNumber: oc.OrderID,
		Greeting:    "there",
		ConfirmedAt: oc.ConfirmedAt.UTC().Format("2 January 2006, 15:04 MST"),
		Subtotal:    oc.Subtotal.String(),
		Shipping:    oc.ShippingTotal.String(),
		Tax:         oc.TaxTotal.String(),
		Total:       oc.Total.String(),
	}
	if oc.ConfirmedAt.IsZero() {
		v.ConfirmedAt = "just now"
	}
	if !oc.DiscountTotal.IsZero() {
		v.Discount = oc.DiscountTotal.String()
	}
	// Prices that include tax make total = subtotal − discount + shipping;
	// otherwise the tax comes on top. The event does not say which, the
	// arithmetic does.
	if sum, err := oc.Subtotal.Sub(oc.DiscountTotal); err == nil {
		if sum, err = sum.Add(oc.ShippingTotal); err == nil {
			v.TaxIncluded = sum == oc.Total
		}
	}
	for _, it := range oc.Items {
		v.Items = append(v.Items, itemView{
			Title: it.Title, VariantTitle: it.VariantTitle, SKU: it.SKU, Quantity: it.Quantity,
			UnitPrice: it.UnitPrice.String(), Total: it.Total.String(),
		})
	}
	if a := oc.ShippingAddress; a != nil {
		if a.FirstName != "" {
			v.Greeting = a.FirstName
		}
		v.Address = addressLines(*a)
	}
	var sb bytes.Buffer
	if err := s.tmpl.subject.Execute(&sb, v); err != nil {
		return rendered{}, fmt.Errorf("render subject: %w", err)
	}
	v.Subject = oneLine(sb.String())
	var text, html bytes.Buffer
	if err := s.tmpl.text.Execute(&text, v); err != nil {
		return rendered{}, fmt.Errorf("render text: %w", err)
	}
	if err := s.tmpl.html.Execute(&html, v); err != nil {
		return rendered{}, fmt.Errorf("render html: %w", err)
	}
	return rendered{subject: v.Subject, text: text.String(), html: html.String()}, nil
}

// addressLines formats an address the way most of Europe writes it.
func addressLines(a Address) []string {
	var lines []string
	add := func(parts ...string) {
		var kept []string
		for _, p := range parts {
			if p = oneLine(p); p != "" {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			lines = append(lines, strings.Join(kept, " "))
		}
	}
	add(a.FirstName, a.LastName)
	add(a.Line1)
	add(a.Line2)
	add(a.PostalCode, a.City)
	add(countryName(a.Country))
	return lines
}

// countryName turns an ISO 3166 code into its English name ("NL" →
// "Netherlands"), leaving anything else as it is.
func countryName(code string) string {
	r, err := language.ParseRegion(code)
	if err != nil || len(code) != 2 {
		return code
	}
	if name := display.English.Regions().Name(r); name != "" {
		return name
	}
	return code
}

// oneLine collapses whitespace, line breaks included, to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// handleOrderConfirmed is the bus.Handler of souk.orders.order_confirmed.v1:
// it renders the confirmation and stores it in the email outbox, in tx.
// Applying an event twice stores one email (event_id is unique). An event
// that cannot be decoded is permanent (dead-lettered); one without a usable
// address is stored as failed, for the record, and never sent.
func (s *Service) handleOrderConfirmed(ctx context.Context, tx *store.Tx, e bus.Event) error {
	var oc OrderConfirmed
	if err := e.Decode(&oc); err != nil {
		return bus.Permanent(err)
	}
	if strings.TrimSpace(oc.OrderID) == "" {
		return bus.Permanent(fmt.Errorf("%s %s: order_id is missing", e.Type, e.ID))
	}
	r, err := s.renderOrderConfirmed(oc)
	if err != nil {
		return bus.Permanent(fmt.Errorf("order %s: %w", oc.OrderID, err))
	}
	now := s.now()
	em := Email{
		ID: id.New(emailPrefix), EventID: e.ID, Kind: kindOrderConfirmed, Reference: oc.OrderID,
		Subject: r.subject, Text: r.text, HTML: r.html, State: EmailPending, NextAttemptAt: &now,
		CreatedAt: now, UpdatedAt: now,
	}
	addr, err := recipient(oc.Email)
	if err != nil {
		em.To, em.State, em.NextAttemptAt, em.LastError = strings.ToValidUTF8(oneLine(oc.Email), ""), EmailFailed, nil, err.Error()
	} else {
		em.To = addr
	}
	inserted, err := insertEmail(ctx, tx, em)
	if err != nil {
		return fmt.Errorf("store email for order %s: %w", oc.OrderID, err)
	}
	switch {
	case !inserted:
		s.log.InfoContext(ctx, "order confirmation already stored for this event; nothing to do", "event_id", e.ID, "order_id", oc.OrderID)
	case em.State == EmailFailed:
		tx.AfterCommit(func() {
			s.metrics.email(emailInvalid, 0)
			s.log.ErrorContext(ctx, "order confirmation not sent: the order has no usable email address; contact the customer another way",
				"order_id", oc.OrderID, "email_id", em.ID, "error", em.LastError)
		})
	default:
		tx.AfterCommit(s.wakeSender)
	}
	return nil
}

// recipient checks an order's email address: one bare address.
func recipient(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("the order has no email address")
	}
	a, err := mail.ParseAddress(raw)
	if err != nil || a.Address != raw || strings.ContainsAny(raw, "\r\n<>") {
		return "", fmt.Errorf("%q is not a usable email address", maskAddress(raw))
	}
	return a.Address, nil
}

// maskAddress hides most of the local part of an address for logs
// ("ada@example.com" → "a***@example.com").
func maskAddress(a string) string {
	local, domain, ok := strings.Cut(a, "@")
	if !ok || local == "" {
		return "***"
	}
	_, size := utf8.DecodeRuneInString(local)
	return local[:size] + "***@" + domain
}

// EmailsForEvent returns the emails made for an event (none or one), for
// support tools and tests.
func (s *Service) EmailsForEvent(ctx context.Context, eventID string) ([]Email, error) {
	return emailsOfEvent(ctx, s.db, eventID)
}

// GetEmail returns an email of the outbox. Errors: not_found.
func (s *Service) GetEmail(ctx context.Context, emailID string) (Email, error) {
	if !id.Valid(emailPrefix, emailID) {
		return Email{}, notFound("email", emailID)
	}
	return getEmail(ctx, s.db, emailID)
}

// ResendEmail makes an email pending again, due now, with its attempts
// reset: for support tooling once the cause of a failure (the relay, its
// credentials) is fixed, or to send a confirmation again. The email keeps
// its Message-ID. Errors: not_found; conflict when its address is not
// usable.
func (s *Service) ResendEmail(ctx context.Context, emailID string) (Email, error) {
	e, err := s.GetEmail(ctx, emailID)
	if err != nil {
		return Email{}, fmt.Errorf("resend email: %w", err)
	}
	if _, err := recipient(e.To); err != nil {
		return Email{}, fmt.Errorf("resend email: %w", apperr.New(apperr.Conflict, "email %s cannot be sent: %v", emailID, err))
	}
	now := s.now()
	if _, err := s.db.Exec(ctx, `UPDATE notify_emails SET state = ?, attempts = 0, last_error = '', next_attempt_at = ?, sent_at = NULL,
		lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?`, EmailPending, now, now, emailID); err != nil {
		return Email{}, fmt.Errorf("resend email: %w", err)
	}
	s.wakeSender()
	s.log.InfoContext(ctx, "email queued again", "email_id", emailID, "kind", e.Kind, "reference", e.Reference, "actor", actor(ctx))
	return s.GetEmail(ctx, emailID)
}
