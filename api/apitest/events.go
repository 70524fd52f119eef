package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/soukhq/souk/api"
)

// schemaBase prefixes an event type to make its schema's $id.
const schemaBase = "https://souk.dev/schemas/events/"

// EventSchemas validates events against the JSON Schemas of their types,
// api/events/<type>.json (as embedded in api.EventSchemas).
type EventSchemas struct {
	schemas map[string]*jsonschema.Schema
}

// MustEventSchemas compiles the schema of every type (asserting formats);
// it fails the test when one is missing or does not compile.
func MustEventSchemas(t testing.TB, types ...string) *EventSchemas {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s := &EventSchemas{schemas: map[string]*jsonschema.Schema{}}
	for _, typ := range types {
		raw, err := api.EventSchemas.ReadFile("events/" + typ + ".json")
		if err != nil {
			t.Fatalf("schema of %s: %v", typ, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("schema of %s: %v", typ, err)
		}
		name := schemaBase + typ + ".json" // the schema's own $id
		if err := c.AddResource(name, doc); err != nil {
			t.Fatalf("schema of %s: %v", typ, err)
		}
		sch, err := c.Compile(name)
		if err != nil {
			t.Fatalf("compile schema of %s: %v", typ, err)
		}
		s.schemas[typ] = sch
	}
	return s
}

// Validate fails the test unless event (a JSON-encoded bus.Event) matches
// the schema of its own type; an event of a type without a compiled schema
// stops the test.
func (s *EventSchemas) Validate(t testing.TB, event []byte) {
	t.Helper()
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(event, &head); err != nil {
		t.Fatalf("not an event: %v\n%s", err, event)
	}
	if _, ok := s.schemas[head.Type]; !ok {
		t.Fatalf("event type %q has no schema", head.Type)
	}
	if err := s.ValidateAs(head.Type, event); err != nil {
		t.Errorf("%s event does not match its schema: %v\n%s", head.Type, err, event)
	}
}

// ValidateAs validates event against the schema of typ, whatever type the
// event says it is.
func (s *EventSchemas) ValidateAs(typ string, event []byte) error {
	sch, ok := s.schemas[typ]
	if !ok {
		return fmt.Errorf("event type %q has no compiled schema", typ)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// MustRejectDrift proves the schema of typ strict: event (valid as
// published), decoded, changed by mutate (a field lost, added or
// mistyped) and encoded again, must fail it.
func (s *EventSchemas) MustRejectDrift(t testing.TB, typ string, event []byte, mutate func(e map[string]any)) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(event, &e); err != nil {
		t.Fatal(err)
	}
	mutate(e)
	b, _ := json.Marshal(e)
	if err := s.ValidateAs(typ, b); err == nil {
		t.Fatalf("the %s schema accepted a drifted event:\n%s", typ, b)
	}
}
