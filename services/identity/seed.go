package identity

import (
	"context"
	"fmt"

	"github.com/soukhq/souk/platform/store"
)

// seedKey marks, in identity_meta, that the demo accounts were created.
const seedKey = "demo_accounts_seeded"

// DemoPassword is the password of every demo account. It is public: never
// seed a database that faces the internet.
const DemoPassword = "correct-horse-battery"

// DemoCustomerEmail is the demo customer, in the "vip" group.
const DemoCustomerEmail = "ada@example.com"

// Seed creates the demo accounts once per database: the customer
// ada@example.com (group vip) and a staff user per role
// (<role>@example.com), all with DemoPassword. The mark is written in the
// same transaction as the accounts, so deleting or changing them later
// never brings them back, and of two processes seeding at once only one
// creates anything. seeded tells whether this call created them. The
// customer is announced (customer_registered) like any other.
func Seed(ctx context.Context, s *Service) (seeded bool, err error) {
	var done int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM identity_meta WHERE key = ?`, seedKey).Scan(&done); err != nil {
		return false, fmt.Errorf("seed demo accounts: %w", err)
	}
	if done > 0 {
		return false, nil
	}
	// Hash before the transaction: argon2 must not hold the database's
	// write lock. One hash (with its own salt) per account.
	hashes := make([]string, 1+len(Roles))
	for i := range hashes {
		if hashes[i], err = s.hasher.hash(ctx, DemoPassword); err != nil {
			return false, fmt.Errorf("seed demo accounts: %w", err)
		}
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		seeded = false
		res, err := tx.Exec(ctx, `INSERT INTO identity_meta (key, value) VALUES (?, 'v1') ON CONFLICT (key) DO NOTHING`, seedKey)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		// An account someone created by hand before the first demo start
		// is left as it is (a failed INSERT would abort the transaction on
		// PostgreSQL, hence the look first).
		taken, err := emailInUse(ctx, tx, "customers", DemoCustomerEmail)
		if err != nil {
			return err
		}
		if !taken {
			if _, err := s.insertCustomer(ctx, tx, DemoCustomerEmail, "Ada Lovelace", hashes[0], []string{"vip"}); err != nil {
				return fmt.Errorf("customer %s: %w", DemoCustomerEmail, err)
			}
		}
		for i, r := range Roles {
			email := string(r) + "@example.com"
			taken, err := emailInUse(ctx, tx, "staff_users", email)
			if err != nil {
				return err
			}
			if taken {
				continue
			}
			if _, err := s.insertStaff(ctx, tx, email, "Demo "+string(r), r, hashes[i+1]); err != nil {
				return fmt.Errorf("staff %s: %w", email, err)
			}
		}
		seeded = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("seed demo accounts: %w", err)
	}
	if seeded {
		s.logger.InfoContext(ctx, "demo accounts created", "customer", DemoCustomerEmail, "staff", len(Roles), "password", DemoPassword)
	}
	return seeded, nil
}

func emailInUse(ctx context.Context, tx *store.Tx, table, email string) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` WHERE email = ?`, email).Scan(&n)
	return n > 0, err
}
