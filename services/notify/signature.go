package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>", the
	// HMAC keyed with the subscription's secret over "<t>.<body>". A
	// receiver checks it with VerifySignature.
	HeaderSignature = "Souk-Signature"
	// HeaderWebhookID names the subscription the request is for.
	HeaderWebhookID = "Souk-Webhook-Id"
	// HeaderEventID is the event's id: the receiver's idempotency key (an
	// event may arrive more than once).
	HeaderEventID = "Souk-Event-Id"
	// HeaderEventType is the event's type.
	HeaderEventType = "Souk-Event-Type"
	// HeaderDeliveryID and HeaderDeliveryAttempt name the delivery and the
	// attempt (1, 2, …), for the receiver's logs.
	HeaderDeliveryID      = "Souk-Delivery-Id"
	HeaderDeliveryAttempt = "Souk-Delivery-Attempt"
)

// DefaultSignatureTolerance is how far a signature's timestamp may be from
// the receiver's clock, either way, before VerifySignature refuses it as a
// possible replay.
const DefaultSignatureTolerance = 5 * time.Minute

// Errors of VerifySignature. All mean: reject the request (400 or 401).
var (
	// ErrSignatureMalformed: the header is missing or not t=…,v1=….
	ErrSignatureMalformed = errors.New("webhook signature: malformed or missing " + HeaderSignature + " header")
	// ErrSignatureMismatch: no v1 signature matches the body and secret.
	ErrSignatureMismatch = errors.New("webhook signature: no signature matches the body")
	// ErrSignatureExpired: the signature matches but its timestamp is
	// outside the tolerance: a replay, or a clock far off.
	ErrSignatureExpired = errors.New("webhook signature: timestamp outside the tolerance")
)

// Sign returns the Souk-Signature header value for body sent at t with
// secret: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifySignature checks a Souk-Signature header against the raw request
// body (exactly the bytes received, before any parsing) and the
// subscription's secret, as a webhook receiver should: the HMAC is compared
// in constant time, any of several v1 values may match (secret rotation),
// and a timestamp more than tolerance away from now, in either direction,
// is refused as a replay (tolerance <= 0 means DefaultSignatureTolerance).
// It returns nil, ErrSignatureMalformed, ErrSignatureMismatch or
// ErrSignatureExpired. Receivers should in addition ignore an event id
// (Souk-Event-Id) they have already processed.
func VerifySignature(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	var (
		ts    string
		sigs  [][]byte
		haveT bool
	)
	if len(header) > 4096 {
		return ErrSignatureMalformed
	}
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			if haveT {
				return ErrSignatureMalformed
			}
			ts, haveT = v, true
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrSignatureMalformed
			}
			sigs = append(sigs, b)
		}
		// Other schemes (a future v2) are ignored, so they can be added
		// without breaking receivers.
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if !haveT || err != nil || unix <= 0 || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	want := mac(secret, ts, body)
	matched := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			matched = true
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %v from now", ErrSignatureExpired, time.Unix(unix, 0).UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return nil
}

// newSecret returns a signing secret: "whsec_" and 32 random bytes,
// base64url.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b)
}
