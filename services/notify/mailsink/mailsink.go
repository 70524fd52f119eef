// Package mailsink is a local SMTP server that accepts every message and
// keeps it in memory, for developers (`souk mailsink --addr
// 127.0.0.1:1025`, then point notify's SMTPAddr at it) and for tests, which
// send real email over loopback and inspect what arrived. It listens on
// loopback only, speaks plain SMTP (optionally STARTTLS and AUTH PLAIN),
// and serves the received messages as JSON over HTTP (Handler).
package mailsink

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// MaxMessageBytes bounds one message; bigger ones are refused (552).
const MaxMessageBytes = 10 << 20

// DefaultMaxMessages is how many messages the sink keeps; older ones are
// dropped first.
const DefaultMaxMessages = 1000

// Message is one received email.
type Message struct {
	// ID numbers messages in arrival order, from 1.
	ID int `json:"id"`
	// From and To are the SMTP envelope (MAIL FROM, RCPT TO).
	From string   `json:"from"`
	To   []string `json:"to"`
	// Subject is the decoded Subject header.
	Subject    string    `json:"subject"`
	ReceivedAt time.Time `json:"received_at"`
	// Text and HTML are the decoded text/plain and text/html parts (or
	// body), empty when the message has none.
	Text string `json:"text"`
	HTML string `json:"html"`
	// Raw is the message as received (headers and body, CRLF line ends).
	Raw []byte `json:"-"`
	// TLS and User tell how the client connected: with STARTTLS, and
	// authenticated as whom ("" without AUTH).
	TLS  bool   `json:"tls"`
	User string `json:"user,omitempty"`

	decoded bool // Subject, Text and HTML are filled in
}

// Size is the length of the raw message in bytes.
func (m Message) Size() int { return len(m.Raw) }

