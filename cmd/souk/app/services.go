package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/identity"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/notify"
	"github.com/soukhq/souk/services/orders"
	"github.com/soukhq/souk/services/payments"
	"github.com/soukhq/souk/services/pricing"
)

func (a *App) initIdentity(ctx context.Context) error {
	u, err := a.openUnit(ctx, "identity")
	if err != nil {
		return err
	}
	proxies, _ := a.cfg.trustedProxies() // checked by Validate
	svc := identity.New(u.db, u.outbox, a.logger.With("component", "identity"), identity.Config{TrustedProxies: proxies})
	u.routes = svc.Routes()
	a.background("identity-cleanup", func(ctx context.Context) error {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := svc.Cleanup(ctx); err != nil {
					a.logger.Warn("identity cleanup failed", "error", err)
				}
			}
		}
	})
	a.identity = svc
	a.authn, a.authz = svc, identity.Policy{}

	secret, err := svc.Bootstrap(ctx, a.cfg.AdminAPIKey)
	if err != nil {
		return err
	}
	if secret != "" {
		path := filepath.Join(a.cfg.DataDir, "admin-api-key")
		if err := os.MkdirAll(a.cfg.DataDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin key: %w", err)
		}
		fmt.Fprintf(a.stdout, "\nAn admin API key was created (shown this once; also saved to %s):\n\n    %s\n\nUse it as: curl -H 'Authorization: Bearer %s' http://%s/admin/products\n\n", path, secret, secret, a.cfg.Addr)
		a.logger.Info("admin API key generated", "path", path)
	}
	return nil
}

func (a *App) initPricing(ctx context.Context) error {
	u, err := a.openUnit(ctx, "pricing")
	if err != nil {
		return err
	}
	a.pricing = pricing.New(u.db, u.outbox, a.logger.With("component", "pricing"), pricing.Config{DefaultCountry: a.cfg.Country}, pricing.WithMetrics(a.registry))
	u.routes = a.pricing.Routes()
	return nil
}

func (a *App) initInventory(ctx context.Context) error {
	u, err := a.openUnit(ctx, "inventory")
	if err != nil {
		return err
	}
	a.inventory = inventory.New(u.db, u.outbox, a.logger.With("component", "inventory"), inventory.Config{}, inventory.WithMetrics(a.registry))
	u.routes = a.inventory.Routes()
	a.background("inventory-expiry", a.inventory.Run)
	return nil
}

func (a *App) initCatalog(ctx context.Context) error {
	u, err := a.openUnit(ctx, "catalog")
	if err != nil {
		return err
	}
	var (
		prices catalog.PriceSource
		stock  catalog.StockSource
	)
	if p, err := a.pricingClient(); err == nil {
		prices = p
	}
	if inv, err := a.inventoryClient(); err == nil {
		stock = stockSource{inv}
	}
	a.catalog = catalog.New(u.db, u.outbox, a.logger.With("component", "catalog"),
		catalog.WithStorefront(prices, stock, a.cfg.Currency), catalog.WithMetrics(a.registry))
	u.routes = a.catalog.Routes()
	return nil
}

func (a *App) initCart(ctx context.Context) error {
	cat, err := a.catalogClient()
	if err != nil {
		return fmt.Errorf("cart: %w", err)
	}
	pr, err := a.pricingClient()
	if err != nil {
		return fmt.Errorf("cart: %w", err)
	}
	u, err := a.openUnit(ctx, "cart")
	if err != nil {
		return err
	}
	a.cart = cart.New(u.db, u.outbox, a.logger.With("component", "cart"), cat, pr, cart.Config{
		CustomerGroups: func(_ context.Context, p auth.Principal) []string { return p.Groups },
	})
	u.routes = a.cart.Routes()
	a.background("cart-expiry", a.cart.Run)
	return nil
}

func (a *App) initPayments(ctx context.Context) error {
	u, err := a.openUnit(ctx, "payments")
	if err != nil {
		return err
	}
	svc, err := payments.New(u.db, u.outbox, a.logger.With("component", "payments"), payments.Config{
		Primary: a.cfg.PaymentsPrimary, Secondary: a.cfg.PaymentsSecondary,
		StripeAPIKey: a.cfg.StripeAPIKey, StripeBaseURL: a.cfg.StripeBaseURL,
	}, payments.WithMetrics(a.registry))
	if err != nil {
		return err
	}
	a.payments = svc
	u.routes = svc.Routes()
	a.background("payments-reconcile", func(ctx context.Context) error { return svc.Run(ctx, 30*time.Second) })
	return nil
}

func (a *App) initNotify(ctx context.Context) error {
	u, err := a.openUnit(ctx, "notify")
	if err != nil {
		return err
	}
	svc, err := notify.New(u.db, u.outbox, a.logger.With("component", "notify"), notify.Config{
		SMTPAddr: a.cfg.SMTPAddr, SMTPFrom: a.cfg.SMTPFrom,
		AllowPrivateNetworks: a.cfg.WebhooksAllowPrivate, AllowHTTP: a.cfg.WebhooksAllowPrivate,
	}, notify.WithMetrics(a.registry))
	if err != nil {
		return err
	}
	a.notify = svc
	u.routes = svc.Routes()
	// The consumers live as long as the process (not the start-up context);
	// shutdown drains them first.
	if err := svc.Subscribe(a.bgCtx, a.bus); err != nil {
		return err
	}
	a.onStop(func(ctx context.Context) error { return svc.Stop(ctx) })
	a.background("notify", svc.Run)
	return nil
}

