package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// emailLeaseMargin is added to SMTPTimeout for a batch's lease: the SMTP
// session is over (or abandoned) and its outcomes are recorded well before
// another process may take the batch's emails.
const emailLeaseMargin = 30 * time.Second

// emailBatch bounds the emails one SendPending claims and sends over one
// SMTP session.
const emailBatch = 20

// SendPending sends the emails that are due, oldest due first, and returns
// how many it attempted. It claims up to emailBatch of them in one
// statement, under one lease that ends SMTPTimeout + emailLeaseMargin from
// now, and reads their messages in the claim's transaction; sends them in
// order over one SMTP connection (dialled again after an email failed),
// the session bounded as a whole by Config.SMTPTimeout; and then records
// every outcome in one transaction. Cancelling ctx stops it
// between emails (the one being sent finishes); the emails it did not get
// to, because of that or because the session's time ran out, are released:
// due again at once, without the attempt the claim counted.
//
// Several processes may call it at once: each email is attempted by one of
// them. A failed attempt is scheduled again after Config.EmailBackoff, or
// the email is failed once Config.EmailMaxAttempts are used or the server
// refused it for good (5xx), with an error log line saying what to do. It
// sends nothing when Config.SMTPAddr is empty. Run calls it.
//
// Delivery is at least once: a process that stops after sending a batch
// and before recording it sends that batch — at most one — again once its
// lease expires, with the same Message-IDs, so receivers can drop the
// repeats. The error is about claiming or recording, never about sending.
func (s *Service) SendPending(ctx context.Context) (int, error) {
	if s.cfg.SMTPAddr == "" {
		return 0, nil
	}
	owner := id.New("lease")
	now := s.now()
	var batch []Email
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		batch, err = claimEmails(ctx, tx, owner, now, now.Add(s.cfg.SMTPTimeout+emailLeaseMargin), emailBatch)
		return err
	})
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	attempts := s.sendBatch(ctx, batch)
	n := 0
	for _, a := range attempts {
		if a.tried {
			n++
		}
	}
	// What went out is recorded even when ctx is cancelled.
	rctx := context.WithoutCancel(ctx)
	if err := s.recordAttempts(rctx, owner, attempts); err != nil {
		return n, err
	}
	s.report(rctx, attempts, ctx.Err() != nil)
	return n, nil
}

// emailAttempt is what became of one email of a claimed batch, and the
// outcome to record for it.
type emailAttempt struct {
	Email
	tried bool // false: not attempted, to be released
	err   error
	took  time.Duration

	// Decided before the outcomes are recorded, so that a transaction run
	// again records the same.
	state     EmailState
	reason    string
	permanent bool
	next      *time.Time
	// recorded is whether the conditional UPDATE found the lease still
	// held, and so changed the email.
	recorded bool
}

// sendBatch attempts the claimed emails in order over one SMTP session,
// until ctx is cancelled or the session's time is up.
func (s *Service) sendBatch(ctx context.Context, batch []Email) []emailAttempt {
	attempts := make([]emailAttempt, len(batch))
	sess := s.newSMTPSession(ctx)
	defer sess.close()
	for i, e := range batch {
		a := &attempts[i]
		a.Email = e
		if ctx.Err() != nil || sess.expired() {
			continue
		}
		a.tried = true
		msg, err := s.buildMessage(e, s.now())
		start := time.Now()
		if err == nil {
			err = sess.send(e.To, msg)
		}
		a.took, a.err = time.Since(start), err
	}
	return attempts
}

// recordAttempts records the batch's outcomes in one transaction, each if
// owner still holds its lease, and releases the emails not attempted.
func (s *Service) recordAttempts(ctx context.Context, owner string, attempts []emailAttempt) error {
	now := s.now()
	var release []string
	for i := range attempts {
		a := &attempts[i]
		if !a.tried {
			release = append(release, a.ID)
			continue
		}
		if a.err == nil {
			a.state = EmailSent
			continue
		}
		a.reason, a.permanent = oneLine(a.err.Error()), isPermanentSMTP(a.err)
		if a.permanent || a.Attempts >= s.cfg.EmailMaxAttempts {
			a.state = EmailFailed
			continue
		}
		a.state = EmailPending
		next := now.Add(s.jitter(backoff(s.cfg.EmailBackoff, a.Attempts))).Truncate(time.Microsecond)
		a.next = &next
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		for i := range attempts {
			a := &attempts[i]
			if !a.tried {
				continue
			}
			ok, err := finishEmail(ctx, tx, a.ID, owner, a.state, a.reason, a.next, now)
			if err != nil {
				return fmt.Errorf("record email %s as %s: %w", a.ID, a.state, err)
			}
			a.recorded = ok
		}
		if err := releaseEmails(ctx, tx, owner, release, now); err != nil {
			return fmt.Errorf("release %d emails not attempted: %w", len(release), err)
		}
		return nil
	})
}

