package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// EventCustomerRegistered announces a new customer account (notify sends
// the welcome email; other services may keep a view of customers). Its
// JSON Schema is api/events/souk.identity.customer_registered.v1.json; the
// CloudEvents subject is the customer's id.
const EventCustomerRegistered = "souk.identity.customer_registered.v1"

// eventSource is the CloudEvents source of identity's events.
const eventSource = "identity"

// CustomerRegistered is the data of EventCustomerRegistered. It never
// carries a password or its hash.
type CustomerRegistered struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"created_at"`
}

// announceRegistered writes customer_registered into the outbox, in tx,
// after the customer's row.
func (s *Service) announceRegistered(ctx context.Context, tx *store.Tx, c Customer) error {
	e, err := bus.NewEvent(ctx, eventSource, EventCustomerRegistered, c.ID,
		CustomerRegistered{ID: c.ID, Email: c.Email, Name: c.Name, Groups: c.Groups, CreatedAt: c.CreatedAt})
	if err != nil {
		return fmt.Errorf("build %s: %w", EventCustomerRegistered, err)
	}
	if err := s.outbox.Add(ctx, tx, e); err != nil {
		return fmt.Errorf("publish %s: %w", EventCustomerRegistered, err)
	}
	return nil
}
