// Package inventory is Souk's stock: stock locations (warehouses and
// stores), stock levels per SKU and location, per-SKU settings (backorder,
// low-stock threshold), the audit log of every change to on-hand stock, and
// reservations — the contested resource of a flash sale. It owns the
// inventory database (its own SQLite file or PostgreSQL schema), serves the
// Admin API and the storefront's availability endpoint, and publishes stock
// events through the transactional outbox.
//
// The guarantee it exists for: stock is never oversold, however many
// buyers, goroutines or processes reserve at once. Every allocation is a
// conditional UPDATE in the database (see docs/adr/0010-inventory-reservations.md), never a
// decision taken in Go memory.
//
// Other services use it only through Client: *Service in one process,
// *HTTPClient when split.
package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// The permissions of the Admin API routes: inventory:read for every GET,
// inventory:write for every change (including reservations).
const (
	PermissionRead  auth.Permission = "inventory:read"
	PermissionWrite auth.Permission = "inventory:write"
)

// CodeOutOfStock is the error code of a reservation that cannot be served:
// 409, with a field error "lines[i].quantity" per short line. The error
// also carries an *InsufficientStockError (errors.As) naming SKU, want and
// have.
const CodeOutOfStock apperr.Code = "out_of_stock"

// Id prefixes of the inventory's resources.
const (
	locationPrefix    = "loc"
	reservationPrefix = "res"
	adjustmentPrefix  = "adj"
)

// Limits on requests. A request over one of them fails with
// validation_failed naming the field.
const (
	MaxSKULen           = 64  // printable ASCII, no spaces or slashes (as the catalogue)
	MaxSKUsPerRequest   = 100 // ?sku= lists, and lines per reservation
	MaxQuantity         = 1_000_000_000
	MaxKeyLen           = 255 // reservation idempotency keys
	MaxOrderIDLen       = 100
	MaxLocationNameLen  = 100
	MaxLocationCodeLen  = 32
	MaxAddressLen       = 500
	MaxNoteLen          = 500
	MaxPriority         = 1_000_000
	MaxLowStockLevel    = 1_000_000_000
	MinReservationTTL   = time.Second
	MaxReservationTTL   = 24 * time.Hour
	DefaultLocationPrio = 100 // priority of a location created without one
)

// --- stock locations ---

// Location is a place that holds stock: a warehouse, a store's back room.
// Reservations allocate from active locations in Priority order (lower
// first, then by id); an inactive location keeps its stock and the
// reservations already made there, but is never allocated from and does not
// count as sellable.
type Location struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	Country   string    `json:"country"`
	Priority  int       `json:"priority"`
	Active    bool      `json:"active"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LocationInput creates a location. Code (upper-cased, unique) and Name are
// required; Country is an ISO 3166-1 alpha-2 code or empty; Priority
// defaults to DefaultLocationPrio and Active to true.
type LocationInput struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"`
	Country  string `json:"country,omitempty"`
	Priority *int   `json:"priority,omitempty"`
	Active   *bool  `json:"active,omitempty"`
}

// LocationPatch is a partial update: nil fields are left alone.
type LocationPatch struct {
	Code     *string `json:"code,omitempty"`
	Name     *string `json:"name,omitempty"`
	Address  *string `json:"address,omitempty"`
	Country  *string `json:"country,omitempty"`
	Priority *int    `json:"priority,omitempty"`
	Active   *bool   `json:"active,omitempty"`
}

var (
	codePattern    = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]*$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
)

// normalize trims and upper-cases what is compared or matched.
func (l *Location) normalize() {
	l.Code = strings.ToUpper(strings.TrimSpace(l.Code))
	l.Name = strings.TrimSpace(l.Name)
	l.Address = strings.TrimSpace(l.Address)
	l.Country = strings.ToUpper(strings.TrimSpace(l.Country))
}

