package pricing

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
)

// eventTypes is every event pricing publishes.
var eventTypes = []string{EventPriceChanged, EventVoucherRedeemed, EventVoucherReleased}

// mustEventData decodes an outbox payload's data into v.
func mustEventData(t testing.TB, payload []byte, v any) bus.Event {
	t.Helper()
	var e bus.Event
	if err := json.Unmarshal(payload, &e); err != nil {
		t.Fatal(err)
	}
	if err := e.Decode(v); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEventsMatchTheirSchemas drives pricing through every kind of change
// and validates each outbox row against its event's JSON Schema.
func TestEventsMatchTheirSchemas(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		vip := "vip"
		pl := MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 100}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "VIP", Currency: "EUR", CustomerGroup: &vip, StartsAt: &testNow, Prices: []Price{}})
		if _, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{Prices: &[]Price{{varA, 90}, {varB, 10}}}, 0); err != nil {
			t.Fatal(err)
		}
		MustVoucher(t, s, "SAVE", nil, ptr(int64(2)))
		MustVoucher(t, s, "MORE", nil, nil)
		if _, err := s.Redeem(ctx, RedeemRequest{Key: "k", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"SAVE", "MORE"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		var types []string
		for i, row := range bustest.MustOutbox(t, s.db) {
			types = append(types, row.Type)
			schemas.Validate(t, row.Payload)
			var e bus.Event
			if err := json.Unmarshal(row.Payload, &e); err != nil {
				t.Fatal(err)
			}
			if e.Subject != row.Aggregate || e.Type != row.Type || e.Source != "pricing" {
				t.Errorf("row %d: subject %q aggregate %q type %q", i, e.Subject, row.Aggregate, e.Type)
			}
		}
		want := []string{EventPriceChanged, EventPriceChanged, EventPriceChanged, EventVoucherRedeemed, EventVoucherReleased}
		if !slices.Equal(types, want) {
			t.Fatalf("events = %v, want %v", types, want)
		}
	})
}

// TestEventSchemasRejectDrift makes sure the schemas are strict enough to
// catch data that lost or mistyped a field.
func TestEventSchemasRejectDrift(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	s := MustNewSQLiteService(t)
	MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", Prices: []Price{{varA, 100}}})
	MustVoucher(t, s, "SAVE", nil, nil)
	if _, err := s.Redeem(context.Background(), RedeemRequest{Key: "k", OrderID: "ord_1", Codes: []string{"SAVE"}}); err != nil {
		t.Fatal(err)
	}
	rows := bustest.MustOutbox(t, s.db)
	data := func(e map[string]any) map[string]any { return e["data"].(map[string]any) }
	for _, tt := range []struct {
		name   string
		row    int
		mutate func(e map[string]any)
	}{
		{"price: missing version", 0, func(e map[string]any) { delete(data(e), "version") }},
		{"price: float amount in variant ids", 0, func(e map[string]any) { data(e)["variant_ids"] = []any{1.5} }},
		{"price: unknown field", 0, func(e map[string]any) { data(e)["amount"] = 10 }},
		{"price: bad currency", 0, func(e map[string]any) { data(e)["currency"] = "euro" }},
		{"price: wrong subject", 0, func(e map[string]any) { e["subject"] = "promo_1" }},
		{"voucher: wrong state for the type", 1, func(e map[string]any) { data(e)["state"] = "released" }},
		{"voucher: no codes", 1, func(e map[string]any) { data(e)["codes"] = []any{} }},
		{"voucher: lower-case code", 1, func(e map[string]any) { data(e)["codes"] = []any{"save"} }},
		{"voucher: wrong type", 1, func(e map[string]any) { e["type"] = EventVoucherReleased }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schemas.MustRejectDrift(t, rows[tt.row].Type, rows[tt.row].Payload, tt.mutate)
		})
	}
}

func TestChangedVariants(t *testing.T) {
	base := PriceList{Prices: []Price{{"a", 1}, {"b", 2}}}
	for _, tt := range []struct {
		name string
		prev *PriceList
		next PriceList
		want []string
	}{
		{"new list", nil, base, []string{"a", "b"}},
		{"same", &base, base, []string{}},
		{"repriced, added, removed", &base, PriceList{Prices: []Price{{"a", 5}, {"c", 3}}}, []string{"a", "b", "c"}},
		{"priority changes every price", &base, PriceList{Priority: 1, Prices: []Price{{"a", 1}}}, []string{"a", "b"}},
	} {
		if got := changedVariants(tt.prev, tt.next); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
