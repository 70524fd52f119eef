// Package catalog is Souk's catalogue: products with their options, variants
// and media, and a tree of categories. It owns the catalogue database (its
// own SQLite file or PostgreSQL schema) and the full-text search read model
// over it, serves the Admin API (all statuses, writes) and the Store API
// (published products only), and publishes product events through the
// transactional outbox.
//
// Other services use it only through Client: *Service in one process,
// *HTTPClient when split.
package catalog

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
)

// The permissions of the Admin API routes.
const (
	PermissionRead  auth.Permission = "catalog:read"
	PermissionWrite auth.Permission = "catalog:write"
)

// Id prefixes of the catalogue's resources.
const (
	productPrefix  = "prod"
	variantPrefix  = "var"
	categoryPrefix = "cat"
)

// Limits on a product and a category. A request over one of them fails with
// validation_failed naming the field.
const (
	MaxTitleLen               = 200   // product title, in characters
	MaxDescriptionLen         = 10000 // product description, in characters
	MaxHandleLen              = 100   // product and category handles
	MaxOptions                = 10    // options per product
	MaxOptionNameLen          = 50    // characters
	MaxOptionValues           = 50    // values per option
	MaxOptionValueLen         = 100   // characters
	MaxVariants               = 100   // variants per product
	MaxSKULen                 = 64    // printable ASCII characters
	MaxWeightGrams            = 1_000_000_000
	MaxAttributes             = 50   // attribute keys per variant
	MaxAttributeKeyLen        = 100  // characters
	MaxAttributeValueLen      = 1000 // characters
	MaxMedia                  = 20   // media per product
	MaxMediaURLLen            = 2048
	MaxMediaAltLen            = 500
	MaxProductCategories      = 50 // categories per product
	MaxCategoryNameLen        = 100
	MaxCategoryDescriptionLen = 2000
	MaxCategoryDepth          = 10 // levels in the category tree
)

// MaxVariantBatch is the most distinct variant ids one GetVariants call
// may ask for: a cart's lines at the default MaxLines of the cart, and an
// IN list every engine takes. More fail with validation_failed naming "id".
const MaxVariantBatch = 100

// Status is a product's lifecycle state. Only published products are visible
// in the Store API; archived ones keep their id and variants for order
// history.
type Status string

// The product statuses.
const (
	StatusDraft     Status = "draft"
	StatusPublished Status = "published"
	StatusArchived  Status = "archived"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	return s == StatusDraft || s == StatusPublished || s == StatusArchived
}

// Option is one axis along which a product's variants differ ("size" with
// values S, M, L). Names are unique within a product (case-insensitively),
// values unique within an option.
type Option struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Variant is one purchasable version of a product, identified by a SKU that
// is unique across the catalogue. Options holds exactly one value of each of
// the product's options; Title is derived from those values; Position is the
// variant's index in its product's Variants.
type Variant struct {
	ID          string            `json:"id"`
	SKU         string            `json:"sku"`
	Title       string            `json:"title"`
	Options     map[string]string `json:"options"`
	WeightGrams int64             `json:"weight_grams"`
	Attributes  map[string]string `json:"attributes"`
	Position    int               `json:"position"`
}

// Media is an image (or other asset) of a product, by reference: Souk stores
// the http(s) URL, never the bytes.
type Media struct {
	URL string `json:"url"`
	Alt string `json:"alt"`
}

