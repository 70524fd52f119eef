package cart

import "strings"

// PricingCustomerKey is whom pricing counts per-customer voucher limits
// against: the customer's id, or for a guest the e-mail address given
// ("email:ada@example.com"), or "" when there is neither — then codes
// limited per customer do not apply until the shopper gives an e-mail or
// signs in. Orders must redeem with the same key the cart was quoted with.
func PricingCustomerKey(customerID, email string) string {
	if customerID != "" {
		return customerID
	}
	if email = strings.ToLower(strings.TrimSpace(email)); email != "" {
		return "email:" + email
	}
	return ""
}
