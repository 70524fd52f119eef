package catalog

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/soukhq/souk/platform/store"
)

// searchIndex is the full-text search read model over products' titles,
// descriptions and SKUs. Writes happen in the caller's transaction, so the
// index never disagrees with the products it describes; search ranks the
// products matching every term (the last one as a prefix) and pages through
// them by (score, id), lower scores first.
//
// There is one implementation per engine: SQLite's FTS5 with bm25 ranking
// and PostgreSQL's tsvector with ts_rank.
type searchIndex interface {
	// put indexes (or re-indexes) one product.
	put(ctx context.Context, tx *store.Tx, doc searchDoc) error
	// remove drops a product from the index.
	remove(ctx context.Context, tx *store.Tx, productID string) error
	// search returns up to q.limit hits in (score, id) order.
	search(ctx context.Context, db store.Querier, q searchQuery) ([]searchHit, error)
}

// searchDoc is what the index knows of a product.
type searchDoc struct {
	productID   string
	title       string
	description string
	skus        string
}

// searchDocOf makes a product's search document. SKUs are indexed as their
// words ("MUG-350-SND" as "MUG 350 SND"), the way searchTerms splits a
// query: PostgreSQL's parser would otherwise read "-350" as a signed number.
func searchDocOf(p Product) searchDoc {
	skus := make([]string, len(p.Variants))
	for i, v := range p.Variants {
		skus[i] = strings.Join(searchTerms(v.SKU), " ")
	}
	return searchDoc{productID: p.ID, title: p.Title, description: p.Description, skus: strings.Join(skus, " ")}
}

// searchQuery is one page of a search. terms are plain words (letters and
// digits only, see searchTerms), so no user input ever reaches a full-text
// query parser as syntax.
type searchQuery struct {
	terms  []string
	filter productFilter
	after  *searchKey
	limit  int
}

// searchKey is a hit's position in the result order: the keyset cursor.
type searchKey struct {
	score float64
	id    string
}

type searchHit = searchKey

// maxSearchTerms bounds the work one query can ask for.
const maxSearchTerms = 16

// MaxQueryLen is the longest q a product search accepts, in characters.
const MaxQueryLen = 200

// searchTerms splits a user's query into lower-case words of letters and
// digits. Everything else (quotes, operators, column filters, wildcards) is a
// separator, which is what makes the query safe for FTS5 and tsquery alike.
func searchTerms(q string) []string {
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r)
	})
	if len(words) > maxSearchTerms {
		words = words[:maxSearchTerms]
	}
	return words
}

func newSearchIndex(engine store.Engine) searchIndex {
	if engine == store.Postgres {
		return postgresSearch{}
	}
	return sqliteSearch{}
}

// upsertSearchDoc is the same statement on both engines; what differs is
// how each keeps its index over catalog_search in step (FTS5 triggers, a
// generated tsvector column).
func upsertSearchDoc(ctx context.Context, tx *store.Tx, doc searchDoc) error {
	_, err := tx.Exec(ctx, `INSERT INTO catalog_search (product_id, title, description, skus) VALUES (?, ?, ?, ?)
		ON CONFLICT (product_id) DO UPDATE SET title = excluded.title, description = excluded.description, skus = excluded.skus`,
		doc.productID, doc.title, doc.description, doc.skus)
	if err != nil {
		return fmt.Errorf("index product %s: %w", doc.productID, err)
	}
	return nil
}

func deleteSearchDoc(ctx context.Context, tx *store.Tx, productID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM catalog_search WHERE product_id = ?`, productID); err != nil {
		return fmt.Errorf("unindex product %s: %w", productID, err)
	}
	return nil
}

// pageHits runs a search statement whose inner query yields (id, score) rows
// and applies the keyset and the limit around it.
func pageHits(ctx context.Context, db store.Querier, inner string, args []any, q searchQuery) ([]searchHit, error) {
	query := `SELECT id, score FROM (` + inner + `) AS hits`
	if q.after != nil {
		query += ` WHERE score > ? OR (score = ? AND id > ?)`
		args = append(args, q.after.score, q.after.score, q.after.id)
	}
	query += ` ORDER BY score, id LIMIT ?`
	args = append(args, q.limit)
	return store.All(ctx, db, "search products", func(r store.RowScanner) (searchHit, error) {
		var h searchHit
		err := r.Scan(&h.id, &h.score)
		return h, err
	}, query, args...)
}

// sqliteSearch is FTS5 over catalog_search (migrations/sqlite/00002).
type sqliteSearch struct{}

func (sqliteSearch) put(ctx context.Context, tx *store.Tx, doc searchDoc) error {
	return upsertSearchDoc(ctx, tx, doc)
}

func (sqliteSearch) remove(ctx context.Context, tx *store.Tx, productID string) error {
	return deleteSearchDoc(ctx, tx, productID)
}

// Column weights for bm25, in the FTS table's column order: a word in the
// title counts most, then a SKU, then the description.
const sqliteBM25 = `bm25(catalog_search_fts, 10.0, 2.0, 6.0)`

func (sqliteSearch) search(ctx context.Context, db store.Querier, q searchQuery) ([]searchHit, error) {
	where, args := q.filter.sql()
	inner := `SELECT s.product_id AS id, ` + sqliteBM25 + ` AS score
		FROM catalog_search_fts
		JOIN catalog_search s ON s.doc_id = catalog_search_fts.rowid
		JOIN catalog_products p ON p.id = s.product_id
		WHERE catalog_search_fts MATCH ? AND ` + where
	return pageHits(ctx, db, inner, append([]any{fts5Query(q.terms)}, args...), q)
}

// fts5Query quotes every term as an FTS5 string (terms hold no quotes, see
// searchTerms) and ANDs them; the last one matches as a prefix, so results
// follow the shopper's typing.
func fts5Query(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
	}
	parts[len(parts)-1] += "*"
	return strings.Join(parts, " ")
}

// postgresSearch is a tsvector over catalog_search (migrations/postgres/00002).
type postgresSearch struct{}

func (postgresSearch) put(ctx context.Context, tx *store.Tx, doc searchDoc) error {
	return upsertSearchDoc(ctx, tx, doc)
}

func (postgresSearch) remove(ctx context.Context, tx *store.Tx, productID string) error {
	return deleteSearchDoc(ctx, tx, productID)
}

func (postgresSearch) search(ctx context.Context, db store.Querier, q searchQuery) ([]searchHit, error) {
	where, args := q.filter.sql()
	// ts_rank grows with relevance; its negation sorts like bm25 (lower is
	// better), so both engines share the cursor. float8 keeps the value that
	// the cursor carries exact.
	inner := `SELECT s.product_id AS id, (-ts_rank(s.document, query))::float8 AS score
		FROM to_tsquery('english', ?) AS query, catalog_search s
		JOIN catalog_products p ON p.id = s.product_id
		WHERE s.document @@ query AND ` + where
	return pageHits(ctx, db, inner, append([]any{tsQuery(q.terms)}, args...), q)
}

// tsQuery quotes every term as a tsquery lexeme (terms hold no quotes or
// backslashes, see searchTerms), ANDs them, and makes the last a prefix.
func tsQuery(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `'` + strings.ReplaceAll(strings.ReplaceAll(t, `\`, `\\`), `'`, `''`) + `'`
	}
	parts[len(parts)-1] += ":*"
	return strings.Join(parts, " & ")
}
