// Package api holds Souk's machine-readable contracts: the OpenAPI document
// of the HTTP API (openapi.yaml) and a JSON Schema per event type (events/).
// Both are embedded in the binary: the server serves the OpenAPI document at
// /openapi.json, and tests validate responses and events against them.
package api

import (
	"embed"
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed openapi.yaml
var openapiYAML []byte

// EventSchemas holds one JSON Schema per event type, named <type>.json.
//
//go:embed events
var EventSchemas embed.FS

// OpenAPIYAML returns the OpenAPI document as written.
func OpenAPIYAML() []byte { return openapiYAML }

// LoadOpenAPI parses and validates the OpenAPI document.
func LoadOpenAPI() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	return doc, nil
}

var jsonDoc = sync.OnceValues(func() ([]byte, error) {
	doc, err := LoadOpenAPI()
	if err != nil {
		return nil, err
	}
	return doc.MarshalJSON()
})

// OpenAPIJSON returns the OpenAPI document as JSON, converted once.
func OpenAPIJSON() ([]byte, error) { return jsonDoc() }
