package catalog

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the catalogue's tables and its search index. Apply it
// with bus.Migrations (the outbox) to the catalogue's database.
var Migrations = store.Migrations{Name: "catalog", FS: migrationsFS}

// The SQL of the catalogue. Every function takes the Querier or Tx to run
// in; the service decides the transaction. None returns sql.ErrNoRows: a
// missing row is an apperr NotFound, or a false "changed" result for the
// conditional writes.

// productFilter narrows a product listing: products in one of statuses (any
// when empty) and in at least one of categoryIDs (any when empty).
type productFilter struct {
	statuses    []Status
	categoryIDs []string
}

// sql returns the filter as a condition on catalog_products aliased p.
func (f productFilter) sql() (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	if len(f.statuses) > 0 {
		conds = append(conds, "p.status IN ("+store.Placeholders(len(f.statuses))+")")
		for _, st := range f.statuses {
			args = append(args, string(st))
		}
	}
	if len(f.categoryIDs) > 0 {
		conds = append(conds, "EXISTS (SELECT 1 FROM catalog_product_categories pc WHERE pc.product_id = p.id AND pc.category_id IN ("+
			store.Placeholders(len(f.categoryIDs))+"))")
		args = append(args, store.Args(f.categoryIDs)...)
	}
	return strings.Join(conds, " AND "), args
}

func (f productFilter) admits(s Status) bool {
	if len(f.statuses) == 0 {
		return true
	}
	for _, x := range f.statuses {
		if x == s {
			return true
		}
	}
	return false
}

// --- products ---

const productColumns = `id, handle, title, description, status, options, media, version, created_at, updated_at, published_at`

