package cart

import "testing"

func TestPricingCustomerKey(t *testing.T) {
	for _, tt := range []struct{ customer, email, want string }{
		{"cus_1", "ada@example.com", "cus_1"},
		{"", " Ada@Example.com ", "email:ada@example.com"},
		{"", "", ""},
	} {
		if got := PricingCustomerKey(tt.customer, tt.email); got != tt.want {
			t.Errorf("PricingCustomerKey(%q, %q) = %q, want %q", tt.customer, tt.email, got, tt.want)
		}
	}
}
