// Package api holds Souk's machine-readable contracts: the OpenAPI document
// of the HTTP API and a JSON Schema per event type (events/). Both are
// embedded in the binary: the server serves the OpenAPI document at
// /openapi.json, and tests validate requests, responses and events against
// them.
//
// The OpenAPI document is written in parts: openapi.yaml holds the info,
// the shared components (Problem, paging parameters, error responses) and
// the operations endpoints; openapi/<service>.yaml holds one service's paths
// and components. LoadOpenAPI merges them into one document, refusing a path
// or component defined twice, so each service owns its part.
package api

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oasdiff/yaml"
)

//go:embed openapi.yaml openapi
var specFS embed.FS

// EventSchemas holds one JSON Schema per event type, named <type>.json.
//
//go:embed events
var EventSchemas embed.FS

// MergedJSON returns the OpenAPI document with every service part merged
// in, as JSON.
func MergedJSON() ([]byte, error) {
	doc, err := readPart("openapi.yaml")
	if err != nil {
		return nil, err
	}
	parts, err := fs.Glob(specFS, "openapi/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(parts)
	for _, name := range parts {
		part, err := readPart(name)
		if err != nil {
			return nil, err
		}
		if err := merge(doc, part, name); err != nil {
			return nil, err
		}
	}
	return json.Marshal(doc)
}

func readPart(name string) (map[string]any, error) {
	raw, err := specFS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// merge adds a part's paths, components and tags to doc.
func merge(doc, part map[string]any, name string) error {
	for key, val := range part {
		switch key {
		case "paths":
			if err := mergeMap(doc, "paths", val, name+": path"); err != nil {
				return err
			}
		case "components":
			comps, _ := val.(map[string]any)
			docComps, _ := doc["components"].(map[string]any)
			if docComps == nil {
				docComps = map[string]any{}
				doc["components"] = docComps
			}
			for section, entries := range comps {
				if err := mergeMap(docComps, section, entries, name+": component "+section); err != nil {
					return err
				}
			}
		case "tags":
			tags, _ := doc["tags"].([]any)
			more, _ := val.([]any)
			doc["tags"] = append(tags, more...)
		default:
			return fmt.Errorf("%s: a service part may hold paths, components and tags, not %q", name, key)
		}
	}
	return nil
}

func mergeMap(into map[string]any, key string, val any, what string) error {
	src, ok := val.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: not a mapping", what)
	}
	dst, _ := into[key].(map[string]any)
	if dst == nil {
		dst = map[string]any{}
		into[key] = dst
	}
	for k, v := range src {
		if _, dup := dst[k]; dup {
			return fmt.Errorf("%s %q is defined twice", what, k)
		}
		dst[k] = v
	}
	return nil
}

// LoadOpenAPI merges, parses and validates the OpenAPI document.
func LoadOpenAPI() (*openapi3.T, error) {
	js, err := MergedJSON()
	if err != nil {
		return nil, fmt.Errorf("merge openapi: %w", err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(js)
	if err != nil {
		return nil, fmt.Errorf("load openapi: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate openapi: %w", err)
	}
	return doc, nil
}

// OpenAPIJSON returns the merged, validated OpenAPI document as JSON. It is
// computed once: the parts are embedded and never change.
var OpenAPIJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := LoadOpenAPI()
	if err != nil {
		return nil, err
	}
	return doc.MarshalJSON()
})