func (a *App) initOrders(ctx context.Context) error {
	var deps orders.Deps
	var err error
	if deps.Carts, err = a.cartClient(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	if deps.Pricing, err = a.pricingClient(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	if deps.Inventory, err = a.inventoryClient(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	if deps.Payments, err = a.paymentsClient(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	u, err := a.openUnit(ctx, "orders")
	if err != nil {
		return err
	}
	svc, err := orders.New(u.db, u.outbox, a.logger.With("component", "orders"), orders.Config{}, deps, orders.WithMetrics(a.registry))
	if err != nil {
		return err
	}
	a.orders = svc
	u.routes = svc.Routes()
	if err := svc.Subscribe(ctx, a.bus); err != nil {
		return err
	}
	// The executor resumes every unfinished saga on start.
	a.background("orders-saga", svc.Run)
	return nil
}

func (a *App) cartClient() (orders.CartClient, error) {
	if a.cart != nil {
		return a.cart, nil
	}
	if u, ok := a.cfg.Remote["cart"]; ok {
		return cart.NewHTTPClient(u, a.serviceHTTP, a.cfg.ServiceToken), nil
	}
	return nil, errNeeds("cart")
}

func (a *App) paymentsClient() (payments.Client, error) {
	if a.payments != nil {
		return a.payments, nil
	}
	if u, ok := a.cfg.Remote["payments"]; ok {
		return payments.NewHTTPClient(u, a.serviceHTTP), nil
	}
	return nil, errNeeds("payments")
}

// The clients of other services: the local service when this process runs
// it, else an HTTP client of its --remote URL.

func (a *App) catalogClient() (catalog.Client, error) {
	if a.catalog != nil {
		return a.catalog, nil
	}
	if u, ok := a.cfg.Remote["catalog"]; ok {
		return catalog.NewHTTPClient(u, a.serviceHTTP), nil
	}
	return nil, errNeeds("catalog")
}

func (a *App) pricingClient() (pricing.Client, error) {
	if a.pricing != nil {
		return a.pricing, nil
	}
	if u, ok := a.cfg.Remote["pricing"]; ok {
		return pricing.NewHTTPClient(u, a.serviceHTTP), nil
	}
	return nil, errNeeds("pricing")
}

func (a *App) inventoryClient() (inventory.Client, error) {
	if a.inventory != nil {
		return a.inventory, nil
	}
	if u, ok := a.cfg.Remote["inventory"]; ok {
		return inventory.NewHTTPClient(u, a.serviceHTTP), nil
	}
	return nil, errNeeds("inventory")
}

func errNeeds(service string) error {
	return fmt.Errorf("needs the %s service: run it here (--services) or name it with --remote %s=URL", service, service)
}

// stockSource shows inventory's availability as the catalogue's in_stock.
type stockSource struct{ inv inventory.Client }

func (s stockSource) InStock(ctx context.Context, skus []string) (map[string]bool, error) {
	av, err := s.inv.Availability(ctx, skus)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(av))
	for sku, a := range av {
		out[sku] = a.InStock
	}
	return out, nil
}

// serviceTransport sends the service token on calls to other services that
// carry no credentials of their own.
type serviceTransport struct {
	token string
	next  http.RoundTripper
}

func (t serviceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token != "" && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.next.RoundTrip(r)
}

func newServiceHTTP(token string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: serviceTransport{token: token, next: http.DefaultTransport}}
}

// initDemo loads the demo data set once: accounts, the catalogue, and for
// its variants prices, promotions, shipping and stock.
func (a *App) initDemo(ctx context.Context) error {
	if !a.cfg.Demo {
		return nil
	}
	if a.identity != nil {
		if _, err := identity.Seed(ctx, a.identity); err != nil {
			return fmt.Errorf("load demo accounts: %w", err)
		}
	}
	if a.catalog == nil {
		return nil
	}
	if _, err := catalog.Seed(ctx, a.catalog); err != nil {
		return fmt.Errorf("load demo catalogue: %w", err)
	}
	var variants []pricing.SeedVariant
	var skus []string
	q := catalog.ProductQuery{Limit: httpx.MaxLimit}
	for {
		page, err := a.catalog.AdminListProducts(ctx, q, catalog.StatusPublished)
		if err != nil {
			return fmt.Errorf("read demo catalogue: %w", err)
		}
		for _, p := range page.Data {
			for _, v := range p.Variants {
				variants = append(variants, pricing.SeedVariant{VariantID: v.ID, SKU: v.SKU, ProductID: p.ID, ProductHandle: p.Handle, CategoryIDs: p.CategoryIDs})
				skus = append(skus, v.SKU)
			}
		}
		if page.NextCursor == nil {
			break
		}
		q.Cursor = *page.NextCursor
	}
	if a.pricing != nil {
		if _, err := pricing.Seed(ctx, a.pricing, variants); err != nil {
			return fmt.Errorf("load demo prices: %w", err)
		}
	}
	if a.inventory != nil {
		if _, err := inventory.Seed(ctx, a.inventory, skus); err != nil {
			return fmt.Errorf("load demo stock: %w", err)
		}
	}
	return nil
}
