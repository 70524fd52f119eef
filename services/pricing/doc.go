// Package pricing owns price lists, promotions, vouchers and their usage, tax
// rates and shipping methods, and computes cart totals. All amounts are int64
// minor units (platform/money); every rounding of a computed amount happens in
// one function of this package (see Compute and the ADR).
package pricing