func validateLocation(v *apperr.Validation, l Location) {
	switch {
	case l.Code == "":
		v.Add("code", "required", "code is required")
	case len(l.Code) > MaxLocationCodeLen:
		v.Addf("code", "too_long", "code must be at most %d characters", MaxLocationCodeLen)
	case !codePattern.MatchString(l.Code):
		v.Add("code", "invalid", "code must be letters, digits, '-' and '_', such as \"RTM-DC\"")
	}
	switch {
	case l.Name == "":
		v.Add("name", "required", "name is required")
	case utf8.RuneCountInString(l.Name) > MaxLocationNameLen:
		v.Addf("name", "too_long", "name must be at most %d characters", MaxLocationNameLen)
	}
	if utf8.RuneCountInString(l.Address) > MaxAddressLen {
		v.Addf("address", "too_long", "address must be at most %d characters", MaxAddressLen)
	}
	if l.Country != "" && !countryPattern.MatchString(l.Country) {
		v.Add("country", "invalid", "country must be an ISO 3166-1 alpha-2 code, such as \"NL\"")
	}
	if l.Priority < 0 || l.Priority > MaxPriority {
		v.Addf("priority", "out_of_range", "priority must be from 0 to %d", MaxPriority)
	}
}

// --- stock ---

// StockItem is a SKU's stock: its settings and its level at every location
// that holds it, in allocation order (location priority, then id). OnHand,
// Reserved and Available are the sums over Levels; Available may be
// negative for a SKU with backorder. Version is the version of the settings
// (Backorder, LowStockThreshold), the one PATCH's If-Match names.
type StockItem struct {
	SKU               string  `json:"sku"`
	OnHand            int64   `json:"on_hand"`
	Reserved          int64   `json:"reserved"`
	Available         int64   `json:"available"`
	Backorder         bool    `json:"backorder"`
	LowStockThreshold int64   `json:"low_stock_threshold"`
	Version           int64   `json:"version"`
	Levels            []Level `json:"levels"`
}

// Level is a SKU's stock at one location. Available = OnHand - Reserved;
// Version grows with every change of the level (PUT's If-Match names it).
// LocationActive tells whether the location is allocated from.
type Level struct {
	LocationID     string `json:"location_id"`
	OnHand         int64  `json:"on_hand"`
	Reserved       int64  `json:"reserved"`
	Available      int64  `json:"available"`
	LocationActive bool   `json:"location_active"`
	Version        int64  `json:"version"`
}

// sellable is what can be reserved without backorder: the positive
// available stock of the active levels. It is the "available" of the
// storefront, of low-stock crossings and of out_of_stock's "have".
func (it StockItem) sellable() int64 {
	var n int64
	for _, l := range it.Levels {
		if l.LocationActive && l.Available > 0 {
			n += l.Available
		}
	}
	return n
}

// ItemPatch changes a SKU's settings: nil fields are left alone;
// LowStockThreshold set to null goes back to the configured default.
type ItemPatch struct {
	Backorder         *bool         `json:"backorder,omitempty"`
	LowStockThreshold NullableInt64 `json:"low_stock_threshold,omitzero"`
}

// NullableInt64 is a JSON field that may be absent, null or an integer: Set
// tells whether it was present, Value is nil for null.
type NullableInt64 struct {
	Set   bool
	Value *int64
}

// UnmarshalJSON records that the field was present, and its value or null.
func (n *NullableInt64) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	var v int64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n.Value = &v
	return nil
}

// MarshalJSON writes the value or null.
func (n NullableInt64) MarshalJSON() ([]byte, error) {
	if n.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*n.Value)
}

// IsZero reports whether the field was absent (for omitzero).
func (n NullableInt64) IsZero() bool { return !n.Set }

// Reason says why on_hand changed. Sale is written by Commit only; the
// others are what people give with an adjustment or a PUT of a level.
type Reason string

