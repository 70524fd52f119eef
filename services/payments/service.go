package payments

import (
	"context"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
)

// Service is payments' use cases over its database and providers.
type Service struct{}

var _ Client = (*Service)(nil)

func notImplemented() error { return apperr.New(apperr.Unavailable, "payments: not implemented yet") }

// Authorize implements Client.
func (s *Service) Authorize(ctx context.Context, req AuthorizeRequest) (Payment, error) {
	return Payment{}, notImplemented()
}

// Capture implements Client.
func (s *Service) Capture(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error) {
	return Payment{}, notImplemented()
}

// Void implements Client.
func (s *Service) Void(ctx context.Context, key, paymentID string) (Payment, error) {
	return Payment{}, notImplemented()
}

// Refund implements Client.
func (s *Service) Refund(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error) {
	return Payment{}, notImplemented()
}

// Get implements Client.
func (s *Service) Get(ctx context.Context, paymentID string) (Payment, error) {
	return Payment{}, notImplemented()
}

// ByKey implements Client.
func (s *Service) ByKey(ctx context.Context, authorizeKey string) (Payment, error) {
	return Payment{}, notImplemented()
}
