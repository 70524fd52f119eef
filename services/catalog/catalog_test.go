package catalog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var sampleTime = time.Date(2026, 11, 21, 21, 48, 0, 0, time.UTC)

func TestSlugify(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Linen Shirt", "linen-shirt"},
		{"  Linen   Shirt!! ", "linen-shirt"},
		{"Crème Brûlée Dish", "creme-brulee-dish"},
		{"Straße & Søn", "strasse-and-son"},
		{"Home&Living", "home-and-living"},
		{"Oxford Button-Down Shirt", "oxford-button-down-shirt"},
		{"3.5 L Dutch Oven", "3-5-l-dutch-oven"},
		{"---", ""},
		{"日本の茶碗", ""},
		{strings.Repeat("ab ", 60), strings.TrimRight(strings.Repeat("ab-", 33), "-")}, // cut between words, within 100
		{strings.Repeat("x", 120), strings.Repeat("x", 100)},
	} {
		got := slugify(tt.in, MaxHandleLen)
		if got != tt.want {
			t.Errorf("slugify(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got != "" && !handlePattern.MatchString(got) {
			t.Errorf("slugify(%q) = %q is not a valid handle", tt.in, got)
		}
	}
}

func TestSearchTerms(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"Linen Shirt", []string{"linen", "shirt"}},
		{`"linen" OR shirt*`, []string{"linen", "or", "shirt"}},
		{"LIN-SHIRT-S-WHT", []string{"lin", "shirt", "s", "wht"}},
		{`title:linen NEAR(a b)`, []string{"title", "linen", "near", "a", "b"}},
		{`'; DROP TABLE x; --`, []string{"drop", "table", "x"}},
		{"Crème brûlée", []string{"crème", "brûlée"}},
		{"!!! ***", nil},
		{strings.Repeat("w ", 40), slices.Repeat([]string{"w"}, maxSearchTerms)},
	} {
		if got := searchTerms(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("searchTerms(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFullTextQueries(t *testing.T) {
	terms := []string{"linen", "shirt"}
	if got, want := fts5Query(terms), `"linen" "shirt"*`; got != want {
		t.Errorf("fts5Query = %s, want %s", got, want)
	}
	if got, want := tsQuery(terms), `'linen' & 'shirt':*`; got != want {
		t.Errorf("tsQuery = %s, want %s", got, want)
	}
	// Defence in depth: even terms that searchTerms would never produce stay quoted.
	if got, want := fts5Query([]string{`a"b`}), `"a""b"*`; got != want {
		t.Errorf("fts5Query = %s, want %s", got, want)
	}
	if got, want := tsQuery([]string{`a'b\`}), `'a''b\\':*`; got != want {
		t.Errorf("tsQuery = %s, want %s", got, want)
	}
}

func TestVariantTitle(t *testing.T) {
	opts := []Option{{Name: "size", Values: []string{"M"}}, {Name: "color", Values: []string{"White"}}}
	if got := variantTitle(opts, map[string]string{"color": "White", "size": "M"}); got != "M / White" {
		t.Errorf("variantTitle = %q", got)
	}
	if got := variantTitle(nil, map[string]string{}); got != "Default" {
		t.Errorf("variantTitle without options = %q", got)
	}
}

func TestCategoryPatchParentID(t *testing.T) {
	for _, tt := range []struct {
		body      string
		set, null bool
	}{
		{`{}`, false, true},
		{`{"parent_id": null}`, true, true},
		{`{"parent_id": "cat_1"}`, true, false},
	} {
		var p CategoryPatch
		if err := json.Unmarshal([]byte(tt.body), &p); err != nil {
			t.Fatal(err)
		}
		if p.ParentID.Set != tt.set || (p.ParentID.Value == nil) != tt.null {
			t.Errorf("%s → %+v", tt.body, p.ParentID)
		}
	}
	var p CategoryPatch
	if err := json.Unmarshal([]byte(`{"parent_id": 3}`), &p); err == nil {
		t.Error("a number parent_id was accepted")
	}
	for _, tt := range []struct {
		patch CategoryPatch
		want  string
	}{
		{CategoryPatch{}, `{}`},
		{CategoryPatch{ParentID: NullableString{Set: true}}, `{"parent_id":null}`},
		{CategoryPatch{ParentID: NullableString{Set: true, Value: ptr("cat_1")}}, `{"parent_id":"cat_1"}`},
	} {
		if b, err := json.Marshal(tt.patch); err != nil || string(b) != tt.want {
			t.Errorf("marshal %+v = %s, %v; want %s", tt.patch, b, err, tt.want)
		}
	}
}

func TestSameContentIgnoresBookkeeping(t *testing.T) {
	a := Product{ID: "prod_1", Title: "A", Version: 1, UpdatedAt: sampleTime}
	b := a
	b.Version, b.UpdatedAt, b.PublishedAt = 2, sampleTime.Add(time.Hour), &sampleTime
	if !sameContent(a, b) {
		t.Error("bookkeeping fields count as content")
	}
	b.Title = "B"
	if sameContent(a, b) {
		t.Error("a title change is not a change")
	}
}
