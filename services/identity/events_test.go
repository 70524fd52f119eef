package identity

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/bus/bustest"
)

// TestEventsMatchTheirSchema: registration and the demo seed announce each
// customer once, in the outbox, valid against the event's JSON Schema and
// without a password; a refused registration announces nothing.
func TestEventsMatchTheirSchema(t *testing.T) {
	schema := apitest.MustEventSchemas(t, EventCustomerRegistered)
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		c := MustRegister(t, e.s, "bob@example.com", "Bob")
		if _, err := e.s.RegisterCustomer(ctx, RegisterParams{Email: "bob@example.com", Password: testPassword, Name: "Again"}); err == nil {
			t.Fatal("duplicate registered")
		}
		if _, err := Seed(ctx, e.s); err != nil {
			t.Fatal(err)
		}
		events := bustest.MustEvents(t, e.s.db)
		if len(events) != 2 {
			t.Fatalf("events = %d, want 2 (bob's and the seed's ada's)", len(events))
		}
		for _, ev := range events {
			raw, _ := json.Marshal(ev)
			schema.Validate(t, raw)
			if strings.Contains(string(raw), "argon2") || strings.Contains(string(raw), "password") {
				t.Errorf("event leaks a password: %s", raw)
			}
		}
		var first CustomerRegistered
		if err := events[0].Decode(&first); err != nil || first.ID != c.ID || events[0].Subject != c.ID || first.Email != "bob@example.com" {
			t.Fatalf("first event = %+v, %v", first, err)
		}
	})
}

// TestEventSchemaRefuses: the schema is strict enough to catch drift.
func TestEventSchemaRefuses(t *testing.T) {
	schema := apitest.MustEventSchemas(t, EventCustomerRegistered)
	e := MustNewSQLiteEnv(t, Config{})
	MustRegister(t, e.s, "ada@example.com", "Ada")
	raw, _ := json.Marshal(bustest.MustEvents(t, e.s.db)[0])
	for name, mutate := range map[string]func(m map[string]any){
		"password hash in data": func(m map[string]any) { m["data"].(map[string]any)["password_hash"] = "x" },
		"no email":              func(m map[string]any) { delete(m["data"].(map[string]any), "email") },
		"wrong source":          func(m map[string]any) { m["source"] = "catalog" },
		"subject not a cus_ id": func(m map[string]any) { m["subject"] = "usr_01JD3Q0000000000000000000A" },
	} {
		t.Run(name, func(t *testing.T) { schema.MustRejectDrift(t, EventCustomerRegistered, raw, mutate) })
	}
}
