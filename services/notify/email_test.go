package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// mimePart is one decoded part of a received message.
type mimePart struct {
	contentType, encoding string
	body                  string
}

// MustParseMail parses a received message with net/mail and
// mime/multipart, decoding each part's quoted-printable body.
func MustParseMail(t testing.TB, raw []byte) (*mail.Message, []mimePart) {
	t.Helper()
	if strings.Contains(strings.ReplaceAll(string(raw), "\r\n", ""), "\n") {
		t.Errorf("message has bare LF line endings")
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: want multipart/alternative with a boundary (%v)", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []mimePart
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		enc := p.Header.Get("Content-Transfer-Encoding")
		var r io.Reader = p
		if enc == "quoted-printable" {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		parts = append(parts, mimePart{contentType: p.Header.Get("Content-Type"), encoding: enc, body: string(b)})
	}
	return msg, parts
}

func TestOrderConfirmationIsRenderedAndSentWithBothParts(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		sink := MustSink(t)
		reg := prometheus.NewRegistry()
		s := MustNewService(t, db, Config{SMTPAddr: sink.Addr(), SMTPFrom: "Café Souk <orders@shop.example>", StoreName: "Café Souk"},
			WithClock(clk.Now), WithMetrics(reg))
		e := MustOrderEvent(t, orderData("ada@example.com"))
		MustHandle(t, db, s.handleOrderConfirmed, e)

		emails, err := s.EmailsForEvent(ctx, e.ID)
		if err != nil || len(emails) != 1 {
			t.Fatalf("EmailsForEvent = %v, %v; want one", emails, err)
		}
		em := emails[0]
		if em.State != EmailPending || em.To != "ada@example.com" || em.Reference != "ord_01JD3Q7W0000000000000000AB" || em.Kind != "order_confirmed" {
			t.Fatalf("stored email: %+v", em)
		}
		if n := MustSendPending(t, s); n != 1 {
			t.Fatalf("SendPending attempted %d, want 1", n)
		}
		msgs := sink.Messages()
		if len(msgs) != 1 {
			t.Fatalf("sink received %d messages, want 1", len(msgs))
		}
		m := msgs[0]
		if m.From != "orders@shop.example" || len(m.To) != 1 || m.To[0] != "ada@example.com" {
			t.Errorf("envelope from %q to %v", m.From, m.To)
		}
		msg, parts := MustParseMail(t, m.Raw)
		h := msg.Header

		from, err := mail.ParseAddress(h.Get("From"))
		if err != nil || from.Name != "Café Souk" || from.Address != "orders@shop.example" {
			t.Errorf("From = %q (%+v, %v)", h.Get("From"), from, err)
		}
		to, err := mail.ParseAddress(h.Get("To"))
		if err != nil || to.Address != "ada@example.com" {
			t.Errorf("To = %q", h.Get("To"))
		}
		wantSubject := "Your Café Souk order ord_01JD3Q7W0000000000000000AB is confirmed"
		if raw := h.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
			t.Errorf("Subject %q is not RFC 2047 encoded", raw)
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); err != nil || got != wantSubject {
			t.Errorf("Subject decodes to %q, %v; want %q", got, err, wantSubject)
		}
		if m.Subject != wantSubject {
			t.Errorf("sink's subject %q", m.Subject)
		}
		if got := h.Get("Message-ID"); got != "<"+em.ID+"@shop.example>" {
			t.Errorf("Message-ID = %q, want <%s@shop.example>", got, em.ID)
		}
		if date, err := h.Date(); err != nil || !date.Equal(clk.Now()) {
			t.Errorf("Date = %q (%v, %v), want the send time %v", h.Get("Date"), date, err, clk.Now())
		}
		if h.Get("MIME-Version") != "1.0" || h.Get("Auto-Submitted") != "auto-generated" {
			t.Errorf("MIME-Version %q, Auto-Submitted %q", h.Get("MIME-Version"), h.Get("Auto-Submitted"))
		}

		if len(parts) != 2 {
			t.Fatalf("%d parts, want text and html", len(parts))
		}
		text, html := parts[0], parts[1]
		if text.contentType != "text/plain; charset=utf-8" || html.contentType != "text/html; charset=utf-8" ||
			text.encoding != "quoted-printable" || html.encoding != "quoted-printable" {
			t.Errorf("parts: %q/%q, %q/%q", text.contentType, text.encoding, html.contentType, html.encoding)
		}
		for _, want := range []string{
			"Hello Ada,", "Order number: ord_01JD3Q7W0000000000000000AB", "21 November 2026, 21:48 UTC",
			"2 x Linen Shirt (S / White)", "SKU LIN-S, 29.99 EUR each: 59.98 EUR",
			"1 x Wool <Scarf> & Co", "Subtotal:  74.98 EUR", "Discount: -7.50 EUR", "Shipping:  4.95 EUR",
			"Total:     72.43 EUR", "(including 12.57 EUR tax)",
			"Ada Lovelace", "Keizersgracht 1", "3rd floor", "1015 CJ Amsterdam", "Netherlands",
		} {
			if !strings.Contains(text.body, want) {
				t.Errorf("text part lacks %q:\n%s", want, text.body)
			}
		}
		for _, want := range []string{
			`<strong id="order-number">ord_01JD3Q7W0000000000000000AB</strong>`, "Linen Shirt", "S / White",
			"Wool &lt;Scarf&gt; &amp; Co", `<td id="total" style="text-align:right;">72.43 EUR</td>`,
			"including 12.57 EUR tax", "Keizersgracht 1<br>3rd floor<br>1015 CJ Amsterdam<br>Netherlands",
			"<title>Your Café Souk order ord_01JD3Q7W0000000000000000AB is confirmed</title>",
		} {
			if !strings.Contains(html.body, want) {
				t.Errorf("html part lacks %q:\n%s", want, html.body)
			}
		}
		if strings.Contains(html.body, "<Scarf>") {
			t.Error("html part carries an unescaped item title")
		}
		if n := strings.Count(html.body, `<tr class="item"`); n != 2 {
			t.Errorf("html part has %d item rows, want 2", n)
		}

		got, err := s.GetEmail(ctx, em.ID)
		if err != nil || got.State != EmailSent || got.Attempts != 1 || got.SentAt == nil || !got.SentAt.Equal(clk.Now()) ||
			got.NextAttemptAt != nil || got.LastError != "" {
			t.Errorf("after sending: %+v, %v", got, err)
		}
		if v := metricValue(t, s.metrics.emails.WithLabelValues(emailSent)); v != 1 {
			t.Errorf("sent metric = %v", v)
		}
		if n := MustSendPending(t, s); n != 0 || len(sink.Messages()) != 1 {
			t.Errorf("a second round attempted %d and the sink has %d messages", n, len(sink.Messages()))
		}
	})
}

