package identity

import (
	"context"
	"slices"
	"testing"

	"github.com/soukhq/souk/platform/auth"
)

func TestSeed(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		seeded, err := Seed(ctx, s)
		if err != nil || !seeded {
			t.Fatalf("first Seed = %v, %v", seeded, err)
		}
		pair, err := s.Login(ctx, auth.KindCustomer, LoginParams{Email: DemoCustomerEmail, Password: DemoPassword})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Authenticate(ctx, pair.AccessToken)
		if err != nil || p.Kind != auth.KindCustomer || !slices.Equal(p.Groups, []string{"vip"}) {
			t.Fatalf("demo customer = %+v, %v", p, err)
		}
		for _, r := range Roles {
			pair, err := s.Login(ctx, auth.KindStaff, LoginParams{Email: string(r) + "@example.com", Password: DemoPassword})
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			if p, err := s.Authenticate(ctx, pair.AccessToken); err != nil || p.Kind != auth.KindStaff || p.Role != string(r) {
				t.Fatalf("%s principal = %+v, %v", r, p, err)
			}
		}
		if n := countRows(t, s, `SELECT COUNT(DISTINCT password_hash) FROM staff_users`); n != len(Roles) {
			t.Fatalf("distinct staff hashes = %d: every account gets its own salt", n)
		}

		// Once per database, even after the demo accounts changed.
		c, _, _ := s.ListCustomers(ctx, CustomerQuery{Email: DemoCustomerEmail, Limit: 1})
		if _, err := s.db.Exec(ctx, `DELETE FROM customers WHERE id = ?`, c[0].ID); err != nil {
			t.Fatal(err)
		}
		if seeded, err := Seed(ctx, s); err != nil || seeded {
			t.Fatalf("second Seed = %v, %v", seeded, err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM customers`); n != 0 {
			t.Fatal("a second Seed must not bring the demo back")
		}
	})
}

// TestSeedKeepsAccountsMadeByHand: a demo address registered before the
// first demo start is left alone, and the rest is seeded.
func TestSeedKeepsAccountsMadeByHand(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		mine := MustRegister(t, e.s, DemoCustomerEmail, "Not Ada")
		MustCreateStaff(t, e.s, "viewer@example.com", RoleAdmin)
		if seeded, err := Seed(ctx, e.s); err != nil || !seeded {
			t.Fatalf("Seed = %v, %v", seeded, err)
		}
		if c, err := e.s.GetCustomer(ctx, mine.ID); err != nil || c.Name != "Not Ada" || len(c.Groups) != 0 {
			t.Fatalf("hand-made customer = %+v, %v", c, err)
		}
		if n := countRows(t, e.s, `SELECT COUNT(*) FROM staff_users`); n != len(Roles) {
			t.Fatalf("staff = %d", n)
		}
		if n := countRows(t, e.s, `SELECT COUNT(*) FROM staff_users WHERE email = 'viewer@example.com' AND role = 'admin'`); n != 1 {
			t.Fatal("the hand-made staff user must keep its role")
		}
	})
}