// The reasons of an on_hand change.
const (
	ReasonReceived   Reason = "received"    // goods in: delta > 0
	ReasonDamaged    Reason = "damaged"     // written off: delta < 0
	ReasonLost       Reason = "lost"        // shrinkage: delta < 0
	ReasonCorrection Reason = "correction"  // a mistake fixed, either way
	ReasonReturned   Reason = "returned"    // a customer return restocked: delta > 0
	ReasonCycleCount Reason = "cycle_count" // a count set the level, either way
	ReasonSale       Reason = "sale"        // a reservation was committed
)

// manualReasons are the reasons a person may give.
var manualReasons = []Reason{ReasonReceived, ReasonDamaged, ReasonLost, ReasonCorrection, ReasonReturned, ReasonCycleCount}

// validManual reports whether r may be given by a person with a change of
// the sign of delta ("received" only adds, "damaged" only removes).
func (r Reason) validManual(delta int64) (known, signOK bool) {
	switch r {
	case ReasonReceived, ReasonReturned:
		return true, delta > 0
	case ReasonDamaged, ReasonLost:
		return true, delta < 0
	case ReasonCorrection, ReasonCycleCount:
		return true, true
	}
	return false, false
}

// Adjustment is one row of the audit log: a change of a level's on_hand,
// who made it (the caller's principal subject, "system" without one), when
// and why. ReservationID and OrderID are set for sales.
type Adjustment struct {
	ID            string    `json:"id"`
	SKU           string    `json:"sku"`
	LocationID    string    `json:"location_id"`
	Delta         int64     `json:"delta"`
	OnHandBefore  int64     `json:"on_hand_before"`
	OnHandAfter   int64     `json:"on_hand_after"`
	Reason        Reason    `json:"reason"`
	Note          string    `json:"note"`
	Actor         string    `json:"actor"`
	ReservationID *string   `json:"reservation_id"`
	OrderID       *string   `json:"order_id"`
	CreatedAt     time.Time `json:"created_at"`
}

// AdjustmentInput changes a level's on_hand by Delta (not 0) for Reason;
// the level is created at a location that does not hold the SKU yet.
type AdjustmentInput struct {
	LocationID string `json:"location_id"`
	Delta      int64  `json:"delta"`
	Reason     Reason `json:"reason"`
	Note       string `json:"note,omitempty"`
}

// LevelInput sets a level's on_hand (a count). Reason defaults to
// cycle_count.
type LevelInput struct {
	OnHand int64  `json:"on_hand"`
	Reason Reason `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
}

// --- reservations ---

// State is a reservation's lifecycle state: pending, then exactly one of
// committed (a sale), released (given back) or expired (given back by the
// expiry sweep).
type State string

// The reservation states.
const (
	StatePending   State = "pending"
	StateCommitted State = "committed"
	StateReleased  State = "released"
	StateExpired   State = "expired"
)

// ReserveLine is one SKU and quantity of a reservation request.
type ReserveLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// ReserveRequest asks for stock. Key (required) makes it idempotent: the
// same key always yields the same reservation. OrderID is optional here
// (Commit may give it). TTL is how long the stock is held while pending (0:
// the configured default; else 1 s to 24 h, whole seconds).
type ReserveRequest struct {
	Key     string        `json:"key"`
	OrderID string        `json:"order_id,omitempty"`
	Lines   []ReserveLine `json:"lines"`
	TTL     time.Duration `json:"-"`
}

// Reservation is stock held for an order. Each line says how many units
// were Backordered (reserved beyond stock, for a SKU with backorder) and
// where the units come from.
type Reservation struct {
	ID        string            `json:"id"`
	Key       string            `json:"key"`
	OrderID   *string           `json:"order_id"`
	State     State             `json:"state"`
	Lines     []ReservationLine `json:"lines"`
	ExpiresAt time.Time         `json:"expires_at"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	ClosedAt  *time.Time        `json:"closed_at"`
}

