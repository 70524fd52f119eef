package catalog

import (
	"context"
	"fmt"
	"strings"

	"github.com/soukhq/souk/platform/store"
)

// seedKey marks, in catalog_meta, that the demo catalogue was loaded.
const seedKey = "demo_catalog_seeded"

// Seed loads the demo catalogue — a small category tree and 21 published
// products with options, variants and media — once per database: the mark
// is written in the same transaction as the data, so deleting demo products
// later never brings them back, and of two processes seeding at once only
// one loads anything. seeded tells whether this call loaded it. Products are
// created (and announced) like any other, through the outbox.
func Seed(ctx context.Context, s *Service) (seeded bool, err error) {
	err = s.inTx(ctx, func(tx *store.Tx) error {
		seeded = false
		claimed, err := store.Claim(ctx, tx, "catalog_meta", seedKey, "v1", s.now())
		if err != nil || !claimed {
			return err
		}
		ids := map[string]string{} // demo category key → id
		for _, dc := range demoCategories {
			in := CategoryInput{Name: dc.name, Description: dc.description, Position: dc.position}
			if dc.parent != "" {
				parent := ids[dc.parent]
				in.ParentID = &parent
			}
			c, err := s.createCategory(ctx, tx, in)
			if err != nil {
				return fmt.Errorf("category %q: %w", dc.name, err)
			}
			ids[dc.key] = c.ID
		}
		for _, dp := range demoProducts {
			in := dp.input(ids)
			if _, err := s.createProduct(ctx, tx, in); err != nil {
				return fmt.Errorf("product %q: %w", dp.title, err)
			}
		}
		seeded = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("seed demo catalogue: %w", err)
	}
	if seeded {
		s.log.InfoContext(ctx, "demo catalogue loaded", "categories", len(demoCategories), "products", len(demoProducts))
	}
	return seeded, nil
}

type demoCategory struct {
	key, parent, name, description string
	position                       int
}

var demoCategories = []demoCategory{
	{key: "apparel", name: "Apparel", description: "Clothing made to be worn for years.", position: 0},
	{key: "shirts", parent: "apparel", name: "Shirts", description: "Linen, oxford cloth, flannel and chambray.", position: 0},
	{key: "knitwear", parent: "apparel", name: "Knitwear", description: "Merino, lambswool, cashmere and alpaca knits.", position: 1},
	{key: "home", name: "Home", description: "Things for the house that get better with use.", position: 1},
	{key: "kitchen", parent: "home", name: "Kitchen", description: "Cookware, tableware and tools.", position: 0},
	{key: "accessories", name: "Accessories", description: "Bags, small leather goods, hats and scarves.", position: 2},
}

// demoOption is an option with a SKU code for each value.
type demoOption struct {
	name   string
	values []string
	codes  []string
}

type demoProduct struct {
	title, description, skuPrefix string
	categories                    []string // demo category keys
	options                       []demoOption
	weightGrams                   int64
	attributes                    map[string]string
	images                        int
}

// input builds the product: one variant per combination of option values,
// SKU = prefix plus each value's code ("LIN-SHIRT-S-WHT").
func (d demoProduct) input(categoryIDs map[string]string) ProductInput {
	in := ProductInput{Title: d.title, Description: d.description, Status: StatusPublished}
	for _, k := range d.categories {
		in.CategoryIDs = append(in.CategoryIDs, categoryIDs[k])
	}
	for _, o := range d.options {
		in.Options = append(in.Options, Option{Name: o.name, Values: o.values})
	}
	combos := []struct {
		values map[string]string
		codes  []string
	}{{values: map[string]string{}}}
	for _, o := range d.options {
		var next []struct {
			values map[string]string
			codes  []string
		}
		for _, c := range combos {
			for i, v := range o.values {
				vals := map[string]string{o.name: v}
				for k, x := range c.values {
					vals[k] = x
				}
				next = append(next, struct {
					values map[string]string
					codes  []string
				}{vals, append(append([]string(nil), c.codes...), o.codes[i])})
			}
		}
		combos = next
	}
	for _, c := range combos {
		in.Variants = append(in.Variants, VariantInput{
			SKU:         strings.Join(append([]string{d.skuPrefix}, c.codes...), "-"),
			Options:     c.values,
			WeightGrams: d.weightGrams,
			Attributes:  d.attributes,
		})
	}
	slug := slugify(d.title, MaxHandleLen)
	for i := 1; i <= d.images; i++ {
		in.Media = append(in.Media, Media{
			URL: fmt.Sprintf("https://picsum.photos/seed/souk-%s-%d/800/1000", slug, i),
			Alt: fmt.Sprintf("%s, view %d", d.title, i),
		})
	}
	return in
}

var (
	sizesSML   = demoOption{name: "size", values: []string{"S", "M", "L"}, codes: []string{"S", "M", "L"}}
	sizesSMLXL = demoOption{name: "size", values: []string{"S", "M", "L", "XL"}, codes: []string{"S", "M", "L", "XL"}}
)

func colors(pairs ...string) demoOption {
	o := demoOption{name: "color"}
	for i := 0; i+1 < len(pairs); i += 2 {
		o.values = append(o.values, pairs[i])
		o.codes = append(o.codes, pairs[i+1])
	}
	return o
}

var demoProducts = []demoProduct{
	{
		title:       "Linen Shirt",
		description: "A relaxed shirt in washed European linen that softens with every wear. Mother-of-pearl buttons, a single chest pocket and a curved hem that works tucked or untucked.",
		skuPrefix:   "LIN-SHIRT", categories: []string{"shirts"},
		options:     []demoOption{sizesSMLXL, colors("White", "WHT", "Sky Blue", "SKY")},
		weightGrams: 300, attributes: map[string]string{"material": "100% linen", "care": "Machine wash 30 °C"}, images: 2,
	},
	{
		title:       "Oxford Button-Down Shirt",
		description: "The classic button-down in a sturdy cotton oxford weave, with a soft-rolling collar and box pleat. Dresses up or down.",
		skuPrefix:   "OXF-SHIRT", categories: []string{"shirts"},
		options:     []demoOption{sizesSMLXL, colors("White", "WHT", "Blue", "BLU")},
		weightGrams: 320, attributes: map[string]string{"material": "100% cotton oxford", "fit": "Regular"}, images: 2,
	},
	{
		title:       "Flannel Overshirt",
		description: "Brushed heavyweight cotton flannel cut roomy enough to layer over a tee or a knit. Two flap pockets and horn-effect buttons.",
		skuPrefix:   "FLN-SHIRT", categories: []string{"shirts"},
		options:     []demoOption{sizesSML, colors("Red Check", "RED", "Green Check", "GRN")},
		weightGrams: 480, attributes: map[string]string{"material": "100% brushed cotton"}, images: 2,
	},
	{
		title:       "Chambray Work Shirt",
		description: "Indigo-dyed chambray with triple-stitched seams and two button-through chest pockets, after the work shirts of the 1940s.",
		skuPrefix:   "CHB-SHIRT", categories: []string{"shirts"},
		options:     []demoOption{sizesSMLXL},
		weightGrams: 340, attributes: map[string]string{"material": "100% cotton chambray"}, images: 1,
	},
	{
		title:       "Breton Striped Tee",
		description: "A long-sleeved boat-neck tee in thick cotton jersey with the traditional navy stripes. Made in France.",
		skuPrefix:   "BRT-TEE", categories: []string{"shirts"},
		options:     []demoOption{{name: "size", values: []string{"XS", "S", "M", "L"}, codes: []string{"XS", "S", "M", "L"}}},
		weightGrams: 260, attributes: map[string]string{"material": "100% cotton jersey", "origin": "France"}, images: 2,
	},
	{
		title:       "Merino Crew Sweater",
		description: "Fine-gauge extra-fine merino wool, light enough for spring and warm enough for winter under a coat. Ribbed cuffs and hem.",
		skuPrefix:   "MER-CREW", categories: []string{"knitwear"},
		options:     []demoOption{sizesSMLXL, colors("Charcoal", "CHA", "Navy", "NVY", "Oat", "OAT")},
		weightGrams: 280, attributes: map[string]string{"material": "100% extra-fine merino wool", "care": "Hand wash cold"}, images: 3,
	},
	{
		title:       "Cable Knit Cardigan",
		description: "A chunky shawl-collar cardigan with traditional cable panels and leather-effect buttons. Knitted in a wool and alpaca blend.",
		skuPrefix:   "CBL-CARD", categories: []string{"knitwear"},
		options:     []demoOption{sizesSML, colors("Cream", "CRM", "Forest", "FOR")},
		weightGrams: 750, attributes: map[string]string{"material": "70% wool, 30% alpaca"}, images: 2,
	},
	{
		title:       "Cashmere Turtleneck",
		description: "Two-ply Mongolian cashmere in a slim roll neck. Soft against the skin and remarkably warm for its weight.",
		skuPrefix:   "CSH-TNK", categories: []string{"knitwear"},
		options:     []demoOption{sizesSML, colors("Camel", "CML", "Black", "BLK")},
		weightGrams: 260, attributes: map[string]string{"material": "100% cashmere", "care": "Dry clean or hand wash"}, images: 2,
	},
	{
		title:       "Fisherman Rib Jumper",
		description: "A heavy British wool jumper in a dense fisherman rib, made to keep out the wind on a harbour wall.",
		skuPrefix:   "FSH-JMP", categories: []string{"knitwear"},
		options:     []demoOption{sizesSMLXL},
		weightGrams: 820, attributes: map[string]string{"material": "100% British wool", "origin": "United Kingdom"}, images: 1,
	},
	{
		title:       "Enamel Dutch Oven",
		description: "Cast iron coated in glossy enamel, for slow braises, bread and stews. Oven safe to 250 °C and works on every hob, induction included.",
		skuPrefix:   "ENM-DOV", categories: []string{"kitchen"},
		options: []demoOption{
			{name: "capacity", values: []string{"3.5 L", "5.5 L"}, codes: []string{"35", "55"}},
			colors("Cherry", "CHR", "Slate", "SLT"),
		},
		weightGrams: 4800, attributes: map[string]string{"material": "Enamelled cast iron"}, images: 2,
	},
	{
		title:       "Carbon Steel Skillet",
		description: "A pre-seasoned carbon steel pan that heats fast and sears hard, and turns naturally non-stick with use.",
		skuPrefix:   "CSK", categories: []string{"kitchen"},
		options:     []demoOption{{name: "diameter", values: []string{"20 cm", "26 cm", "30 cm"}, codes: []string{"20", "26", "30"}}},
		weightGrams: 1500, attributes: map[string]string{"material": "Carbon steel", "care": "Hand wash, dry and oil"}, images: 1,
	},
	{
		title:       "Stoneware Mug",
		description: "A generous 350 ml mug, wheel-thrown and glazed by hand, so no two are quite alike. Dishwasher and microwave safe.",
		skuPrefix:   "MUG-350", categories: []string{"kitchen"},
		options:     []demoOption{colors("Sand", "SND", "Sage", "SGE", "Ink", "INK")},
		weightGrams: 380, attributes: map[string]string{"capacity": "350 ml", "material": "Stoneware"}, images: 2,
	},
	{
		title:       "Olive Wood Cutting Board",
		description: "Cut from a single piece of Tunisian olive wood with its grain left to show. Gentle on knife edges.",
		skuPrefix:   "OWB", categories: []string{"kitchen"},
		options:     []demoOption{{name: "size", values: []string{"Small", "Large"}, codes: []string{"S", "L"}}},
		weightGrams: 900, attributes: map[string]string{"material": "Olive wood", "care": "Hand wash, oil monthly"}, images: 1,
	},
	{
		title:       "Linen Tea Towel Set",
		description: "Three tea towels in stonewashed linen that dry glasses without lint and get more absorbent with every wash.",
		skuPrefix:   "LTT", categories: []string{"kitchen"},
		options:     []demoOption{colors("Natural", "NAT", "Indigo", "IND")},
		weightGrams: 240, attributes: map[string]string{"material": "100% linen", "pieces": "3"}, images: 1,
	},
	{
		title:       "Pour-Over Coffee Set",
		description: "A borosilicate glass carafe with a ceramic dripper and fifty paper filters: everything for a clean, bright cup.",
		skuPrefix:   "POC-SET", categories: []string{"kitchen"},
		weightGrams: 950, attributes: map[string]string{"capacity": "600 ml"}, images: 2,
	},
	{
		title:       "Waffle Cotton Throw",
		description: "A honeycomb-weave throw in organic cotton, light enough for summer evenings and big enough for two.",
		skuPrefix:   "WCT", categories: []string{"home"},
		options:     []demoOption{colors("Stone", "STN", "Rust", "RST")},
		weightGrams: 1100, attributes: map[string]string{"material": "100% organic cotton", "size": "130 × 180 cm"}, images: 2,
	},
	{
		title:       "Beeswax Pillar Candle",
		description: "Poured from pure beeswax with a cotton wick. Burns slowly and cleanly with a faint scent of honey.",
		skuPrefix:   "BWC", categories: []string{"home"},
		options:     []demoOption{{name: "size", values: []string{"Small", "Medium", "Large"}, codes: []string{"S", "M", "L"}}},
		weightGrams: 400, attributes: map[string]string{"material": "Beeswax"}, images: 1,
	},
	{
		title:       "Leather Card Holder",
		description: "Four card slots and a centre pocket in vegetable-tanned leather, hand-stitched, that darkens beautifully with age.",
		skuPrefix:   "LCH", categories: []string{"accessories"},
		options:     []demoOption{colors("Tan", "TAN", "Black", "BLK")},
		weightGrams: 40, attributes: map[string]string{"material": "Vegetable-tanned leather"}, images: 2,
	},
	{
		title:       "Canvas Tote Bag",
		description: "Heavy 16 oz cotton canvas with long leather handles and an inner zip pocket. Carries a week's shopping.",
		skuPrefix:   "CNV-TOTE", categories: []string{"accessories"},
		weightGrams: 520, attributes: map[string]string{"material": "16 oz cotton canvas"}, images: 2,
	},
	{
		title:       "Lambswool Beanie",
		description: "A ribbed beanie in soft Scottish lambswool with a deep turn-up.",
		skuPrefix:   "LWB", categories: []string{"accessories", "knitwear"},
		options:     []demoOption{colors("Grey", "GRY", "Mustard", "MST", "Navy", "NVY")},
		weightGrams: 90, attributes: map[string]string{"material": "100% lambswool", "origin": "Scotland"}, images: 1,
	},
	{
		title:       "Alpaca Scarf",
		description: "A long, brushed baby alpaca scarf, feather-light and warmer than wool.",
		skuPrefix:   "ALP-SCF", categories: []string{"accessories", "knitwear"},
		options:     []demoOption{colors("Oat", "OAT", "Charcoal", "CHA")},
		weightGrams: 180, attributes: map[string]string{"material": "100% baby alpaca"}, images: 1,
	},
}