// report emits the metrics and log lines of a recorded batch; stopped says
// ctx was cancelled during it.
func (s *Service) report(ctx context.Context, attempts []emailAttempt, stopped bool) {
	released := 0
	for _, a := range attempts {
		if !a.tried {
			released++
			continue
		}
		switch a.state {
		case EmailSent:
			s.metrics.email(emailSent, a.took)
			if !a.recorded {
				s.log.WarnContext(ctx, "email sent after its lease expired; another process may send it again",
					"email_id", a.ID, "kind", a.Kind, "reference", a.Reference)
				continue
			}
			s.log.InfoContext(ctx, "email sent", "email_id", a.ID, "kind", a.Kind, "reference", a.Reference, "attempt", a.Attempts)
		case EmailFailed:
			s.metrics.email(emailFailed, a.took)
			hint := fmt.Sprintf("gave up after %d attempts; check that the SMTP relay %s is up and accepts mail from %s (see notify SMTP settings), then resend it (ResendEmail)", a.Attempts, s.cfg.SMTPAddr, s.from.Address)
			if a.permanent {
				hint = "the SMTP server refused it for good; check the recipient address and the relay's policy, and contact the customer another way"
			}
			s.log.ErrorContext(ctx, "email failed and will not be retried: "+hint,
				"email_id", a.ID, "kind", a.Kind, "reference", a.Reference, "to", maskAddress(a.To),
				"attempts", a.Attempts, "smtp_addr", s.cfg.SMTPAddr, "error", a.reason)
		default:
			s.metrics.email(emailRetried, a.took)
			s.log.WarnContext(ctx, "email not sent; retrying later",
				"email_id", a.ID, "kind", a.Kind, "reference", a.Reference, "attempt", a.Attempts, "max_attempts", s.cfg.EmailMaxAttempts,
				"next_attempt_at", *a.next, "smtp_addr", s.cfg.SMTPAddr, "error", a.reason)
		}
	}
	switch {
	case released == 0:
	case stopped:
		s.log.InfoContext(ctx, "email sender stopping; emails not attempted are due again", "released", released)
	default:
		s.log.WarnContext(ctx, "SMTP session used up its time (SMTPTimeout); emails not attempted are due again in the next round",
			"released", released, "smtp_timeout", s.cfg.SMTPTimeout, "smtp_addr", s.cfg.SMTPAddr)
	}
}

// backoff is the pause after the attempt-th failed attempt; the schedule's
// last entry repeats.
func backoff(schedule []time.Duration, attempt int) time.Duration {
	return schedule[min(max(attempt-1, 0), len(schedule)-1)]
}

// isPermanentSMTP reports whether err is the server refusing the message
// for good (a 5xx reply), which retrying cannot fix. Authentication
// failures are not: they are fixed by configuration, and the email should
// go out once it is.
func isPermanentSMTP(err error) bool {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case 530, 534, 535, 538: // authentication required, too weak, failed, encryption required
		return false
	}
	return se.Code >= 500 && se.Code < 600
}

