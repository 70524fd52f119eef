package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignMatchesTheDocumentedRecipe(t *testing.T) {
	secret := "whsec_test"
	body := []byte(`{"id":"evt_1"}`)
	at := time.Unix(1795384080, 0)
	// What WEBHOOKS.md tells receivers to compute.
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte("1795384080." + string(body)))
	want := "t=1795384080,v1=" + hex.EncodeToString(h.Sum(nil))
	if got := Sign(secret, at, body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := newSecret()
	body := []byte(`{"specversion":"1.0","id":"evt_1","type":"souk.orders.order_confirmed.v1"}`)
	signedAt := time.Date(2026, 11, 21, 21, 48, 0, 0, time.UTC)
	header := Sign(secret, signedAt, body)
	_, v1, _ := strings.Cut(header, ",")
	other := Sign("whsec_other", signedAt, body)
	_, otherV1, _ := strings.Cut(other, ",")

	for _, tt := range []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, header, body, signedAt, nil},
		{"valid, receiver's clock 4m59s ahead", secret, header, body, signedAt.Add(4*time.Minute + 59*time.Second), nil},
		{"valid, receiver's clock 4m behind", secret, header, body, signedAt.Add(-4 * time.Minute), nil},
		{"replayed 6 minutes later", secret, header, body, signedAt.Add(6 * time.Minute), ErrSignatureExpired},
		{"timestamp from the future", secret, header, body, signedAt.Add(-6 * time.Minute), ErrSignatureExpired},
		{"body changed", secret, header, append([]byte(nil), append(body, ' ')...), signedAt, ErrSignatureMismatch},
		{"wrong secret", "whsec_wrong", header, body, signedAt, ErrSignatureMismatch},
		{"timestamp changed", secret, "t=1795384081," + v1, body, signedAt, ErrSignatureMismatch},
		{"rotated: one of two signatures matches", secret, header + "," + otherV1, body, signedAt, nil},
		{"rotated: the other one first", secret, "t=" + strings.TrimPrefix(strings.Split(header, ",")[0], "t=") + "," + otherV1 + "," + v1, body, signedAt, nil},
		{"unknown scheme ignored", secret, header + ",v0=abc", body, signedAt, nil},
		{"spaces around parts", secret, strings.ReplaceAll(header, ",", " , "), body, signedAt, nil},
		{"empty", secret, "", body, signedAt, ErrSignatureMalformed},
		{"no timestamp", secret, v1, body, signedAt, ErrSignatureMalformed},
		{"no signature", secret, "t=1795384080", body, signedAt, ErrSignatureMalformed},
		{"two timestamps", secret, "t=1," + header, body, signedAt, ErrSignatureMalformed},
		{"bad hex", secret, "t=1795384080,v1=zz", body, signedAt, ErrSignatureMalformed},
		{"short signature", secret, "t=1795384080,v1=abcd", body, signedAt, ErrSignatureMalformed},
		{"not a number", secret, "t=yesterday," + v1, body, signedAt, ErrSignatureMalformed},
		{"garbage", secret, "Bearer xyz", body, signedAt, ErrSignatureMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.secret, tt.header, tt.body, 5*time.Minute, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifySignature = %v, want %v", err, tt.want)
			}
		})
	}
	// tolerance <= 0 is the default, not "anything goes".
	if err := VerifySignature(secret, header, body, 0, signedAt.Add(time.Hour)); !errors.Is(err, ErrSignatureExpired) {
		t.Errorf("zero tolerance: %v, want the default tolerance to apply", err)
	}
}

func TestNewSecret(t *testing.T) {
	a, b := newSecret(), newSecret()
	if a == b || !strings.HasPrefix(a, "whsec_") || len(a) != len("whsec_")+43 {
		t.Fatalf("secrets %q, %q", a, b)
	}
}
