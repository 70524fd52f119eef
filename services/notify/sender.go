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
)

// emailLeaseMargin is added to SMTPTimeout for an email's lease: the send
// is over (or abandoned) well before another process may take the email.
const emailLeaseMargin = 30 * time.Second

// SendPending sends the emails that are due, one at a time, each claimed
// with a lease just before it is sent, and returns how many it attempted.
// Several processes may call it at once: each email is attempted by one of
// them. A failed attempt is scheduled again after Config.EmailBackoff, or
// the email is failed once Config.EmailMaxAttempts are used or the server
// refused it for good (5xx), with an error log line saying what to do. It
// sends nothing when Config.SMTPAddr is empty. Run calls it; cancelling ctx
// stops it between emails (the one being sent finishes, bounded by
// SMTPTimeout).
func (s *Service) SendPending(ctx context.Context) (int, error) {
	if s.cfg.SMTPAddr == "" {
		return 0, nil
	}
	due, err := dueEmails(ctx, s.db, s.now(), emailBatch)
	if err != nil {
		return 0, fmt.Errorf("find due emails: %w", err)
	}
	n := 0
	var errs []error
	for _, emailID := range due {
		if ctx.Err() != nil {
			break
		}
		now := s.now()
		owner := id.New("lease")
		ok, err := claimEmail(ctx, s.db, emailID, owner, now, now.Add(s.cfg.SMTPTimeout+emailLeaseMargin))
		if err != nil {
			errs = append(errs, fmt.Errorf("claim email %s: %w", emailID, err))
			continue
		}
		if !ok {
			continue // another process has it
		}
		e, err := getEmail(ctx, s.db, emailID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		if err := s.sendEmail(context.WithoutCancel(ctx), e, owner); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// emailBatch bounds the emails one SendPending looks at.
const emailBatch = 20

// sendEmail makes one attempt at e, which owner holds the lease on, and
// records the outcome. The error is about recording, not sending.
func (s *Service) sendEmail(ctx context.Context, e Email, owner string) error {
	now := s.now()
	msg, err := s.buildMessage(e, now)
	start := time.Now()
	if err == nil {
		err = s.smtpSend(ctx, e.To, msg)
	}
	took := time.Since(start)
	if err == nil {
		ok, rerr := finishEmail(ctx, s.db, e.ID, owner, EmailSent, "", nil, s.now())
		if rerr != nil {
			return fmt.Errorf("record email %s as sent: %w", e.ID, rerr)
		}
		s.metrics.email(emailSent, took)
		if !ok {
			s.log.WarnContext(ctx, "email sent after its lease expired; another process may send it again",
				"email_id", e.ID, "kind", e.Kind, "reference", e.Reference)
			return nil
		}
		s.log.InfoContext(ctx, "email sent", "email_id", e.ID, "kind", e.Kind, "reference", e.Reference, "attempt", e.Attempts)
		return nil
	}

	reason := oneLine(err.Error())
	permanent := isPermanentSMTP(err)
	if permanent || e.Attempts >= s.cfg.EmailMaxAttempts {
		if _, rerr := finishEmail(ctx, s.db, e.ID, owner, EmailFailed, reason, nil, s.now()); rerr != nil {
			return fmt.Errorf("record email %s as failed: %w", e.ID, rerr)
		}
		s.metrics.email(emailFailed, took)
		hint := fmt.Sprintf("gave up after %d attempts; check that the SMTP relay %s is up and accepts mail from %s (see notify SMTP settings), then resend it (ResendEmail)", e.Attempts, s.cfg.SMTPAddr, s.from.Address)
		if permanent {
			hint = "the SMTP server refused it for good; check the recipient address and the relay's policy, and contact the customer another way"
		}
		s.log.ErrorContext(ctx, "email failed and will not be retried: "+hint,
			"email_id", e.ID, "kind", e.Kind, "reference", e.Reference, "to", maskAddress(e.To),
			"attempts", e.Attempts, "smtp_addr", s.cfg.SMTPAddr, "error", reason)
		return nil
	}
	next := s.now().Add(s.jitter(backoff(s.cfg.EmailBackoff, e.Attempts))).Truncate(time.Microsecond)
	if _, rerr := finishEmail(ctx, s.db, e.ID, owner, EmailPending, reason, &next, s.now()); rerr != nil {
		return fmt.Errorf("record email %s attempt: %w", e.ID, rerr)
	}
	s.metrics.email(emailRetried, took)
	s.log.WarnContext(ctx, "email not sent; retrying later",
		"email_id", e.ID, "kind", e.Kind, "reference", e.Reference, "attempt", e.Attempts, "max_attempts", s.cfg.EmailMaxAttempts,
		"next_attempt_at", next, "smtp_addr", s.cfg.SMTPAddr, "error", reason)
	return nil
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

// smtpSend delivers msg to one recipient over a new SMTP connection,
// bounded by Config.SMTPTimeout as a whole.
func (s *Service) smtpSend(ctx context.Context, to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SMTPTimeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(s.cfg.SMTPAddr)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.SMTPAddr)
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", s.cfg.SMTPAddr, err)
	}
	// The whole exchange ends with ctx, whatever command is under way.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

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
			return fmt.Errorf("STARTTLS with %s: %w", s.cfg.SMTPAddr, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = s.cfg.SMTPTimeout, s.cfg.SMTPTimeout
	if s.cfg.SMTPUsername != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.SMTPUsername, s.cfg.SMTPPassword)); err != nil {
			return fmt.Errorf("SMTP AUTH as %s at %s: %w", s.cfg.SMTPUsername, s.cfg.SMTPAddr, err)
		}
	}
	if err := c.SendMail(s.from.Address, []string{to}, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("SMTP send via %s: %w", s.cfg.SMTPAddr, err)
	}
	// The server has the message; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// dropLineBreaks is a strings.Map mapping that removes CR and LF.
func dropLineBreaks(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}
