package identity

import (
	"slices"
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/auth"
)

// TestPermissionMatrix spells the whole matrix out, so that any change to
// who may do what changes this table too.
func TestPermissionMatrix(t *testing.T) {
	all := []string{
		"api_keys:manage", "auth:keys:rotate", "auth:whoami", "carts:read", "carts:write",
		"catalog:read", "catalog:write", "customers:read", "customers:write",
		"inventory:read", "inventory:write", "ops:read", "ops:write",
		"orders:fulfil", "orders:read", "orders:refund", "orders:write",
		"pricing:read", "pricing:write", "staff:manage", "webhooks:manage",
	}
	var got []string
	for _, p := range Permissions() {
		got = append(got, string(p))
	}
	if !slices.Equal(got, all) {
		t.Fatalf("Permissions() =\n%v\nwant\n%v", got, all)
	}
	want := map[Role]string{
		RoleAdmin:        strings.Join(all, " "),
		RoleMerchandiser: "auth:whoami catalog:read catalog:write customers:read inventory:read ops:read orders:read pricing:read pricing:write",
		RoleFulfilment:   "auth:whoami catalog:read inventory:read inventory:write ops:read orders:fulfil orders:read",
		RoleSupport:      "auth:whoami carts:read catalog:read customers:read customers:write inventory:read ops:read orders:read orders:refund orders:write pricing:read",
		RoleViewer:       "auth:whoami carts:read catalog:read customers:read inventory:read ops:read orders:read pricing:read",
	}
	for _, r := range Roles {
		var held []string
		for _, p := range Permissions() {
			staff := (Policy{}).Allowed(auth.Principal{Kind: auth.KindStaff, Role: string(r)}, p)
			if staff {
				held = append(held, string(p))
			}
			if key := (Policy{}).Allowed(auth.Principal{Kind: auth.KindAPIKey, Role: string(r)}, p); key != staff {
				t.Errorf("%s: staff user and API key disagree on %s", r, p)
			}
		}
		if g := strings.Join(held, " "); g != want[r] {
			t.Errorf("%s holds\n  %s\nwant\n  %s", r, g, want[r])
		}
		var fromList []string
		for _, p := range RolePermissions(r) {
			fromList = append(fromList, string(p))
		}
		if strings.Join(fromList, " ") != want[r] {
			t.Errorf("RolePermissions(%s) = %v", r, fromList)
		}
	}
	// Viewer holds every :read.
	for _, p := range all {
		if strings.HasSuffix(p, ":read") && !(Policy{}).Allowed(auth.Principal{Kind: auth.KindStaff, Role: "viewer"}, auth.Permission(p)) {
			t.Errorf("viewer lacks %s", p)
		}
	}
}

// TestPolicyRefusesNonStaff: customers, and principals of any other kind,
// hold no Admin permission whatever their role says.
func TestPolicyRefusesNonStaff(t *testing.T) {
	for _, kind := range []auth.Kind{auth.KindCustomer, "", "robot"} {
		for _, role := range []string{"", "admin", "viewer"} {
			for _, p := range Permissions() {
				if (Policy{}).Allowed(auth.Principal{Subject: "cus_x", Kind: kind, Role: role}, p) {
					t.Errorf("kind %q role %q holds %s", kind, role, p)
				}
			}
		}
	}
	if (Policy{}).Allowed(auth.Principal{Kind: auth.KindStaff, Role: "superuser"}, PermCatalogRead) {
		t.Error("an unknown role holds nothing")
	}
	if !(Policy{}).Allowed(auth.Principal{Kind: auth.KindStaff, Role: "admin"}, "made:up") ||
		(Policy{}).Allowed(auth.Principal{Kind: auth.KindStaff, Role: "viewer"}, "made:up") {
		t.Error("a permission missing from the matrix is admin-only")
	}
}