// Product is a catalogue product. Version starts at 1 and grows by one with
// every change; PublishedAt is when the product last became published and
// stays set once it has been (null means "never published").
//
// The Store API shows a store view of a product: Version and CreatedAt are
// zero there and left out of its JSON.
type Product struct {
	ID          string     `json:"id"`
	Handle      string     `json:"handle"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Status      Status     `json:"status"`
	CategoryIDs []string   `json:"category_ids"`
	Options     []Option   `json:"options"`
	Variants    []Variant  `json:"variants"`
	Media       []Media    `json:"media"`
	Version     int64      `json:"version,omitzero"`
	CreatedAt   time.Time  `json:"created_at,omitzero"`
	UpdatedAt   time.Time  `json:"updated_at"`
	PublishedAt *time.Time `json:"published_at"`
}

// storeView returns the product as the Store API shows it.
func (p Product) storeView() Product {
	p.Version = 0
	p.CreatedAt = time.Time{}
	return p
}

// clone returns a deep copy, so a patch never aliases the original.
func (p Product) clone() Product {
	c := p
	c.CategoryIDs = slices.Clone(p.CategoryIDs)
	c.Options = make([]Option, len(p.Options))
	for i, o := range p.Options {
		c.Options[i] = Option{Name: o.Name, Values: slices.Clone(o.Values)}
	}
	c.Variants = make([]Variant, len(p.Variants))
	for i, v := range p.Variants {
		v.Options = maps.Clone(v.Options)
		v.Attributes = maps.Clone(v.Attributes)
		c.Variants[i] = v
	}
	c.Media = slices.Clone(p.Media)
	if p.PublishedAt != nil {
		t := *p.PublishedAt
		c.PublishedAt = &t
	}
	return c
}

// clone returns a copy of r that shares nothing mutable with it.
func (r VariantRef) clone() VariantRef {
	c := r
	c.Options = maps.Clone(r.Options)
	c.Attributes = maps.Clone(r.Attributes)
	c.ProductCategoryIDs = slices.Clone(r.ProductCategoryIDs)
	return c
}

// sameContent reports whether two states of a product hold the same data,
// ignoring version and timestamps, so that a PATCH that changes nothing
// writes nothing.
func sameContent(a, b Product) bool {
	ja, _ := json.Marshal(contentOf(a))
	jb, _ := json.Marshal(contentOf(b))
	return string(ja) == string(jb)
}

func contentOf(p Product) Product {
	p.Version, p.CreatedAt, p.UpdatedAt, p.PublishedAt = 0, time.Time{}, time.Time{}, nil
	return p
}

// everPublished reports whether the product has been published at some time,
// which decides whether DELETE archives it (keeping it for order history)
// and whether its changes are announced.
func (p Product) everPublished() bool { return p.PublishedAt != nil }

// VariantRef is a variant with the product it belongs to: what a cart needs
// to add a line item. ProductStatus is the product's status.
type VariantRef struct {
	Variant
	ProductID     string `json:"product_id"`
	ProductTitle  string `json:"product_title"`
	ProductHandle string `json:"product_handle"`
	ProductStatus Status `json:"product_status"`
	// ProductCategoryIDs are the product's categories, for category
	// promotions and tax rules.
	ProductCategoryIDs []string `json:"product_category_ids"`
}

// ProductInput creates a product. Title is required; Handle is derived from
// the title when empty (and made unique with a numeric suffix); Status
// defaults to draft. A published product needs at least one variant.
type ProductInput struct {
	Title       string         `json:"title"`
	Handle      string         `json:"handle,omitempty"`
	Description string         `json:"description,omitempty"`
	Status      Status         `json:"status,omitempty"`
	CategoryIDs []string       `json:"category_ids,omitempty"`
	Options     []Option       `json:"options,omitempty"`
	Variants    []VariantInput `json:"variants,omitempty"`
	Media       []Media        `json:"media,omitempty"`
}

// VariantInput is one variant in a create or update. In an update, a variant
// with the ID of one of the product's variants keeps that id (carts refer to
// it); one without an ID is new. Variants are ordered by Position (variants
// without one keep their place in the list), then renumbered from 0. The
// title is always derived from the option values and cannot be set.
type VariantInput struct {
	ID          string            `json:"id,omitempty"`
	SKU         string            `json:"sku"`
	Options     map[string]string `json:"options,omitempty"`
	WeightGrams int64             `json:"weight_grams,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Position    *int              `json:"position,omitempty"`
}

// ProductPatch is a partial update: nil fields are left alone, arrays replace
// the whole array. Variants omitted from a given Variants are removed.
type ProductPatch struct {
	Title       *string         `json:"title,omitempty"`
	Handle      *string         `json:"handle,omitempty"`
	Description *string         `json:"description,omitempty"`
	Status      *Status         `json:"status,omitempty"`
	CategoryIDs *[]string       `json:"category_ids,omitempty"`
	Options     *[]Option       `json:"options,omitempty"`
	Variants    *[]VariantInput `json:"variants,omitempty"`
	Media       *[]Media        `json:"media,omitempty"`
}