// buildMessage renders e as an RFC 5322 message: multipart/alternative
// with a plain-text and an HTML part, both quoted-printable UTF-8. The
// Message-ID is derived from the email id, so every attempt at one email
// carries the same one (receivers can drop a duplicate).
func (s *Service) buildMessage(e Email, date time.Time) ([]byte, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, part := range []struct{ typ, body string }{{"text/plain", e.Text}, {"text/html", e.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	to := mail.Address{Address: e.To}
	var head bytes.Buffer
	header := func(k, v string) {
		// Values are ours or encoded; no line break may smuggle a header in.
		head.WriteString(k + ": " + strings.Map(dropLineBreaks, v) + "\r\n")
	}
	header("From", s.from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<"+e.ID+"@"+s.messageIDDomain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	header("Auto-Submitted", "auto-generated")
	head.WriteString("\r\n")
	return append(head.Bytes(), buf.Bytes()...), nil
}

// smtpSession sends emails over one SMTP connection, dialled when the
// first email needs it and again after an email failed (the connection is
// closed then rather than repaired). The session — connecting and every
// email — ends at its deadline, Config.SMTPTimeout after it started; each
// command is bounded by SMTPTimeout too. It is not safe for concurrent use.
type smtpSession struct {
	s      *Service
	ctx    context.Context // ends at the deadline; dialling honours it
	cancel context.CancelFunc
	end    time.Time
	c      *smtp.Client // nil: not connected
}

// newSMTPSession starts a session. Cancelling ctx does not cut an exchange
// short: the caller stops between emails.
func (s *Service) newSMTPSession(ctx context.Context) *smtpSession {
	end := time.Now().Add(s.cfg.SMTPTimeout)
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), end)
	return &smtpSession{s: s, ctx: sctx, cancel: cancel, end: end}
}

// expired reports whether the session's time is up.
func (ss *smtpSession) expired() bool { return !time.Now().Before(ss.end) }

// send delivers msg to one recipient, connecting first when the session
// has no connection. After an error the connection is closed.
func (ss *smtpSession) send(to string, msg []byte) error {
	if ss.c == nil {
		c, err := ss.s.dialSMTP(ss.ctx, ss.end)
		if err != nil {
			return err
		}
		ss.c = c
	}
	if err := ss.c.SendMail(ss.s.from.Address, []string{to}, bytes.NewReader(msg)); err != nil {
		_ = ss.c.Close()
		ss.c = nil
		return fmt.Errorf("SMTP send via %s: %w", ss.s.cfg.SMTPAddr, err)
	}
	return nil
}

// close ends the session with QUIT on an open connection. The server has
// every message sent: a failed QUIT changes nothing.
func (ss *smtpSession) close() {
	if ss.c != nil {
		if err := ss.c.Quit(); err != nil {
			_ = ss.c.Close()
		}
		ss.c = nil
	}
	ss.cancel()
}

// dialSMTP connects to Config.SMTPAddr within ctx and gets the connection
// ready for mail: TLS as configured, then AUTH when a user name is set.
// No deadline on the connection passes end.
func (s *Service) dialSMTP(ctx context.Context, end time.Time) (*smtp.Client, error) {
	host, _, _ := net.SplitHostPort(s.cfg.SMTPAddr)
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.cfg.SMTPAddr)
	if err != nil {
		return nil, fmt.Errorf("connect to SMTP server %s: %w", s.cfg.SMTPAddr, err)
	}
	conn := &deadlineConn{Conn: raw, end: end}
	_ = conn.SetDeadline(end)

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.smtpTLS != nil {
		tlsCfg = s.smtpTLS.Clone()
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = host
	}
	var c *smtp.Client
	switch s.cfg.SMTPTLS {
	case TLSImplicit:
		c = smtp.NewClient(tls.Client(conn, tlsCfg))
	case TLSStartTLS:
		if c, err = smtp.NewClientStartTLS(conn, tlsCfg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", s.cfg.SMTPAddr, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout, c.SubmissionTimeout = s.cfg.SMTPTimeout, s.cfg.SMTPTimeout
	if s.cfg.SMTPUsername != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.SMTPUsername, s.cfg.SMTPPassword)); err != nil {
			c.Close()
			return nil, fmt.Errorf("SMTP AUTH as %s at %s: %w", s.cfg.SMTPUsername, s.cfg.SMTPAddr, err)
		}
	}
	return c, nil
}

// deadlineConn is a connection whose deadlines never pass end. go-smtp
// sets a deadline for each command and clears it afterwards (and writes a
// message's body with none), which alone would let a session outlast its
// bound.
type deadlineConn struct {
	net.Conn
	end time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.capped(t)) }

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capped(t))
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.capped(t))
}

// capped is t, or end when t is later or zero (no deadline).
func (c *deadlineConn) capped(t time.Time) time.Time {
	if t.IsZero() || t.After(c.end) {
		return c.end
	}
	return t
}

// dropLineBreaks is a strings.Map mapping that removes CR and LF.
func dropLineBreaks(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}