// ReservationLine is a line of a reservation with its allocations, in
// location priority order; the allocations' quantities add up to Quantity
// and their Backordered to Backordered.
type ReservationLine struct {
	SKU         string       `json:"sku"`
	Quantity    int64        `json:"quantity"`
	Backordered int64        `json:"backordered"`
	Allocations []Allocation `json:"allocations"`
}

// Allocation is the part of a line taken from one location.
type Allocation struct {
	LocationID  string `json:"location_id"`
	Quantity    int64  `json:"quantity"`
	Backordered int64  `json:"backordered"`
}

// Availability is what the storefront needs to know of a SKU. Available is
// the sellable quantity: the positive available stock at active locations
// (backordered levels count as 0). InStock tells whether one unit could be
// reserved now: Available > 0, or the SKU takes backorders and is stocked
// at an active location. A SKU the inventory does not know is not in stock.
type Availability struct {
	Available int64 `json:"available"`
	InStock   bool  `json:"in_stock"`
	Backorder bool  `json:"backorder"`
}

// availabilityOf derives a SKU's availability from its stock. The service
// and the HTTP client both use it, so they cannot disagree.
func availabilityOf(it StockItem) Availability {
	a := Availability{Available: it.sellable(), Backorder: it.Backorder}
	activeLevel := false
	for _, l := range it.Levels {
		activeLevel = activeLevel || l.LocationActive
	}
	a.InStock = a.Available > 0 || (it.Backorder && activeLevel)
	return a
}

// Shortage is one line that could not be served: Want units asked, Have
// sellable.
type Shortage struct {
	Line int    `json:"line"`
	SKU  string `json:"sku"`
	Want int64  `json:"want"`
	Have int64  `json:"have"`
}

// InsufficientStockError is the cause of an out_of_stock error: the lines
// that were short. Nothing was reserved.
type InsufficientStockError struct {
	Shortages []Shortage
}

func (e *InsufficientStockError) Error() string {
	parts := make([]string, len(e.Shortages))
	for i, s := range e.Shortages {
		parts[i] = fmt.Sprintf("%s (want %d, have %d)", s.SKU, s.Want, s.Have)
	}
	return "insufficient stock: " + strings.Join(parts, ", ")
}

// shortageMessage is the field error message of a short line; the HTTP
// client parses it back into a Shortage, so its form is part of the
// contract.
func shortageMessage(s Shortage) string {
	return fmt.Sprintf("%s: want %d, have %d", s.SKU, s.Want, s.Have)
}

func parseShortage(field, msg string) (Shortage, bool) {
	var s Shortage
	if _, err := fmt.Sscanf(field, "lines[%d].quantity", &s.Line); err != nil {
		return Shortage{}, false
	}
	sku, rest, ok := strings.Cut(msg, ": ")
	if !ok {
		return Shortage{}, false
	}
	s.SKU = sku
	if _, err := fmt.Sscanf(rest, "want %d, have %d", &s.Want, &s.Have); err != nil {
		return Shortage{}, false
	}
	return s, true
}

// outOfStock is the out_of_stock error of the shortages.
func outOfStock(shortages []Shortage) error {
	e := &apperr.Error{Code: CodeOutOfStock, Err: &InsufficientStockError{Shortages: shortages}}
	skus := make([]string, len(shortages))
	for i, s := range shortages {
		skus[i] = s.SKU
		e.Fields = append(e.Fields, apperr.FieldError{
			Field: fmt.Sprintf("lines[%d].quantity", s.Line), Code: string(CodeOutOfStock), Message: shortageMessage(s),
		})
	}
	e.Message = "not enough stock of " + strings.Join(skus, ", ")
	return e
}

// InsufficientStock returns the shortages of an out_of_stock error, from
// this process or across the wire (the HTTP client rebuilds them).
func InsufficientStock(err error) ([]Shortage, bool) {
	var e *InsufficientStockError
	if errors.As(err, &e) {
		return e.Shortages, true
	}
	return nil, false
}

// --- validation ---