func TestOrderConfirmationTaxOnTopAndNoAddress(t *testing.T) {
	s := MustNewService(t, mustSQLite(t), Config{})
	data := orderData("ada@example.com")
	data["total"] = map[string]any{"amount": 8500, "currency": "EUR"} // 74.98 - 7.50 + 4.95 + 12.57
	data["shipping_address"] = nil
	data["discount_total"] = map[string]any{"amount": 0, "currency": "EUR"}
	var oc OrderConfirmed
	if err := MustOrderEvent(t, data).Decode(&oc); err != nil {
		t.Fatal(err)
	}
	r, err := s.renderOrderConfirmed(oc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Hello there,", "Tax:       12.57 EUR", "Total:     85.00 EUR"} {
		if !strings.Contains(r.text, want) {
			t.Errorf("text lacks %q:\n%s", want, r.text)
		}
	}
	for _, unwanted := range []string{"Discount", "Shipping to", "including"} {
		if strings.Contains(r.text, unwanted) {
			t.Errorf("text has %q:\n%s", unwanted, r.text)
		}
	}
	if !regexp.MustCompile(`<td>Tax</td><td style="text-align:right;">12.57 EUR</td>`).MatchString(r.html) {
		t.Errorf("html lacks the tax line:\n%s", r.html)
	}
}