func scanProduct(r store.RowScanner) (Product, error) {
	var (
		p              Product
		options, media string
		published      sql.NullTime
	)
	if err := r.Scan(&p.ID, &p.Handle, &p.Title, &p.Description, &p.Status, &options, &media,
		&p.Version, &p.CreatedAt, &p.UpdatedAt, &published); err != nil {
		return Product{}, err
	}
	if err := json.Unmarshal([]byte(options), &p.Options); err != nil {
		return Product{}, fmt.Errorf("decode options of %s: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(media), &p.Media); err != nil {
		return Product{}, fmt.Errorf("decode media of %s: %w", p.ID, err)
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if published.Valid {
		t := published.Time.UTC()
		p.PublishedAt = &t
	}
	p.CategoryIDs, p.Variants = []string{}, []Variant{}
	if p.Options == nil {
		p.Options = []Option{}
	}
	if p.Media == nil {
		p.Media = []Media{}
	}
	return p, nil
}

// loadProducts reads the products with the ids, with their variants and
// categories, in the order of ids; missing ids are skipped. The three reads
// are separate statements: callers outside a write transaction check the
// versions afterwards (see Service.readProducts).
func loadProducts(ctx context.Context, q store.Querier, ids []string) ([]Product, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in := store.Placeholders(len(ids))
	byID := map[string]*Product{}
	err := store.Each(ctx, q, "read products", func(r store.RowScanner) error {
		p, err := scanProduct(r)
		if err != nil {
			return err
		}
		byID[p.ID] = &p
		return nil
	}, `SELECT `+productColumns+` FROM catalog_products WHERE id IN (`+in+`)`, store.Args(ids)...)
	if err != nil {
		return nil, err
	}

	err = store.Each(ctx, q, "read variants", func(r store.RowScanner) error {
		var (
			pid, options, attrs string
			v                   Variant
		)
		if err := r.Scan(&pid, &v.ID, &v.SKU, &v.Title, &options, &v.WeightGrams, &attrs, &v.Position); err != nil {
			return err
		}
		if err := decodeVariantJSON(&v, options, attrs); err != nil {
			return err
		}
		if p := byID[pid]; p != nil {
			p.Variants = append(p.Variants, v)
		}
		return nil
	}, `SELECT product_id, id, sku, title, options, weight_grams, attributes, position
		FROM catalog_variants WHERE product_id IN (`+in+`) ORDER BY product_id, position`, store.Args(ids)...)
	if err != nil {
		return nil, err
	}

	err = store.Each(ctx, q, "read product categories", func(r store.RowScanner) error {
		var pid, cid string
		if err := r.Scan(&pid, &cid); err != nil {
			return err
		}
		if p := byID[pid]; p != nil {
			p.CategoryIDs = append(p.CategoryIDs, cid)
		}
		return nil
	}, `SELECT product_id, category_id FROM catalog_product_categories
		WHERE product_id IN (`+in+`) ORDER BY product_id, position`, store.Args(ids)...)
	if err != nil {
		return nil, err
	}

	out := make([]Product, 0, len(byID))
	for _, id := range ids {
		if p := byID[id]; p != nil {
			out = append(out, *p)
		}
	}
	return out, nil
}

func decodeVariantJSON(v *Variant, options, attrs string) error {
	if err := json.Unmarshal([]byte(options), &v.Options); err != nil {
		return fmt.Errorf("decode options of variant %s: %w", v.ID, err)
	}
	if err := json.Unmarshal([]byte(attrs), &v.Attributes); err != nil {
		return fmt.Errorf("decode attributes of variant %s: %w", v.ID, err)
	}
	if v.Options == nil {
		v.Options = map[string]string{}
	}
	if v.Attributes == nil {
		v.Attributes = map[string]string{}
	}
	return nil
}

// productVersions reads the current version of each product that exists.
func productVersions(ctx context.Context, q store.Querier, ids []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	err := store.Each(ctx, q, "read product versions", func(r store.RowScanner) error {
		var (
			id string
			v  int64
		)
		if err := r.Scan(&id, &v); err != nil {
			return err
		}
		out[id] = v
		return nil
	}, `SELECT id, version FROM catalog_products WHERE id IN (`+store.Placeholders(len(ids))+`)`, store.Args(ids)...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// getProduct reads one product in tx (or any Querier), NotFound when absent.
func getProduct(ctx context.Context, q store.Querier, id string) (Product, error) {
	ps, err := loadProducts(ctx, q, []string{id})
	if err != nil {
		return Product{}, err
	}
	if len(ps) == 0 {
		return Product{}, productNotFound(id)
	}
	return ps[0], nil
}

// productIDByHandle resolves a handle, NotFound when no product has it.
func productIDByHandle(ctx context.Context, q store.Querier, handle string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT id FROM catalog_products WHERE handle = ?`, handle).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", productNotFound(handle)
	}
	if err != nil {
		return "", fmt.Errorf("find product by handle: %w", err)
	}
	return id, nil
}

// listProductIDs pages through products matching f in id (creation) order.
func listProductIDs(ctx context.Context, q store.Querier, f productFilter, afterID string, limit int) ([]string, error) {
	where, args := f.sql()
	if afterID != "" {
		where += " AND p.id > ?"
		args = append(args, afterID)
	}
	args = append(args, limit)
	return store.All(ctx, q, "list products", store.ScanString, `SELECT p.id FROM catalog_products p WHERE `+where+` ORDER BY p.id LIMIT ?`, args...)
}

func insertProductRow(ctx context.Context, tx *store.Tx, p Product) error {
	_, err := tx.Exec(ctx, `INSERT INTO catalog_products (`+productColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.Handle, p.Title, p.Description, string(p.Status), store.JSONText(p.Options), store.JSONText(p.Media),
		p.Version, p.CreatedAt, p.UpdatedAt, p.PublishedAt)
	if store.IsUniqueViolation(err) {
		return conflictError("handle", "handle", p.Handle)
	}
	if err != nil {
		return fmt.Errorf("insert product: %w", err)
	}
	return nil
}

// updateProductRow writes p's own columns if the row is still at version
// expected, in one conditional UPDATE: the check and the write are atomic.
// changed is false when the row was at another version (or gone).
func updateProductRow(ctx context.Context, tx *store.Tx, p Product, expected int64) (changed bool, err error) {
	res, err := tx.Exec(ctx, `UPDATE catalog_products SET handle = ?, title = ?, description = ?, status = ?, options = ?, media = ?,
		version = ?, updated_at = ?, published_at = ? WHERE id = ? AND version = ?`,
		p.Handle, p.Title, p.Description, string(p.Status), store.JSONText(p.Options), store.JSONText(p.Media),
		p.Version, p.UpdatedAt, p.PublishedAt, p.ID, expected)
	if store.IsUniqueViolation(err) {
		return false, conflictError("handle", "handle", p.Handle)
	}
	if err != nil {
		return false, fmt.Errorf("update product: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update product: %w", err)
	}
	return n == 1, nil
}

// deleteProductRow deletes the product (its variants and category links
// cascade) if it is still at version expected.
func deleteProductRow(ctx context.Context, tx *store.Tx, id string, expected int64) (deleted bool, err error) {
	res, err := tx.Exec(ctx, `DELETE FROM catalog_products WHERE id = ? AND version = ?`, id, expected)
	if err != nil {
		return false, fmt.Errorf("delete product: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete product: %w", err)
	}
	return n == 1, nil
}

// replaceVariants makes the product's variant rows those of p. Deleting
// first lets two variants swap SKUs in one update. skuField names each SKU's
// field in the request, for the 409 when another product holds it.
func replaceVariants(ctx context.Context, tx *store.Tx, p Product, skuField map[string]string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM catalog_variants WHERE product_id = ?`, p.ID); err != nil {
		return fmt.Errorf("delete variants: %w", err)
	}
	for _, v := range p.Variants {
		_, err := tx.Exec(ctx, `INSERT INTO catalog_variants (id, product_id, sku, title, options, weight_grams, attributes, position)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, p.ID, v.SKU, v.Title, store.JSONText(v.Options), v.WeightGrams, store.JSONText(v.Attributes), v.Position)
		if store.IsUniqueViolation(err) {
			field := skuField[v.SKU]
			if field == "" {
				field = "variants"
			}
			return conflictError(field, "sku", v.SKU)
		}
		if err != nil {
			return fmt.Errorf("insert variant: %w", err)
		}
	}
	return nil
}

// replaceProductCategories makes the product's category links those of p.
func replaceProductCategories(ctx context.Context, tx *store.Tx, p Product) error {
	if _, err := tx.Exec(ctx, `DELETE FROM catalog_product_categories WHERE product_id = ?`, p.ID); err != nil {
		return fmt.Errorf("delete product categories: %w", err)
	}
	for i, cid := range p.CategoryIDs {
		_, err := tx.Exec(ctx, `INSERT INTO catalog_product_categories (product_id, category_id, position) VALUES (?, ?, ?)`, p.ID, cid, i)
		if store.IsForeignKeyViolation(err) {
			return apperr.New(apperr.Conflict, "category %q was deleted while the product was being saved; retry", cid)
		}
		if err != nil {
			return fmt.Errorf("insert product category: %w", err)
		}
	}
	return nil
}

// variantRef reads a variant with its product and the product's
// categories, in one statement. Errors: not_found, or the database's.
func variantRef(ctx context.Context, q store.Querier, variantID string) (VariantRef, error) {
	refs, err := variantRefs(ctx, q, []string{variantID})
	if err != nil {
		return VariantRef{}, err
	}
	r, ok := refs[variantID]
	if !ok {
		return VariantRef{}, variantNotFound(variantID)
	}
	return r, nil
}

// variantRefs reads the variants with the ids that exist, by id, with their
// products and the products' categories, in one statement (a row per
// category), so all of them are of one state of the database.
func variantRefs(ctx context.Context, q store.Querier, ids []string) (map[string]VariantRef, error) {
	out := make(map[string]VariantRef, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	err := store.Each(ctx, q, "read variants", func(row store.RowScanner) error {
		var (
			r              VariantRef
			options, attrs string
			category       sql.NullString
		)
		if err := row.Scan(&r.ID, &r.SKU, &r.Title, &options, &r.WeightGrams, &attrs, &r.Position,
			&r.ProductID, &r.ProductTitle, &r.ProductHandle, &r.ProductStatus, &category); err != nil {
			return err
		}
		if seen, ok := out[r.ID]; ok { // the same variant, another category
			seen.ProductCategoryIDs = append(seen.ProductCategoryIDs, category.String)
			out[r.ID] = seen
			return nil
		}
		if err := decodeVariantJSON(&r.Variant, options, attrs); err != nil {
			return err
		}
		r.ProductCategoryIDs = []string{}
		if category.Valid {
			r.ProductCategoryIDs = append(r.ProductCategoryIDs, category.String)
		}
		out[r.ID] = r
		return nil
	}, `SELECT v.id, v.sku, v.title, v.options, v.weight_grams, v.attributes, v.position,
			p.id, p.title, p.handle, p.status, pc.category_id
		FROM catalog_variants v JOIN catalog_products p ON p.id = v.product_id
		LEFT JOIN catalog_product_categories pc ON pc.product_id = p.id
		WHERE v.id IN (`+store.Placeholders(len(ids))+`) ORDER BY v.id, pc.position`, store.Args(ids)...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// freeHandle returns base, or base with the smallest numeric suffix ("-2",
// "-3", …) that no row of table uses. table is one of the catalogue's own
// table names, never input.
func freeHandle(ctx context.Context, q store.Querier, table, base string) (string, error) {
	const maxSuffixLen = 5 // "-9999"
	if len(base) > MaxHandleLen-maxSuffixLen {
		base = strings.TrimRight(base[:MaxHandleLen-maxSuffixLen], "-")
	}
	handles, err := store.All(ctx, q, "find free handle", store.ScanString, `SELECT handle FROM `+table+` WHERE handle = ? OR handle LIKE ?`, base, base+"-%")
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, h := range handles {
		taken[h] = true
	}
	if !taken[base] {
		return base, nil
	}
	for n := 2; n < 10000; n++ {
		if h := base + "-" + strconv.Itoa(n); !taken[h] {
			return h, nil
		}
	}
	return "", conflictError("handle", "handle", base)
}

// lockRow makes concurrent writers of one row without a version to check
// (no If-Match: last writer wins) queue instead of racing. On PostgreSQL it
// takes the row lock up front (SELECT … FOR UPDATE), so the conditional
// UPDATE that follows finds the version it read; on SQLite it does nothing,
// as a write transaction already holds the database's write lock. table is
// one of the catalogue's own tables, never input.
func lockRow(ctx context.Context, tx *store.Tx, table, id string) error {
	if tx.Engine() != store.Postgres {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM `+table+` WHERE id = ? FOR UPDATE`, id)
	if err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	return nil
}

// --- categories ---

const categoryColumns = `id, name, handle, description, parent_id, position, version, created_at, updated_at`

func scanCategory(r store.RowScanner) (Category, error) {
	var (
		c      Category
		parent sql.NullString
	)
	if err := r.Scan(&c.ID, &c.Name, &c.Handle, &c.Description, &parent, &c.Position, &c.Version, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return Category{}, err
	}
	if parent.Valid {
		c.ParentID = &parent.String
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

func getCategory(ctx context.Context, q store.Querier, id string) (Category, error) {
	c, err := scanCategory(q.QueryRow(ctx, `SELECT `+categoryColumns+` FROM catalog_categories WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Category{}, categoryNotFound(id)
	}
	if err != nil {
		return Category{}, fmt.Errorf("read category: %w", err)
	}
	return c, nil
}

// allCategories reads the whole tree (categories are few) in sibling order.
func allCategories(ctx context.Context, q store.Querier) ([]Category, error) {
	return store.All(ctx, q, "read categories", scanCategory, `SELECT `+categoryColumns+` FROM catalog_categories ORDER BY position, name, id`)
}

// listCategories pages through categories in id (creation) order.
func listCategories(ctx context.Context, q store.Querier, afterID string, limit int) ([]Category, error) {
	return store.All(ctx, q, "list categories", scanCategory, `SELECT `+categoryColumns+` FROM catalog_categories WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

func insertCategoryRow(ctx context.Context, tx *store.Tx, c Category) error {
	_, err := tx.Exec(ctx, `INSERT INTO catalog_categories (`+categoryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.Handle, c.Description, c.ParentID, c.Position, c.Version, c.CreatedAt, c.UpdatedAt)
	switch {
	case store.IsUniqueViolation(err):
		return conflictError("handle", "handle", c.Handle)
	case store.IsForeignKeyViolation(err):
		return apperr.New(apperr.Conflict, "parent category was deleted meanwhile; retry")
	case err != nil:
		return fmt.Errorf("insert category: %w", err)
	}
	return nil
}

// updateCategoryRow writes c if the row is still at version expected.
func updateCategoryRow(ctx context.Context, tx *store.Tx, c Category, expected int64) (changed bool, err error) {
	res, err := tx.Exec(ctx, `UPDATE catalog_categories SET name = ?, handle = ?, description = ?, parent_id = ?, position = ?,
		version = ?, updated_at = ? WHERE id = ? AND version = ?`,
		c.Name, c.Handle, c.Description, c.ParentID, c.Position, c.Version, c.UpdatedAt, c.ID, expected)
	switch {
	case store.IsUniqueViolation(err):
		return false, conflictError("handle", "handle", c.Handle)
	case store.IsForeignKeyViolation(err):
		return false, apperr.New(apperr.Conflict, "parent category was deleted meanwhile; retry")
	case err != nil:
		return false, fmt.Errorf("update category: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update category: %w", err)
	}
	return n == 1, nil
}

// deleteCategoryRow deletes the category if it is still at version expected.
func deleteCategoryRow(ctx context.Context, tx *store.Tx, id string, expected int64) (deleted bool, err error) {
	res, err := tx.Exec(ctx, `DELETE FROM catalog_categories WHERE id = ? AND version = ?`, id, expected)
	if store.IsForeignKeyViolation(err) {
		return false, apperr.New(apperr.Conflict, "category %q gained a subcategory or product meanwhile; retry", id)
	}
	if err != nil {
		return false, fmt.Errorf("delete category: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete category: %w", err)
	}
	return n == 1, nil
}

func countChildren(ctx context.Context, q store.Querier, id string) (int, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM catalog_categories WHERE parent_id = ?`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("count subcategories: %w", err)
	}
	return n, nil
}

func productIDsInCategory(ctx context.Context, q store.Querier, categoryID string) ([]string, error) {
	return store.All(ctx, q, "list products of category", store.ScanString, `SELECT product_id FROM catalog_product_categories WHERE category_id = ? ORDER BY product_id`, categoryID)
}

// existingCategories reports which of the ids name a category.
func existingCategories(ctx context.Context, q store.Querier, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	found, err := store.All(ctx, q, "check categories", store.ScanString, `SELECT id FROM catalog_categories WHERE id IN (`+store.Placeholders(len(ids))+`)`, store.Args(ids)...)
	if err != nil {
		return nil, err
	}
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}
