package pricing

import (
	"context"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
)

// Service is pricing's use cases. (Contract stub: the implementation follows.)
type Service struct{}

var _ Client = (*Service)(nil)

var errNotYet = apperr.New(apperr.Unavailable, "pricing is not implemented yet")

// Quote implements Client.
func (s *Service) Quote(ctx context.Context, req QuoteRequest) (Quote, error) {
	return Quote{}, errNotYet
}

// ShippingOptions implements Client.
func (s *Service) ShippingOptions(ctx context.Context, req QuoteRequest) ([]ShippingOption, error) {
	return nil, errNotYet
}

// CheckCode implements Client.
func (s *Service) CheckCode(ctx context.Context, code, currency, customerID string) error {
	return errNotYet
}

// Redeem implements Client.
func (s *Service) Redeem(ctx context.Context, req RedeemRequest) (Redemption, error) {
	return Redemption{}, errNotYet
}

// Release implements Client.
func (s *Service) Release(ctx context.Context, key string) error { return errNotYet }

// Prices implements Client.
func (s *Service) Prices(ctx context.Context, currency string, customerGroups []string, variantIDs []string) (map[string]money.Money, error) {
	return nil, errNotYet
}