// validSKU: printable ASCII without spaces or slashes, at most MaxSKULen,
// as the catalogue demands, so a SKU is a URL path segment as it is.
func validSKU(s string) bool {
	if s == "" || len(s) > MaxSKULen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}

func checkSKU(v *apperr.Validation, field, sku string) {
	switch {
	case sku == "":
		v.Add(field, "required", "sku is required")
	case len(sku) > MaxSKULen:
		v.Addf(field, "too_long", "sku must be at most %d characters", MaxSKULen)
	case !validSKU(sku):
		v.Add(field, "invalid", "sku must be printable ASCII without spaces or slashes")
	}
}

// printable reports whether s is non-empty printable ASCII (keys, order
// ids: they end up in URLs and logs).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return s != ""
}

// validate checks a reservation request, naming each bad field.
func (r ReserveRequest) validate() error {
	var v apperr.Validation
	switch {
	case r.Key == "":
		v.Add("key", "required", "key (the idempotency key) is required")
	case len(r.Key) > MaxKeyLen:
		v.Addf("key", "too_long", "key must be at most %d characters", MaxKeyLen)
	case !printable(r.Key):
		v.Add("key", "invalid", "key must be printable ASCII")
	}
	if r.OrderID != "" && (len(r.OrderID) > MaxOrderIDLen || !printable(r.OrderID)) {
		v.Addf("order_id", "invalid", "order_id must be printable ASCII of at most %d characters", MaxOrderIDLen)
	}
	if r.TTL != 0 && (r.TTL < MinReservationTTL || r.TTL > MaxReservationTTL || r.TTL%time.Second != 0) {
		v.Addf("ttl_seconds", "out_of_range", "ttl_seconds must be a whole number of seconds from %d to %d",
			int(MinReservationTTL/time.Second), int(MaxReservationTTL/time.Second))
	}
	switch {
	case len(r.Lines) == 0:
		v.Add("lines", "required", "at least one line is required")
	case len(r.Lines) > MaxSKUsPerRequest:
		v.Addf("lines", "too_many", "a reservation can have at most %d lines", MaxSKUsPerRequest)
	}
	seen := map[string]int{}
	for i, l := range r.Lines {
		field := fmt.Sprintf("lines[%d]", i)
		checkSKU(&v, field+".sku", l.SKU)
		if j, dup := seen[l.SKU]; dup && l.SKU != "" {
			v.Addf(field+".sku", "duplicate", "sku %q is also on lines[%d]; one line per SKU", l.SKU, j)
		} else {
			seen[l.SKU] = i
		}
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			v.Addf(field+".quantity", "out_of_range", "quantity must be from 1 to %d", MaxQuantity)
		}
	}
	return v.Err()
}

// parseSKUList reads a list of SKUs given as repeated or comma-separated
// values (?sku=a,b&sku=c), in order and without duplicates; field names the
// parameter in errors.
func parseSKUList(field string, values []string) ([]string, error) {
	var (
		v    apperr.Validation
		out  []string
		seen = map[string]bool{}
	)
	for _, val := range values {
		for _, sku := range strings.Split(val, ",") {
			sku = strings.TrimSpace(sku)
			if seen[sku] {
				continue
			}
			seen[sku] = true
			if !validSKU(sku) {
				v.Addf(field, "invalid", "%q is not a SKU (printable ASCII without spaces or slashes, at most %d characters)", sku, MaxSKULen)
				continue
			}
			out = append(out, sku)
		}
	}
	if len(out) > MaxSKUsPerRequest {
		v.Addf(field, "too_many", "at most %d SKUs at once", MaxSKUsPerRequest)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func notFound(kind, ref string) error {
	return apperr.New(apperr.NotFound, "no %s %q", kind, ref)
}

func versionConflict(kind string, want, have int64) error {
	return apperr.New(apperr.VersionConflict, "%s is at version %d, not %d; fetch it again and retry", kind, have, want)
}
