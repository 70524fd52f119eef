package catalog

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
)

// eventTypes is every event the catalogue publishes.
var eventTypes = []string{EventProductPublished, EventProductUpdated, EventProductArchived}

// TestEventsMatchTheirSchemas drives the catalogue through every kind of
// change, then validates each outbox row against its event's JSON Schema
// and checks which changes were announced.
func TestEventsMatchTheirSchemas(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		cat := MustCreateCategory(t, s, CategoryInput{Name: "Shirts"})
		gone := MustCreateCategory(t, s, CategoryInput{Name: "Gone"})

		in := shirtInput("Linen Shirt", "LIN")
		in.CategoryIDs = []string{cat.ID, gone.ID}
		p := MustCreateProduct(t, s, in)                                          // published
		MustUpdateProduct(t, s, p.ID, ProductPatch{Title: ptr("Linen Shirt II")}) // updated
		if err := s.DeleteCategory(ctx, gone.ID, 0); err != nil {                 // updated
			t.Fatal(err)
		}
		if err := s.DeleteProduct(ctx, p.ID, 0); err != nil { // archived
			t.Fatal(err)
		}
		MustUpdateProduct(t, s, p.ID, ProductPatch{Status: ptr(StatusPublished)}) // published
		MustUpdateProduct(t, s, p.ID, ProductPatch{Status: ptr(StatusDraft)})     // updated
		MustUpdateProduct(t, s, p.ID, ProductPatch{Status: ptr(StatusArchived)})  // archived

		d := MustCreateProduct(t, s, simpleInput("Quiet Draft", "QD-1", StatusDraft))
		MustUpdateProduct(t, s, d.ID, ProductPatch{Title: ptr("Still Quiet")})
		MustUpdateProduct(t, s, d.ID, ProductPatch{Status: ptr(StatusArchived)})
		if err := s.DeleteProduct(ctx, d.ID, 0); err != nil {
			t.Fatal(err)
		}

		want := []string{EventProductPublished, EventProductUpdated, EventProductUpdated, EventProductArchived,
			EventProductPublished, EventProductUpdated, EventProductArchived}
		if got := bustest.MustTypes(t, s.db, p.ID); !slices.Equal(got, want) {
			t.Fatalf("events of the published product:\n got %v\nwant %v", got, want)
		}
		if got := bustest.MustTypes(t, s.db, d.ID); len(got) != 0 {
			t.Fatalf("a never-published product was announced: %v", got)
		}

		lastVersion := int64(0)
		for i, row := range bustest.MustOutbox(t, s.db) {
			schemas.Validate(t, row.Payload)
			var e bus.Event
			if err := json.Unmarshal(row.Payload, &e); err != nil {
				t.Fatal(err)
			}
			var snap ProductSnapshot
			if err := e.Decode(&snap); err != nil {
				t.Fatal(err)
			}
			if e.Subject != snap.ID || row.Aggregate != snap.ID || e.Type != row.Type {
				t.Errorf("row %d: subject %q, aggregate %q, data.id %q", i, e.Subject, row.Aggregate, snap.ID)
			}
			if snap.Version <= lastVersion {
				t.Errorf("row %d: version %d after %d", i, snap.Version, lastVersion)
			}
			lastVersion = snap.Version
		}
	})
}

// TestEventSchemasRejectDrift makes sure the schemas are strict enough to
// catch a snapshot that lost or mistyped a field.
func TestEventSchemasRejectDrift(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	s := MustNewSQLiteService(t)
	MustCreateProduct(t, s, shirtInput("Linen Shirt", "LIN"))
	rows := bustest.MustOutbox(t, s.db)
	if len(rows) != 1 {
		t.Fatalf("%d outbox rows", len(rows))
	}
	for _, tt := range []struct {
		name   string
		mutate func(e map[string]any)
	}{
		{"missing data.version", func(e map[string]any) { delete(e["data"].(map[string]any), "version") }},
		{"string version", func(e map[string]any) { e["data"].(map[string]any)["version"] = "1" }},
		{"wrong status for the type", func(e map[string]any) { e["data"].(map[string]any)["status"] = "draft" }},
		{"unknown data field", func(e map[string]any) { e["data"].(map[string]any)["price"] = 10 }},
		{"variant without sku", func(e map[string]any) {
			delete(e["data"].(map[string]any)["variants"].([]any)[0].(map[string]any), "sku")
		}},
		{"wrong type", func(e map[string]any) { e["type"] = EventProductUpdated }},
		{"bad subject", func(e map[string]any) { e["subject"] = "cart_1" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schemas.MustRejectDrift(t, EventProductPublished, rows[0].Payload, tt.mutate)
		})
	}
}

func TestEventFor(t *testing.T) {
	published := Product{Status: StatusPublished, PublishedAt: ptr(sampleTime)}
	with := func(p Product, st Status) Product { p.Status = st; return p }
	never := Product{Status: StatusDraft}
	for _, tt := range []struct {
		name string
		prev *Product
		next Product
		want string
	}{
		{"created draft", nil, never, ""},
		{"created archived", nil, with(never, StatusArchived), ""},
		{"created published", nil, published, EventProductPublished},
		{"draft edited", &never, never, ""},
		{"draft archived", &never, with(never, StatusArchived), ""},
		{"draft published", &never, published, EventProductPublished},
		{"published edited", &published, published, EventProductUpdated},
		{"published to draft", &published, with(published, StatusDraft), EventProductUpdated},
		{"published archived", &published, with(published, StatusArchived), EventProductArchived},
		{"archived edited", ptr(with(published, StatusArchived)), with(published, StatusArchived), EventProductUpdated},
		{"archived republished", ptr(with(published, StatusArchived)), published, EventProductPublished},
		{"unpublished draft edited", ptr(with(published, StatusDraft)), with(published, StatusDraft), EventProductUpdated},
	} {
		if got := eventFor(tt.prev, tt.next); got != tt.want {
			t.Errorf("%s: eventFor = %q, want %q", tt.name, got, tt.want)
		}
	}
}