func TestSameEventTwiceMakesOneEmail(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		sink := MustSink(t)
		s := MustNewService(t, db, Config{SMTPAddr: sink.Addr()})
		e := MustOrderEvent(t, orderData("ada@example.com"))
		MustHandle(t, db, s.handleOrderConfirmed, e)
		MustHandle(t, db, s.handleOrderConfirmed, e) // a redelivery that got past the inbox
		emails, err := s.EmailsForEvent(ctx, e.ID)
		if err != nil || len(emails) != 1 {
			t.Fatalf("%d emails for one event (%v), want 1", len(emails), err)
		}
		MustSendPending(t, s)
		MustSendPending(t, s)
		if n := len(sink.Messages()); n != 1 {
			t.Fatalf("sink received %d messages, want 1", n)
		}
	})
}

func TestOrderWithoutUsableAddressIsRecordedAsFailed(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		logs := &logBuffer{}
		s, err := New(db, nil, testLogger(t, logs), Config{SMTPAddr: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range []string{"", "not an address", "Ada <ada@example.com>", "ada@example.com\r\nBcc: eve@example.com"} {
			data := orderData(addr)
			e := MustOrderEvent(t, data)
			MustHandle(t, db, s.handleOrderConfirmed, e)
			emails, err := s.EmailsForEvent(ctx, e.ID)
			if err != nil || len(emails) != 1 {
				t.Fatalf("%q: %d emails (%v)", addr, len(emails), err)
			}
			if em := emails[0]; em.State != EmailFailed || em.LastError == "" || em.NextAttemptAt != nil {
				t.Errorf("%q: %+v, want failed with a reason", addr, em)
			}
			_, err = s.ResendEmail(ctx, emails[0].ID)
			wantErr(t, err, apperr.Conflict)
		}
		if n := MustSendPending(t, s); n != 0 {
			t.Errorf("SendPending attempted %d failed emails", n)
		}
		if !strings.Contains(logs.String(), "no usable email address") {
			t.Errorf("no actionable log line:\n%s", logs)
		}
	})
}

