package bus

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the outbox and inbox tables. Every service database that
// publishes or consumes events applies it next to its own migrations.
var Migrations = store.Migrations{Name: "bus", FS: migrationsFS}

// Outbox writes events into a service's database inside the caller's
// transaction. Write the outbox row after the change to the aggregate, so two
// transactions on one aggregate get their sequence numbers in commit order.
type Outbox struct {
	// wake, when set, is called after a transaction that added events
	// commits, so the relay publishes at once instead of at its next poll.
	wake func()
}

// NewOutbox returns an outbox; wake may be nil.
func NewOutbox(wake func()) *Outbox { return &Outbox{wake: wake} }

// Add inserts the events into the outbox in tx. They are published after tx
// commits, and never if it rolls back.
func (o *Outbox) Add(ctx context.Context, tx *store.Tx, events ...Event) error {
	for _, e := range events {
		payload, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("outbox: marshal %s: %w", e.Type, err)
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO souk_outbox (event_id, event_type, aggregate_id, payload, created_at) VALUES (?, ?, ?, ?, ?)`,
			e.ID, e.Type, e.Subject, string(payload), time.Now()); err != nil {
			return fmt.Errorf("outbox: insert %s: %w", e.Type, err)
		}
	}
	if o.wake != nil && len(events) > 0 {
		tx.AfterCommit(o.wake)
	}
	return nil
}
