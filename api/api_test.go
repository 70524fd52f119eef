package api_test

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/soukhq/souk/api"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/admin/products", "/admin/api-keys", "/healthz", "/store/products"} {
		if doc.Paths.Find(path) == nil {
			t.Errorf("merged document lacks %s", path)
		}
	}
	raw, err := api.OpenAPIJSON()
	if err != nil || !json.Valid(raw) {
		t.Fatalf("OpenAPIJSON: %v", err)
	}
}

// Every Admin operation names the permission it needs.
func TestAdminOperationsNameAPermission(t *testing.T) {
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/admin/") {
			continue
		}
		for method, op := range item.Operations() {
			if _, ok := op.Extensions["x-permission"]; !ok {
				t.Errorf("%s %s has no x-permission", method, path)
			}
		}
	}
}

func TestEventSchemasCompile(t *testing.T) {
	names, err := fs.Glob(api.EventSchemas, "events/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no event schemas: %v", err)
	}
	c := jsonschema.NewCompiler()
	for _, n := range names {
		raw, _ := api.EventSchemas.ReadFile(n)
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if err := c.AddResource(n, doc); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if _, err := c.Compile(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}