func TestUndecodableOrderEventIsPermanent(t *testing.T) {
	db := mustSQLite(t)
	s := MustNewService(t, db, Config{})
	ctx := context.Background()
	for name, data := range map[string]any{
		"not an object": []int{1, 2},
		"no order id":   map[string]any{"email": "ada@example.com"},
		"bad money":     map[string]any{"order_id": "ord_1", "total": "12 EUR"},
	} {
		e := MustEvent(t, "orders", EventOrderConfirmed, "ord_1", data)
		err := db.InTx(ctx, func(tx *store.Tx) error { return s.handleOrderConfirmed(ctx, tx, e) })
		if !bus.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent error (dead-lettered, not retried)", name, err)
		}
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM notify_emails`); n != 0 {
		t.Errorf("%d emails stored", n)
	}
}

func TestSMTPDownIsRetriedWithBackoffThenDelivered(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		sink := MustSink(t)
		addr := sink.Addr()
		if err := sink.Close(); err != nil { // the relay is down
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		s := MustNewService(t, db, Config{SMTPAddr: addr}, WithClock(clk.Now), WithMetrics(reg), noJitter)
		e := MustOrderEvent(t, orderData("ada@example.com"))
		MustHandle(t, db, s.handleOrderConfirmed, e)
		emails, _ := s.EmailsForEvent(ctx, e.ID)
		emailID := emails[0].ID

		var delays []time.Duration
		for attempt := 1; attempt <= 3; attempt++ {
			if n := MustSendPending(t, s); n != 1 {
				t.Fatalf("attempt %d: SendPending attempted %d", attempt, n)
			}
			em, err := s.GetEmail(ctx, emailID)
			if err != nil {
				t.Fatal(err)
			}
			if em.State != EmailPending || em.Attempts != attempt || em.NextAttemptAt == nil || !strings.Contains(em.LastError, "connect to SMTP server") {
				t.Fatalf("after attempt %d: %+v", attempt, em)
			}
			delay := em.NextAttemptAt.Sub(clk.Now())
			if want := DefaultEmailBackoff[attempt-1]; delay != want {
				t.Errorf("attempt %d: next attempt in %v, want %v", attempt, delay, want)
			}
			delays = append(delays, delay)
			// Not due yet: nothing happens.
			clk.Advance(delay - time.Second)
			if n := MustSendPending(t, s); n != 0 {
				t.Fatalf("attempt %d: an email was attempted before it was due", attempt)
			}
			clk.Advance(time.Second)
		}
		for i := 1; i < len(delays); i++ {
			if delays[i] <= delays[i-1] {
				t.Errorf("delays do not grow: %v", delays)
			}
		}

		// The relay comes back on the same address.
		back, err := mailsink.Start(addr)
		if err != nil {
			t.Fatalf("restart the sink on %s: %v", addr, err)
		}
		t.Cleanup(func() { _ = back.Close() })
		if n := MustSendPending(t, s); n != 1 {
			t.Fatalf("SendPending attempted %d after the relay came back", n)
		}
		if msgs := back.Messages(); len(msgs) != 1 || msgs[0].To[0] != "ada@example.com" {
			t.Fatalf("sink has %+v", msgs)
		}
		em, _ := s.GetEmail(ctx, emailID)
		if em.State != EmailSent || em.Attempts != 4 || em.NextAttemptAt != nil {
			t.Errorf("after delivery: %+v", em)
		}
		if r, sent := metricValue(t, s.metrics.emails.WithLabelValues(emailRetried)), metricValue(t, s.metrics.emails.WithLabelValues(emailSent)); r != 3 || sent != 1 {
			t.Errorf("metrics: retried %v, sent %v; want 3 and 1", r, sent)
		}
	})
}

func TestEmailFailsAfterMaxAttemptsWithAnActionableLog(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		logs := &logBuffer{}
		s, err := New(db, nil, testLogger(t, logs), Config{SMTPAddr: "127.0.0.1:1", EmailMaxAttempts: 2}, WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		e := MustOrderEvent(t, orderData("ada@example.com"))
		MustHandle(t, db, s.handleOrderConfirmed, e)
		MustSendPending(t, s)
		clk.Advance(time.Hour)
		MustSendPending(t, s)
		emails, _ := s.EmailsForEvent(ctx, e.ID)
		if em := emails[0]; em.State != EmailFailed || em.Attempts != 2 || em.NextAttemptAt != nil || em.LastError == "" {
			t.Fatalf("after the last attempt: %+v", em)
		}
		clk.Advance(24 * time.Hour)
		if n := MustSendPending(t, s); n != 0 {
			t.Errorf("a failed email was attempted again")
		}
		line := ""
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "level=ERROR") {
				line = l
			}
		}
		for _, want := range []string{"will not be retried", "gave up after 2 attempts", "127.0.0.1:1", emails[0].ID, "ord_01JD3Q7W0000000000000000AB", "a***@example.com"} {
			if !strings.Contains(line, want) {
				t.Errorf("error log line lacks %q: %s", want, line)
			}
		}
		if strings.Contains(logs.String(), "ada@example.com") {
			t.Error("the log carries the customer's full address")
		}
		if v := metricValue(t, s.metrics.emails.WithLabelValues(emailFailed)); v != 1 {
			t.Errorf("failed metric = %v", v)
		}

		// Once the relay is fixed, support resends it.
		sink := MustSink(t)
		s.cfg.SMTPAddr = sink.Addr()
		em, err := s.ResendEmail(ctx, emails[0].ID)
		if err != nil || em.State != EmailPending || em.Attempts != 0 || em.LastError != "" || em.NextAttemptAt == nil {
			t.Fatalf("ResendEmail: %+v, %v", em, err)
		}
		MustSendPending(t, s)
		if n := len(sink.Messages()); n != 1 {
			t.Errorf("sink got %d messages after the resend", n)
		}
		_, err = s.ResendEmail(ctx, "eml_01JD3Q7W0000000000000000XX")
		wantErr(t, err, apperr.NotFound)
	})
}

func TestPermanentSMTPRefusalFailsAtOnce(t *testing.T) {
	db := mustSQLite(t)
	ctx := context.Background()
	sink := MustSink(t, mailsink.WithRejectRecipient(func(a string) bool { return strings.HasPrefix(a, "gone@") }))
	s := MustNewService(t, db, Config{SMTPAddr: sink.Addr()})
	e := MustOrderEvent(t, orderData("gone@example.com"))
	MustHandle(t, db, s.handleOrderConfirmed, e)
	MustSendPending(t, s)
	emails, _ := s.EmailsForEvent(ctx, e.ID)
	if em := emails[0]; em.State != EmailFailed || em.Attempts != 1 || !strings.Contains(em.LastError, "550") {
		t.Fatalf("after a 550: %+v", em)
	}
}

func TestSTARTTLSAndAuth(t *testing.T) {
	db := mustSQLite(t)
	cert, pool := mustSelfSignedCert(t)
	sink := MustSink(t, mailsink.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}), mailsink.WithAuth("souk", "s3cret"))
	s := MustNewService(t, db, Config{SMTPAddr: sink.Addr(), SMTPTLS: TLSStartTLS, SMTPUsername: "souk", SMTPPassword: "s3cret"},
		WithSMTPTLSConfig(&tls.Config{RootCAs: pool}))
	MustHandle(t, db, s.handleOrderConfirmed, MustOrderEvent(t, orderData("ada@example.com")))
	MustSendPending(t, s)
	msgs := sink.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].User != "souk" {
		t.Fatalf("sink got %+v, want one message over TLS from user souk", msgs)
	}

	// A wrong password is retried (configuration), not failed for good.
	db2 := mustSQLite(t)
	bad := MustNewService(t, db2, Config{SMTPAddr: sink.Addr(), SMTPTLS: TLSStartTLS, SMTPUsername: "souk", SMTPPassword: "wrong"},
		WithSMTPTLSConfig(&tls.Config{RootCAs: pool}))
	e := MustOrderEvent(t, orderData("ada@example.com"))
	MustHandle(t, db2, bad.handleOrderConfirmed, e)
	MustSendPending(t, bad)
	emails, _ := bad.EmailsForEvent(context.Background(), e.ID)
	if em := emails[0]; em.State != EmailPending || !strings.Contains(em.LastError, "AUTH") {
		t.Errorf("after a failed AUTH: %+v", em)
	}

	// STARTTLS required but not offered: refused, not sent in clear.
	plain := MustSink(t)
	db3 := mustSQLite(t)
	strict := MustNewService(t, db3, Config{SMTPAddr: plain.Addr(), SMTPTLS: TLSStartTLS})
	MustHandle(t, db3, strict.handleOrderConfirmed, MustOrderEvent(t, orderData("ada@example.com")))
	MustSendPending(t, strict)
	if n := len(plain.Messages()); n != 0 {
		t.Errorf("a message went out in clear text to a server without STARTTLS")
	}
}

func TestConcurrentSendersSendEachEmailOnce(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		sink := MustSink(t)
		a := MustNewService(t, db, Config{SMTPAddr: sink.Addr()})
		b := MustNewService(t, db, Config{SMTPAddr: sink.Addr()})
		// More than two batches, so that both claim while the other sends.
		const n = 2*emailBatch + 5
		for range n {
			MustHandle(t, db, a.handleOrderConfirmed, MustOrderEvent(t, orderData("ada@example.com")))
		}
		// Rounds in step, so that the two claim at the same time again and
		// again.
		for round := 0; ; round++ {
			if round > n {
				t.Fatal("the senders keep finding emails")
			}
			var (
				wg   sync.WaitGroup
				k    [2]int
				errs [2]error
			)
			for i, s := range []*Service{a, b} {
				wg.Go(func() { k[i], errs[i] = s.SendPending(context.Background()) })
			}
			wg.Wait()
			if err := errors.Join(errs[:]...); err != nil {
				t.Fatal(err)
			}
			if k[0]+k[1] == 0 {
				break
			}
		}
		msgs := sink.Messages()
		seen := map[string]int{}
		for _, m := range msgs {
			h, _ := m.Header()
			seen[h.Get("Message-ID")]++
		}
		if len(msgs) != n || len(seen) != n {
			t.Fatalf("sink got %d messages with %d distinct Message-IDs, want %d of each", len(msgs), len(seen), n)
		}
		if left := countRows(t, db, `SELECT COUNT(*) FROM notify_emails WHERE state <> 'sent' OR attempts <> 1`); left != 0 {
			t.Errorf("%d emails not sent at their first attempt (claimed twice?)", left)
		}
	})
}
