package pricing

import (
	"errors"
	"math"
	"math/bits"
	"slices"
)

// errAmountOverflow: an amount left the range of int64 minor units. With the
// package's limits (MaxAmount, MaxQuantity, MaxLines) it cannot happen for a
// valid input; the arithmetic is checked regardless.
var errAmountOverflow = errors.New("pricing: amount overflow")

// mulDivRound returns a × num / den rounded to the nearest integer, halves
// rounded up (away from zero) — THE rounding rule of Souk: every computed
// amount (percentage discounts, tax, conversions between gross and net
// prices) goes through this one function. It works on non-negative operands
// only (amounts here never are negative), computes the product exactly in
// 128 bits, and fails with errAmountOverflow when the result does not fit
// in an int64.
func mulDivRound(a, num, den int64) (int64, error) {
	if a < 0 || num < 0 || den <= 0 {
		return 0, errors.New("pricing: mulDivRound needs non-negative operands and a positive divisor")
	}
	hi, lo := bits.Mul64(uint64(a), uint64(num))
	if hi >= uint64(den) {
		return 0, errAmountOverflow
	}
	q, r := bits.Div64(hi, lo, uint64(den))
	// Half up: round up when the remainder is at least half the divisor,
	// i.e. 2r >= den (r < den < 2^63, so 2r cannot overflow a uint64).
	if 2*r >= uint64(den) {
		q++
	}
	if q > math.MaxInt64 {
		return 0, errAmountOverflow
	}
	return int64(q), nil
}

// allocate splits total over weights in proportion, exactly: the shares add
// up to total, and no share exceeds its weight when total <= Σ weights. It
// is the largest-remainder method: every weight first gets the floor of its
// exact share (total × w / W), then the minor units left over go one each to
// the weights with the largest remainders — ties to the larger weight, then
// to the earlier one — so the split is deterministic. Allocation does not
// round: it distributes units that mulDivRound already fixed.
func allocate(total int64, weights []int64) ([]int64, error) {
	shares := make([]int64, len(weights))
	if total == 0 {
		return shares, nil
	}
	var sum int64
	for _, w := range weights {
		if w < 0 {
			return nil, errors.New("pricing: negative allocation weight")
		}
		if sum > math.MaxInt64-w {
			return nil, errAmountOverflow
		}
		sum += w
	}
	if total < 0 || total > sum {
		return nil, errors.New("pricing: cannot allocate more than the weights hold")
	}
	rems := make([]uint64, len(weights))
	var given int64
	for i, w := range weights {
		hi, lo := bits.Mul64(uint64(total), uint64(w))
		q, r := bits.Div64(hi, lo, uint64(sum)) // hi < sum as total <= sum
		shares[i], rems[i] = int64(q), r
		given += int64(q)
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rems[a] != rems[b]:
			if rems[a] > rems[b] {
				return -1
			}
			return 1
		case weights[a] != weights[b]:
			if weights[a] > weights[b] {
				return -1
			}
			return 1
		}
		return a - b
	})
	for k := 0; given < total; k++ {
		shares[order[k]]++
		given++
	}
	return shares, nil
}

// checkedAdd returns a+b or errAmountOverflow.
func checkedAdd(a, b int64) (int64, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, errAmountOverflow
	}
	return a + b, nil
}

// checkedMul returns a×b or errAmountOverflow (non-negative operands).
func checkedMul(a, b int64) (int64, error) {
	if a < 0 || b < 0 {
		return 0, errors.New("pricing: negative factor")
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, errAmountOverflow
	}
	return int64(lo), nil
}
