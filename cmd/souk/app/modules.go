package app

import (
	"context"
	"fmt"
	"slices"
)

// ServiceNames lists the services this binary can run, in start order.
var ServiceNames = []string{"identity", "pricing", "inventory", "catalog", "cart", "payments", "orders", "notify"}

// servicePrefixes is the routing data for each service: the path prefixes it
// answers. The gateway sends them to the local service, or to its --remote
// URL. A test checks every route a service declares lies under its prefixes.
var servicePrefixes = map[string][]string{
	"identity":  {"/admin/api-keys", "/admin/auth", "/admin/customers", "/admin/staff", "/store/customers", "/store/auth", "/.well-known/jwks.json"},
	"catalog":   {"/admin/products", "/admin/categories", "/store/products", "/store/categories", "/store/variants"},
	"pricing":   {"/admin/price-lists", "/admin/promotions", "/admin/tax-rates", "/admin/shipping-methods", "/admin/pricing"},
	"inventory": {"/admin/inventory", "/admin/stock-locations", "/admin/reservations", "/store/inventory"},
	"cart":      {"/admin/carts", "/store/carts"},
	"payments":  {"/admin/payments"},
	"notify":    {"/admin/webhooks"},
	"orders":    {"/admin/orders", "/store/orders", "/store/carts/*/checkout", "/store/customers/me/orders"},
}

// Module names besides the services.
const (
	moduleBus     = "bus"
	moduleDemo    = "demo"
	moduleGateway = "gateway"
)

// module is one named part of the process with the modules it needs
// (the grafana/loki way): init builds it, stop releases it. Stops run in
// reverse init order.
type module struct {
	deps []string
	init func(ctx context.Context) error
	stop func(ctx context.Context) error
}

func (a *App) modules() map[string]module {
	// A service that uses another depends on it when both run here, so the
	// one it uses exists first; a remote one is reached over HTTP.
	local := func(names ...string) []string {
		deps := []string{moduleBus}
		for _, n := range names {
			if slices.Contains(a.selected, n) {
				deps = append(deps, n)
			}
		}
		return deps
	}
	return map[string]module{
		moduleBus:     {init: a.initBus, stop: a.stopBus},
		"identity":    {deps: local(), init: a.initIdentity},
		"pricing":     {deps: local(), init: a.initPricing},
		"inventory":   {deps: local(), init: a.initInventory},
		"catalog":     {deps: local("pricing", "inventory"), init: a.initCatalog},
		"cart":        {deps: local("catalog", "pricing"), init: a.initCart},
		"payments":    {deps: local(), init: a.initPayments},
		"notify":      {deps: local(), init: a.initNotify},
		"orders":      {deps: local("cart", "pricing", "inventory", "payments"), init: a.initOrders},
		moduleDemo:    {deps: a.selected, init: a.initDemo},
		moduleGateway: {deps: []string{moduleDemo}, init: a.initGateway, stop: a.stopGateway},
	}
}

// order returns the modules needed for the targets, dependencies first.
func order(modules map[string]module, targets []string) ([]string, error) {
	var (
		out      []string
		visiting = map[string]bool{}
		done     = map[string]bool{}
		visit    func(string) error
	)
	visit = func(name string) error {
		if done[name] {
			return nil
		}
		if visiting[name] {
			return fmt.Errorf("module dependency cycle at %s", name)
		}
		mod, ok := modules[name]
		if !ok {
			return fmt.Errorf("unknown module %q", name)
		}
		visiting[name] = true
		deps := slices.Clone(mod.deps)
		slices.Sort(deps)
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		visiting[name] = false
		done[name] = true
		out = append(out, name)
		return nil
	}
	for _, t := range targets {
		if err := visit(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}