// Header parses the raw message's header.
func (m Message) Header() (mail.Header, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// Option configures a Sink.
type Option func(*Sink)

// WithLog prints a one-line summary of every message received to w.
func WithLog(w io.Writer) Option {
	return func(s *Sink) { s.logw = w }
}

// WithTLS offers STARTTLS with cfg.
func WithTLS(cfg *tls.Config) Option {
	return func(s *Sink) { s.tlsConfig = cfg }
}

// WithAuth requires AUTH PLAIN with this user name and password before
// MAIL FROM.
func WithAuth(username, password string) Option {
	return func(s *Sink) { s.user, s.pass = username, password }
}

// WithRejectRecipient refuses RCPT TO for the addresses reject returns
// true for, with 550 (mailbox unavailable): a bounce, for trying out how
// a sender handles one.
func WithRejectRecipient(reject func(address string) bool) Option {
	return func(s *Sink) { s.reject = reject }
}

// WithDelay makes the sink wait d before it takes each message's data
// (it keeps the message, and answers, afterwards): a slow relay, for
// trying out a sender's timeouts.
func WithDelay(d time.Duration) Option {
	return func(s *Sink) { s.delay = d }
}

// WithMaxMessages keeps at most n messages (default DefaultMaxMessages).
func WithMaxMessages(n int) Option {
	return func(s *Sink) { s.max = n }
}

// Sink is a running SMTP sink. It is safe for concurrent use.
type Sink struct {
	srv       *smtp.Server
	ln        net.Listener
	logw      io.Writer
	tlsConfig *tls.Config
	user      string
	pass      string
	max       int
	reject    func(string) bool
	delay     time.Duration
	done      chan struct{}

	mu       sync.Mutex
	messages []Message
	nextID   int
	conns    int
	notify   chan struct{} // closed and replaced on every message
	logMu    sync.Mutex
}

// Start listens on addr ("127.0.0.1:1025"; port 0 picks a free one) and
// serves until Close. The host must be a loopback address or "localhost":
// the sink accepts mail from anyone who reaches it.
func Start(addr string, opts ...Option) (*Sink, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mailsink: address %q: want host:port", addr)
	}
	if !loopback(host) {
		return nil, fmt.Errorf("mailsink: address %q: the sink listens on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	s := &Sink{max: DefaultMaxMessages, done: make(chan struct{}), notify: make(chan struct{})}
	for _, opt := range opts {
		opt(s)
	}
	if s.max < 1 {
		return nil, errors.New("mailsink: WithMaxMessages: want at least 1")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mailsink: listen on %s: %w", addr, err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	srv.Domain = "mailsink.localhost"
	srv.MaxMessageBytes = MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.TLSConfig = s.tlsConfig
	srv.AllowInsecureAuth = s.tlsConfig == nil // loopback only, so AUTH in clear is acceptable here
	srv.ErrorLog = discardLogger{}
	s.srv, s.ln = srv, ln
	go func() {
		defer close(s.done)
		_ = srv.Serve(countingListener{ln, s})
	}()
	return s, nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the address the sink listens on ("127.0.0.1:41234").
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the sink, dropping open connections. Messages received stay
// readable. It is idempotent.
func (s *Sink) Close() error {
	err := s.srv.Close()
	// The server may not have registered the listener yet (Serve runs in
	// its own goroutine): close it here too, so Serve returns either way.
	_ = s.ln.Close()
	<-s.done
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Messages returns copies of the messages received, oldest first. A
// message's parts are decoded when it is first read here, not when it
// arrives: a sink under load (the shopper benchmark's) keeps only the last
// few and reads none.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i := range s.messages {
		if !s.messages[i].decoded {
			decode(&s.messages[i])
		}
		m := s.messages[i]
		m.To = append([]string(nil), m.To...)
		m.Raw = append([]byte(nil), m.Raw...)
		out[i] = m
	}
	return out
}

// Received is how many messages the sink received since it started
// (including those it no longer keeps).
func (s *Sink) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextID
}

// Connections is how many connections the sink accepted since it started:
// whether a sender keeps one connection for several messages shows here.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Reset forgets every message received.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.messages = nil
	s.mu.Unlock()
}

// Wait returns a channel that is closed when the next message arrives.
func (s *Sink) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

func (s *Sink) add(m Message) {
	s.mu.Lock()
	s.nextID++
	m.ID = s.nextID
	s.messages = append(s.messages, m)
	if over := len(s.messages) - s.max; over > 0 {
		s.messages = append([]Message(nil), s.messages[over:]...)
	}
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	if s.logw != nil {
		s.logMu.Lock()
		fmt.Fprintf(s.logw, "mailsink: #%d %s from %s to %s: %q (%d bytes)\n",
			m.ID, m.ReceivedAt.Format(time.RFC3339), m.From, strings.Join(m.To, ", "), m.Subject, len(m.Raw))
		s.logMu.Unlock()
	}
}

// Handler serves the received messages as JSON: GET lists them, newest
// first ({"data": [...]}, without the raw source), GET ?id=N returns the
// raw source of one as message/rfc822, DELETE forgets them all.
func (s *Sink) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodDelete:
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			w.Header().Set("Allow", "GET, HEAD, DELETE")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		msgs := s.Messages()
		if want := r.URL.Query().Get("id"); want != "" {
			for _, m := range msgs {
				if fmt.Sprint(m.ID) == want {
					w.Header().Set("Content-Type", "message/rfc822")
					_, _ = w.Write(m.Raw)
					return
				}
			}
			http.Error(w, "no such message", http.StatusNotFound)
			return
		}
		type item struct {
			Message
			Size int `json:"size"`
		}
		out := struct {
			Data []item `json:"data"`
		}{Data: make([]item, 0, len(msgs))}
		for i := len(msgs) - 1; i >= 0; i-- {
			out.Data = append(out.Data, item{msgs[i], msgs[i].Size()})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}

// countingListener counts the connections it accepts in sink.conns.
type countingListener struct {
	net.Listener
	sink *Sink
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.sink.mu.Lock()
		l.sink.conns++
		l.sink.mu.Unlock()
	}
	return c, err
}

// session is one SMTP conversation.
type session struct {
	sink *Sink
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.sink.user == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.sink.user || password != ss.sink.pass {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.user != "" && ss.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"} // RFC 4954
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.sink.reject != nil && ss.sink.reject(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable (mailsink rejects it)"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	time.Sleep(ss.sink.delay)
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: ss.from, To: ss.to, Raw: raw, ReceivedAt: time.Now().UTC(), User: ss.user}
	if _, ok := ss.conn.TLSConnectionState(); ok {
		m.TLS = true
	}
	if ss.sink.logw != nil {
		decode(&m) // the log line names the subject
	}
	ss.sink.add(m)
	ss.from, ss.to = "", nil
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// decode fills the message's subject and text parts from its source, as
// far as they parse; a message that does not parse is kept raw.
func decode(m *Message) {
	m.decoded = true
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return
	}
	dec := new(mime.WordDecoder)
	if subj, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		m.Subject = subj
	}
	walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, m, 0)
}

// walk reads a body of the content type into the message's text parts,
// descending into multiparts.
func walk(contentType, encoding string, body io.Reader, m *Message, depth int) {
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") && depth < 5 {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m, depth+1)
		}
	}
	var r = body
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body) // ignores line breaks
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxMessageBytes))
	if err != nil {
		return
	}
	switch mt {
	case "text/plain":
		if m.Text == "" {
			m.Text = string(b)
		}
	case "text/html":
		if m.HTML == "" {
			m.HTML = string(b)
		}
	}
}

// discardLogger drops the SMTP server's own log lines (a client hanging
// up is not news).
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
