package identity_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/services/identity"
)

func newService(t *testing.T, db *store.DB) *identity.Service {
	t.Helper()
	return identity.New(db, bus.NewOutbox(nil), slog.New(slog.NewTextHandler(io.Discard, nil)), identity.Config{})
}

func TestAPIKeys(t *testing.T) {
	storetest.Run(t, []store.Migrations{bus.Migrations, identity.Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db)

		k, err := s.CreateAPIKey(ctx, identity.CreateAPIKeyParams{Name: "ERP sync", Role: identity.RoleMerchandiser})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k.ID, "key_") || !strings.HasPrefix(k.Secret, "sk_") || k.Role != identity.RoleMerchandiser {
			t.Fatalf("created key = %+v", k)
		}
		var stored int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM api_keys WHERE secret_hash = ?`, k.Secret).Scan(&stored); err != nil || stored != 0 {
			t.Fatalf("the secret must not be stored in clear (found %d, %v)", stored, err)
		}

		p, err := s.Authenticate(ctx, k.Secret)
		if err != nil || p.Subject != k.ID || p.Role != "merchandiser" || p.Kind != auth.KindAPIKey {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}
		for _, bad := range []string{"", "sk_nope", "Bearer " + k.Secret, k.Secret + "x"} {
			if _, err := s.Authenticate(ctx, bad); !apperr.Is(err, apperr.Unauthorized) {
				t.Errorf("Authenticate(%q) = %v, want unauthorized", bad, err)
			}
		}

		keys, next, err := s.ListAPIKeys(ctx, 10, "")
		if err != nil || len(keys) != 1 || next != "" || keys[0].Secret != "" {
			t.Fatalf("List = %+v, %q, %v", keys, next, err)
		}

		if err := s.RevokeAPIKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, k.Secret); !apperr.Is(err, apperr.Unauthorized) {
			t.Fatalf("a revoked key still authenticates: %v", err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID); !apperr.Is(err, apperr.NotFound) {
			t.Fatalf("second revoke = %v, want not_found", err)
		}

		_, err = s.CreateAPIKey(ctx, identity.CreateAPIKeyParams{Name: "", Role: "owner"})
		var e *apperr.Error
		if !asAppErr(err, &e) || len(e.Fields) != 2 || e.Fields[0].Field != "name" || e.Fields[1].Field != "role" {
			t.Fatalf("invalid create = %v", err)
		}
	})
}

func TestBootstrap(t *testing.T) {
	storetest.Run(t, []store.Migrations{bus.Migrations, identity.Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db)

		first, err := s.Bootstrap(ctx, "")
		if err != nil || !strings.HasPrefix(first, "sk_") {
			t.Fatalf("first Bootstrap = %q, %v", first, err)
		}
		if p, err := s.Authenticate(ctx, first); err != nil || p.Role != "admin" {
			t.Fatalf("generated key does not authenticate as admin: %+v, %v", p, err)
		}
		again, err := s.Bootstrap(ctx, "")
		if err != nil || again != "" {
			t.Fatalf("second Bootstrap = %q, %v; want nothing generated", again, err)
		}

		secret := "sk_" + strings.Repeat("a", 40)
		for range 2 {
			if g, err := s.Bootstrap(ctx, secret); err != nil || g != "" {
				t.Fatalf("Bootstrap(secret) = %q, %v", g, err)
			}
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("keys = %d, %v; want 2 (generated + env, each once)", n, err)
		}
		if _, err := s.Bootstrap(ctx, "short"); err == nil {
			t.Fatal("a weak admin secret must be refused")
		}
	})
}

func TestPolicy(t *testing.T) {
	var pol identity.Policy
	staff := func(r identity.Role) auth.Principal { return auth.Principal{Kind: auth.KindAPIKey, Role: string(r)} }
	for _, perm := range identity.Permissions() {
		if !pol.Allowed(staff(identity.RoleAdmin), perm) {
			t.Errorf("admin must hold %s", perm)
		}
		if pol.Allowed(auth.Principal{Kind: auth.KindCustomer}, perm) {
			t.Errorf("a customer must not hold %s", perm)
		}
	}
	if !pol.Allowed(staff(identity.RoleMerchandiser), identity.PermCatalogWrite) {
		t.Error("merchandiser must write the catalogue")
	}
	if pol.Allowed(staff(identity.RoleViewer), identity.PermCatalogWrite) {
		t.Error("viewer must not write the catalogue")
	}
	if pol.Allowed(staff(identity.RoleMerchandiser), identity.PermAPIKeysManage) {
		t.Error("only admin manages API keys")
	}
	if pol.Allowed(staff(identity.RoleAdmin), "made:up") != true {
		t.Error("admin holds every permission")
	}
	if pol.Allowed(staff(identity.RoleViewer), "made:up") {
		t.Error("a permission missing from the matrix is admin-only")
	}
}

func asAppErr(err error, target **apperr.Error) bool {
	e, ok := err.(*apperr.Error)
	*target = e
	return ok
}
