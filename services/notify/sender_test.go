package notify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// MustQueueEmails stores one order confirmation per address, a second of
// clk apart, so they fall due in the order given, and returns them.
func MustQueueEmails(t testing.TB, db *store.DB, s *Service, clk *clock, addrs ...string) []Email {
	t.Helper()
	var out []Email
	for _, addr := range addrs {
		e := MustOrderEvent(t, orderData(addr))
		MustHandle(t, db, s.handleOrderConfirmed, e)
		emails, err := s.EmailsForEvent(context.Background(), e.ID)
		if err != nil || len(emails) != 1 {
			t.Fatalf("EmailsForEvent(%s) = %v, %v; want one", addr, emails, err)
		}
		out = append(out, emails[0])
		clk.Advance(time.Second)
	}
	return out
}

// MustGetEmails reads emails again.
func MustGetEmails(t testing.TB, s *Service, emails []Email) []Email {
	t.Helper()
	out := make([]Email, len(emails))
	for i, e := range emails {
		got, err := s.GetEmail(context.Background(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = got
	}
	return out
}

// recipients are the envelope recipients of messages, in arrival order.
func recipients(msgs []mailsink.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.To...)
	}
	return out
}

// wantReleased fails unless e is pending as it was before the round that
// released it: due when it was, its attempts and error unchanged, leased by
// nobody.
func wantReleased(t testing.TB, db *store.DB, before, e Email) {
	t.Helper()
	if e.State != EmailPending || e.Attempts != before.Attempts || e.LastError != before.LastError ||
		e.NextAttemptAt == nil || !e.NextAttemptAt.Equal(*before.NextAttemptAt) {
		t.Errorf("email %s (%s): %+v, want it pending as before the round: %+v", e.ID, e.To, e, before)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM notify_emails WHERE id = ? AND (lease_owner IS NOT NULL OR lease_until IS NOT NULL)`, e.ID); n != 0 {
		t.Errorf("email %s (%s) is still leased", e.ID, e.To)
	}
}

func TestBatchIsSentOverOneConnectionOldestDueFirst(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		sink := MustSink(t)
		s := MustNewService(t, db, Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
		queued := MustQueueEmails(t, db, s, clk, "c1@example.com", "c2@example.com", "c3@example.com", "c4@example.com", "c5@example.com")
		// Make the last created the first due, so that the order sent is
		// the due order, not the order of ids.
		for i, e := range queued {
			if _, err := db.Exec(context.Background(), `UPDATE notify_emails SET next_attempt_at = ? WHERE id = ?`,
				clk.Now().Add(-time.Duration(i+1)*time.Minute), e.ID); err != nil {
				t.Fatal(err)
			}
		}

		if n := MustSendPending(t, s); n != 5 {
			t.Fatalf("SendPending attempted %d, want 5", n)
		}
		if n := sink.Connections(); n != 1 {
			t.Errorf("the batch used %d SMTP connections, want 1", n)
		}
		msgs := sink.Messages()
		want := []string{"c5@example.com", "c4@example.com", "c3@example.com", "c2@example.com", "c1@example.com"}
		if got := recipients(msgs); !slices.Equal(got, want) {
			t.Errorf("sent to %v, want each once, oldest due first: %v", got, want)
		}
		ids := map[string]int{}
		for _, m := range msgs {
			h, _ := m.Header()
			ids[h.Get("Message-ID")]++
		}
		for _, e := range MustGetEmails(t, s, queued) {
			if e.State != EmailSent || e.Attempts != 1 || e.SentAt == nil || e.NextAttemptAt != nil {
				t.Errorf("email %s (%s): %+v, want sent at the first attempt", e.ID, e.To, e)
			}
			if n := ids["<"+e.ID+"@localhost>"]; n != 1 {
				t.Errorf("email %s (%s) arrived %d times", e.ID, e.To, n)
			}
		}
		if n := countRows(t, db, `SELECT COUNT(*) FROM notify_emails WHERE lease_owner IS NOT NULL OR lease_until IS NOT NULL`); n != 0 {
			t.Errorf("%d emails still leased", n)
		}
	})
}

func TestRefusedRecipientFailsWhileTheRestOfTheBatchIsSent(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		logs := &logBuffer{}
		sink := MustSink(t, mailsink.WithRejectRecipient(func(a string) bool { return strings.HasPrefix(a, "gone@") }))
		s, err := New(db, nil, testLogger(t, logs), Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		queued := MustQueueEmails(t, db, s, clk, "c1@example.com", "gone@example.com", "c3@example.com")
		if n := MustSendPending(t, s); n != 3 {
			t.Fatalf("SendPending attempted %d, want 3", n)
		}
		if got, want := recipients(sink.Messages()), []string{"c1@example.com", "c3@example.com"}; !slices.Equal(got, want) {
			t.Errorf("sent to %v, want %v", got, want)
		}
		// The connection is closed after the refusal and dialled again.
		if n := sink.Connections(); n != 2 {
			t.Errorf("%d SMTP connections, want 2", n)
		}
		got := MustGetEmails(t, s, queued)
		for _, i := range []int{0, 2} {
			if e := got[i]; e.State != EmailSent || e.Attempts != 1 {
				t.Errorf("email to %s: %+v, want sent", e.To, e)
			}
		}
		if e := got[1]; e.State != EmailFailed || e.Attempts != 1 || e.NextAttemptAt != nil || !strings.Contains(e.LastError, "550") {
			t.Errorf("email to %s: %+v, want failed with the 550", e.To, e)
		}
		if !strings.Contains(logs.String(), "the SMTP server refused it for good") {
			t.Errorf("no log line for the refusal:\n%s", logs)
		}
	})
}

func TestSessionDeadlineReleasesTheEmailsNotAttempted(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for an SMTP session to time out")
	}
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		logs := &logBuffer{}
		// Each message takes the relay 300 ms; the session has 500 ms
		// (below what Validate allows, so set after New): the first email
		// goes out, the second runs out of time, the rest are not tried.
		sink := MustSink(t, mailsink.WithDelay(300*time.Millisecond))
		s, err := New(db, nil, testLogger(t, logs), Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now), noJitter)
		if err != nil {
			t.Fatal(err)
		}
		s.cfg.SMTPTimeout = 500 * time.Millisecond
		queued := MustQueueEmails(t, db, s, clk, "c1@example.com", "c2@example.com", "c3@example.com", "c4@example.com", "c5@example.com")

		n := MustSendPending(t, s)
		got := MustGetEmails(t, s, queued)
		sent, released := 0, 0
		for i, e := range got {
			if i >= n {
				wantReleased(t, db, queued[i], e)
				released++
				continue
			}
			// Attempted: sent, or timed out and retried later.
			switch {
			case e.State == EmailSent && e.Attempts == 1:
				sent++
			case e.State == EmailPending && e.Attempts == 1 && strings.Contains(e.LastError, "timeout") && e.NextAttemptAt.After(clk.Now()):
			default:
				t.Errorf("attempted email to %s: %+v, want sent or timed out and retried later", e.To, e)
			}
		}
		if got[0].State != EmailSent {
			t.Errorf("the first email was not sent within the session: %+v", got[0])
		}
		// A second email would be accepted 600 ms into the session at the
		// earliest: the session's deadline cut it short.
		if sent > 1 {
			t.Errorf("%d emails sent in one session of 500 ms at 300 ms each: the session outlasted its bound", sent)
		}
		if released < 3 {
			t.Errorf("%d of 5 emails released (SendPending attempted %d), want at least 3", released, n)
		}
		if !strings.Contains(logs.String(), "emails not attempted are due again") {
			t.Errorf("no log line for the released emails:\n%s", logs)
		}
		// They go out in the next rounds.
		s.cfg.SMTPTimeout = 10 * time.Second
		for range 3 {
			MustSendPending(t, s)
		}
		if n := countRows(t, db, `SELECT COUNT(*) FROM notify_emails WHERE state = 'sent'`); n < 4 {
			t.Errorf("%d emails sent after more rounds, want at least the 4 not retried later", n)
		}
	})
}

func TestCancelStopsBetweenEmailsAndReleasesTheRest(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Cancelled while the first email is being sent.
		sink := MustSink(t, mailsink.WithRejectRecipient(func(a string) bool {
			if a == "c1@example.com" {
				cancel()
			}
			return false
		}))
		s := MustNewService(t, db, Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
		queued := MustQueueEmails(t, db, s, clk, "c1@example.com", "c2@example.com", "c3@example.com")
		n, err := s.SendPending(ctx)
		if err != nil || n != 1 {
			t.Fatalf("SendPending = %d, %v; want 1 attempted and no error", n, err)
		}
		if got := recipients(sink.Messages()); !slices.Equal(got, []string{"c1@example.com"}) {
			t.Errorf("sent to %v, want the first email only", got)
		}
		got := MustGetEmails(t, s, queued)
		if got[0].State != EmailSent || got[0].Attempts != 1 {
			t.Errorf("the email under way when cancelled: %+v, want sent and recorded", got[0])
		}
		for i := 1; i < len(got); i++ {
			wantReleased(t, db, queued[i], got[i])
		}
		if n := MustSendPending(t, s); n != 2 {
			t.Errorf("the next round attempted %d, want the 2 released", n)
		}
	})
}

func TestEmailSentAfterItsLeaseWasTakenIsLogged(t *testing.T) {
	db := mustSQLite(t)
	clk := newClock()
	logs := &logBuffer{}
	// While the email is being sent, its lease passes to another process.
	sink := MustSink(t, mailsink.WithRejectRecipient(func(string) bool {
		if _, err := db.Exec(context.Background(), `UPDATE notify_emails SET lease_owner = 'lease_other'`); err != nil {
			t.Error(err)
		}
		return false
	}))
	s, err := New(db, nil, testLogger(t, logs), Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	queued := MustQueueEmails(t, db, s, clk, "c1@example.com")
	if n := MustSendPending(t, s); n != 1 {
		t.Fatalf("SendPending attempted %d, want 1", n)
	}
	if !strings.Contains(logs.String(), "email sent after its lease expired") {
		t.Errorf("no warning about the lost lease:\n%s", logs)
	}
	// The successor's lease is left alone.
	if e := MustGetEmails(t, s, queued)[0]; e.State != EmailPending {
		t.Errorf("email recorded over another process's lease: %+v", e)
	}
}

func TestSendPendingClaimsAtMostABatch(t *testing.T) {
	db := mustSQLite(t)
	clk := newClock()
	sink := MustSink(t)
	s := MustNewService(t, db, Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
	var addrs []string
	for i := range emailBatch + 3 {
		addrs = append(addrs, fmt.Sprintf("c%d@example.com", i))
	}
	MustQueueEmails(t, db, s, clk, addrs...)
	if n := MustSendPending(t, s); n != emailBatch {
		t.Fatalf("first round attempted %d, want a full batch of %d", n, emailBatch)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM notify_emails WHERE state = 'pending' AND attempts = 0 AND lease_owner IS NULL`); n != 3 {
		t.Errorf("%d emails left untouched, want 3", n)
	}
	if n := MustSendPending(t, s); n != 3 {
		t.Errorf("second round attempted %d, want 3", n)
	}
	if n := sink.Connections(); n != 2 {
		t.Errorf("%d SMTP connections for two rounds, want 2", n)
	}
}

// Wake-ups that arrive while the sender gathers after one are answered by
// one round: a burst of confirmations goes out as one batch.
func TestWakeUpsGatherIntoOneRound(t *testing.T) {
	s := &Service{cfg: Config{PollInterval: time.Hour}, log: slog.New(slog.DiscardHandler)}
	wake := make(chan struct{}, 1)
	var rounds atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.loop(ctx, "test", wake, time.Second, 10, func(context.Context) (int, error) {
			rounds.Add(1)
			return 0, nil
		})
	}()
	waitUntil(t, 5*time.Second, "the first round", func() bool { return rounds.Load() == 1 })
	for range 5 {
		select {
		case wake <- struct{}{}:
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitUntil(t, 5*time.Second, "the gathered round", func() bool { return rounds.Load() >= 2 })
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	if n := rounds.Load(); n != 2 {
		t.Errorf("%d rounds for a burst of wake-ups within the gather time, want 2 (the first, then one for the burst)", n)
	}
}