// Category is a node of the category tree. ParentID is nil for a root;
// siblings are ordered by Position, then name.
type Category struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Handle      string    `json:"handle"`
	Description string    `json:"description"`
	ParentID    *string   `json:"parent_id"`
	Position    int       `json:"position"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// CategoryNode is a category with its subcategories, as the Store API shows
// the tree.
type CategoryNode struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Handle      string         `json:"handle"`
	Description string         `json:"description"`
	ParentID    *string        `json:"parent_id"`
	Position    int            `json:"position"`
	Children    []CategoryNode `json:"children"`
}

// CategoryInput creates a category. Name is required; Handle is derived from
// the name when empty; ParentID, when set, must name an existing category.
type CategoryInput struct {
	Name        string  `json:"name"`
	Handle      string  `json:"handle,omitempty"`
	Description string  `json:"description,omitempty"`
	ParentID    *string `json:"parent_id,omitempty"`
	Position    int     `json:"position,omitempty"`
}

// CategoryPatch is a partial update of a category. ParentID distinguishes
// "absent" (leave alone) from null (make the category a root).
type CategoryPatch struct {
	Name        *string        `json:"name,omitempty"`
	Handle      *string        `json:"handle,omitempty"`
	Description *string        `json:"description,omitempty"`
	ParentID    NullableString `json:"parent_id,omitzero"`
	Position    *int           `json:"position,omitempty"`
}

// NullableString is a JSON field that may be absent, null or a string: Set
// tells whether it was present, Value is nil for null.
type NullableString struct {
	Set   bool
	Value *string
}

// UnmarshalJSON records that the field was present, and its value or null.
func (n *NullableString) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	n.Value = &s
	return nil
}

// MarshalJSON writes the value or null.
func (n NullableString) MarshalJSON() ([]byte, error) {
	if n.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*n.Value)
}

// IsZero reports whether the field was absent (for omitzero).
func (n NullableString) IsZero() bool { return !n.Set }

var handlePattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// validateHandle checks a handle's form (not its uniqueness).
func validateHandle(v *apperr.Validation, field, h string) {
	switch {
	case h == "":
		v.Add(field, "required", "handle is required")
	case len(h) > MaxHandleLen:
		v.Addf(field, "too_long", "handle must be at most %d characters", MaxHandleLen)
	case !handlePattern.MatchString(h):
		v.Add(field, "invalid", "handle must be lower-case letters and digits separated by single hyphens, such as \"linen-shirt\"")
	}
}

// slugify derives a handle from a title: lower case, accents dropped, every
// run of other characters a single hyphen, at most max characters. It returns
// "" when nothing usable is left (a title in a script without Latin letters).
func slugify(s string, max int) string {
	var b strings.Builder
	hyphen := false
	s = strings.ReplaceAll(strings.ToLower(s), "&", " and ")
	for _, r := range norm.NFKD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if repl, ok := transliterations[r]; ok {
			b.WriteString(repl)
			hyphen = false
			continue
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			hyphen = false
			continue
		}
		if !hyphen && b.Len() > 0 {
			b.WriteByte('-')
			hyphen = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > max {
		cut := out[:max]
		// Cut between words when there is a word boundary to cut at.
		if out[max] != '-' {
			if i := strings.LastIndexByte(cut, '-'); i > 0 {
				cut = cut[:i]
			}
		}
		out = strings.TrimRight(cut, "-")
	}
	return out
}

// transliterations covers the Latin letters that do not decompose into a
// base letter and a mark.
var transliterations = map[rune]string{
	'ß': "ss", 'æ': "ae", 'ø': "o", 'œ': "oe", 'đ': "d", 'ł': "l", 'þ': "th", 'ð': "d",
}

// textLen counts characters, not bytes.
func textLen(s string) int { return utf8.RuneCountInString(s) }

// validateProduct checks every invariant of a product that needs no
// database: field lengths and forms, options, variants against the options,
// media URLs and limits. Variant errors name the variant by its index in the
// request ("variants[2].sku"), which is its index in p.Variants until the
// variants are sorted by position.
func validateProduct(v *apperr.Validation, p *Product) {
	switch n := textLen(p.Title); {
	case n == 0:
		v.Add("title", "required", "title is required")
	case n > MaxTitleLen:
		v.Addf("title", "too_long", "title must be at most %d characters", MaxTitleLen)
	}
	if p.Handle != "" {
		validateHandle(v, "handle", p.Handle)
	}
	if textLen(p.Description) > MaxDescriptionLen {
		v.Addf("description", "too_long", "description must be at most %d characters", MaxDescriptionLen)
	}
	if !p.Status.Valid() {
		v.Add("status", "invalid", "status must be draft, published or archived")
	}
	validateCategoryIDs(v, p.CategoryIDs)
	validateOptions(v, p.Options)
	validateVariants(v, p)
	validateMedia(v, p.Media)
	if p.Status == StatusPublished && len(p.Variants) == 0 {
		v.Add("variants", "required", "a published product needs at least one variant")
	}
}

func validateCategoryIDs(v *apperr.Validation, ids []string) {
	if len(ids) > MaxProductCategories {
		v.Addf("category_ids", "too_many", "a product can be in at most %d categories", MaxProductCategories)
		return
	}
	seen := map[string]bool{}
	for i, cid := range ids {
		field := fmt.Sprintf("category_ids[%d]", i)
		switch {
		case !id.Valid(categoryPrefix, cid):
			v.Add(field, "invalid", "must be a category id (cat_…)")
		case seen[cid]:
			v.Add(field, "duplicate", "category is listed twice")
		}
		seen[cid] = true
	}
}

func validateOptions(v *apperr.Validation, opts []Option) {
	if len(opts) > MaxOptions {
		v.Addf("options", "too_many", "a product can have at most %d options", MaxOptions)
		return
	}
	names := map[string]bool{}
	for i, o := range opts {
		field := fmt.Sprintf("options[%d]", i)
		switch n := textLen(o.Name); {
		case n == 0:
			v.Add(field+".name", "required", "option name is required")
		case n > MaxOptionNameLen:
			v.Addf(field+".name", "too_long", "option name must be at most %d characters", MaxOptionNameLen)
		case names[strings.ToLower(o.Name)]:
			v.Addf(field+".name", "duplicate", "option %q is defined twice", o.Name)
		}
		names[strings.ToLower(o.Name)] = true
		switch {
		case len(o.Values) == 0:
			v.Add(field+".values", "required", "an option needs at least one value")
			continue
		case len(o.Values) > MaxOptionValues:
			v.Addf(field+".values", "too_many", "an option can have at most %d values", MaxOptionValues)
			continue
		}
		seen := map[string]bool{}
		for j, val := range o.Values {
			vf := fmt.Sprintf("%s.values[%d]", field, j)
			switch n := textLen(val); {
			case n == 0:
				v.Add(vf, "required", "option values must not be empty")
			case n > MaxOptionValueLen:
				v.Addf(vf, "too_long", "option values must be at most %d characters", MaxOptionValueLen)
			case seen[val]:
				v.Addf(vf, "duplicate", "value %q is listed twice", val)
			}
			seen[val] = true
		}
	}
}

// validSKU: printable ASCII without spaces or slashes, so a SKU can be a URL
// path segment (/admin/inventory/{sku}) as it is.
func validSKU(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}

func validateVariants(v *apperr.Validation, p *Product) {
	if len(p.Variants) > MaxVariants {
		v.Addf("variants", "too_many", "a product can have at most %d variants", MaxVariants)
		return
	}
	optionValues := map[string][]string{}
	for _, o := range p.Options {
		optionValues[o.Name] = o.Values
	}
	skus := map[string]int{}
	combos := map[string]int{}
	for i, vr := range p.Variants {
		field := fmt.Sprintf("variants[%d]", i)
		switch {
		case vr.SKU == "":
			v.Add(field+".sku", "required", "sku is required")
		case len(vr.SKU) > MaxSKULen:
			v.Addf(field+".sku", "too_long", "sku must be at most %d characters", MaxSKULen)
		case !validSKU(vr.SKU):
			v.Add(field+".sku", "invalid", "sku must be printable ASCII without spaces or slashes")
		default:
			if j, dup := skus[vr.SKU]; dup {
				v.Addf(field+".sku", "duplicate", "sku %q is also used by variants[%d]", vr.SKU, j)
			} else {
				skus[vr.SKU] = i
			}
		}
		optionsOK := true
		for _, o := range p.Options {
			val, ok := vr.Options[o.Name]
			if !ok {
				v.Addf(field+".options."+o.Name, "required", "a value of option %q is required", o.Name)
				optionsOK = false
				continue
			}
			if !slices.Contains(o.Values, val) {
				v.Addf(field+".options."+o.Name, "invalid", "%q is not a value of option %q", val, o.Name)
				optionsOK = false
			}
		}
		for _, name := range slices.Sorted(maps.Keys(vr.Options)) {
			if _, ok := optionValues[name]; !ok {
				v.Addf(field+".options."+name, "unknown", "the product has no option %q", name)
				optionsOK = false
			}
		}
		if optionsOK {
			key := comboKey(p.Options, vr.Options)
			if j, dup := combos[key]; dup {
				v.Addf(field+".options", "duplicate", "variants[%d] has the same options", j)
			} else {
				combos[key] = i
			}
		}
		if vr.WeightGrams < 0 || vr.WeightGrams > MaxWeightGrams {
			v.Addf(field+".weight_grams", "out_of_range", "weight_grams must be from 0 to %d", MaxWeightGrams)
		}
		if vr.Position < 0 {
			v.Add(field+".position", "out_of_range", "position must not be negative")
		}
		if len(vr.Attributes) > MaxAttributes {
			v.Addf(field+".attributes", "too_many", "a variant can have at most %d attributes", MaxAttributes)
		} else {
			for _, k := range slices.Sorted(maps.Keys(vr.Attributes)) {
				switch n := textLen(k); {
				case n == 0:
					v.Add(field+".attributes", "invalid", "attribute names must not be empty")
				case n > MaxAttributeKeyLen:
					v.Addf(field+".attributes."+k, "too_long", "attribute names must be at most %d characters", MaxAttributeKeyLen)
				case textLen(vr.Attributes[k]) > MaxAttributeValueLen:
					v.Addf(field+".attributes."+k, "too_long", "attribute values must be at most %d characters", MaxAttributeValueLen)
				}
			}
		}
	}
}

// comboKey identifies a variant's option values in the product's option order.
func comboKey(opts []Option, values map[string]string) string {
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = values[o.Name]
	}
	b, _ := json.Marshal(parts)
	return string(b)
}

// variantTitle derives a variant's title from its option values, in the
// product's option order ("M / White"); a product without options has one
// variant, titled "Default".
func variantTitle(opts []Option, values map[string]string) string {
	if len(opts) == 0 {
		return "Default"
	}
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = values[o.Name]
	}
	return strings.Join(parts, " / ")
}

func validateMedia(v *apperr.Validation, media []Media) {
	if len(media) > MaxMedia {
		v.Addf("media", "too_many", "a product can have at most %d media", MaxMedia)
		return
	}
	for i, m := range media {
		field := fmt.Sprintf("media[%d]", i)
		if m.URL == "" {
			v.Add(field+".url", "required", "url is required")
		} else if len(m.URL) > MaxMediaURLLen {
			v.Addf(field+".url", "too_long", "url must be at most %d characters", MaxMediaURLLen)
		} else if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Add(field+".url", "invalid", "url must be an absolute http or https URL")
		}
		if textLen(m.Alt) > MaxMediaAltLen {
			v.Addf(field+".alt", "too_long", "alt must be at most %d characters", MaxMediaAltLen)
		}
	}
}

// validateCategory checks a category's own fields (not its parent's
// existence, the tree or handle uniqueness, which need the database).
func validateCategory(v *apperr.Validation, c *Category) {
	switch n := textLen(c.Name); {
	case n == 0:
		v.Add("name", "required", "name is required")
	case n > MaxCategoryNameLen:
		v.Addf("name", "too_long", "name must be at most %d characters", MaxCategoryNameLen)
	}
	if c.Handle != "" {
		validateHandle(v, "handle", c.Handle)
	}
	if textLen(c.Description) > MaxCategoryDescriptionLen {
		v.Addf("description", "too_long", "description must be at most %d characters", MaxCategoryDescriptionLen)
	}
	if c.Position < 0 {
		v.Add("position", "out_of_range", "position must not be negative")
	}
	if c.ParentID != nil && !id.Valid(categoryPrefix, *c.ParentID) {
		v.Add("parent_id", "invalid", "must be a category id (cat_…)")
	}
}

// conflictError is the 409 for a unique value already taken.
func conflictError(field, what, value string) error {
	return &apperr.Error{
		Code:    apperr.Conflict,
		Message: fmt.Sprintf("%s %q is already in use", what, value),
		Fields:  []apperr.FieldError{{Field: field, Code: "taken", Message: fmt.Sprintf("%s %q is already in use", what, value)}},
	}
}

func productNotFound(ref string) error {
	return apperr.New(apperr.NotFound, "product %q not found", ref)
}

func variantNotFound(ref string) error {
	return apperr.New(apperr.NotFound, "variant %q not found", ref)
}

// variantBatch returns the distinct ids of a GetVariants request that can
// be variant ids, in the order asked: the others name no variant, so
// GetVariants leaves them out of its answer without a lookup. Every
// implementation counts the batch the same way, before leaving any out.
// Errors: validation_failed naming "id" for more than MaxVariantBatch
// distinct ids.
func variantBatch(variantIDs []string) ([]string, error) {
	seen := make(map[string]bool, len(variantIDs))
	ids := make([]string, 0, len(variantIDs))
	for _, v := range variantIDs {
		if seen[v] {
			continue
		}
		seen[v] = true
		if id.Valid(variantPrefix, v) {
			ids = append(ids, v)
		}
	}
	if len(seen) > MaxVariantBatch {
		var v apperr.Validation
		v.Addf("id", "too_many", "at most %d variant ids at once", MaxVariantBatch)
		return nil, v.Err()
	}
	return ids, nil
}

func categoryNotFound(ref string) error {
	return apperr.New(apperr.NotFound, "category %q not found", ref)
}

func versionConflict(kind string, want, have int64) error {
	return apperr.New(apperr.VersionConflict, "%s is at version %d, not %d; fetch it again and retry", kind, have, want)
}
