package mailsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const testMessage = "From: Souk <orders@shop.example>\r\n" +
	"To: ada@example.com\r\n" +
	"Subject: =?utf-8?q?Caf=C3=A9_order?=\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=b1\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Hello =E2=82=AC 10\r\n" +
	"--b1\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+SGVsbG88L3A+\r\n" +
	"--b1--\r\n"

// MustStart starts a sink on a free loopback port, closed at the end.
func MustStart(t testing.TB, opts ...Option) *Sink {
	t.Helper()
	s, err := Start("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func send(addr, from string, to []string, msg string, auth sasl.Client) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

func TestSinkKeepsMessages(t *testing.T) {
	var log bytes.Buffer
	s := MustStart(t, WithLog(&log))
	wait := s.Wait()
	if err := send(s.Addr(), "orders@shop.example", []string{"ada@example.com", "bob@example.com"}, testMessage, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not fire")
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.ID != 1 || m.From != "orders@shop.example" || len(m.To) != 2 || m.Subject != "Café order" ||
		m.Text != "Hello € 10" || m.HTML != "<p>Hello</p>" || m.TLS || m.User != "" || m.Size() != len(testMessage) {
		t.Errorf("message: %+v", m)
	}
	if h, err := m.Header(); err != nil || h.Get("To") != "ada@example.com" {
		t.Errorf("header: %v, %v", h, err)
	}
	if !strings.Contains(log.String(), `mailsink: #1`) || !strings.Contains(log.String(), `"Café order"`) {
		t.Errorf("summary: %q", log.String())
	}
	// Copies: changing them changes nothing.
	msgs[0].To[0] = "eve@example.com"
	if s.Messages()[0].To[0] != "ada@example.com" {
		t.Error("Messages returned the sink's own slice")
	}
}

func TestSinkHTTP(t *testing.T) {
	s := MustStart(t)
	for range 2 {
		if err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, nil); err != nil {
			t.Fatal(err)
		}
	}
	h := s.Handler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	var list struct {
		Data []struct {
			ID      int      `json:"id"`
			To      []string `json:"to"`
			Subject string   `json:"subject"`
			Text    string   `json:"text"`
			Size    int      `json:"size"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("list: %v\n%s", err, w.Body)
	}
	if len(list.Data) != 2 || list.Data[0].ID != 2 || list.Data[0].Subject != "Café order" || list.Data[0].Size != len(testMessage) {
		t.Errorf("list: %+v", list)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/?id=1", nil))
	if w.Code != http.StatusOK || w.Body.String() != testMessage || w.Header().Get("Content-Type") != "message/rfc822" {
		t.Errorf("raw: %d %q", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/?id=9", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown id: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/", nil))
	if w.Code != http.StatusNoContent || len(s.Messages()) != 0 {
		t.Errorf("DELETE: %d, %d left", w.Code, len(s.Messages()))
	}
}

func TestSinkAuthAndRejections(t *testing.T) {
	s := MustStart(t, WithAuth("souk", "pw"), WithRejectRecipient(func(a string) bool { return a == "gone@example.com" }))
	err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 {
		t.Errorf("without AUTH: %v, want 530", err)
	}
	if err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, sasl.NewPlainClient("", "souk", "bad")); err == nil {
		t.Error("a wrong password was accepted")
	}
	if err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, sasl.NewPlainClient("", "souk", "pw")); err != nil {
		t.Fatal(err)
	}
	err = send(s.Addr(), "a@example.com", []string{"gone@example.com"}, testMessage, sasl.NewPlainClient("", "souk", "pw"))
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("rejected recipient: %v, want 550", err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].User != "souk" {
		t.Errorf("messages: %+v", msgs)
	}
}

func TestSinkKeepsTheNewest(t *testing.T) {
	s := MustStart(t, WithMaxMessages(2))
	for range 3 {
		if err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, nil); err != nil {
			t.Fatal(err)
		}
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[0].ID != 2 || msgs[1].ID != 3 {
		t.Errorf("kept %+v", msgs)
	}
	if n := s.Received(); n != 3 {
		t.Errorf("Received() = %d, want 3 (those no longer kept included)", n)
	}
}

func TestSinkCountsConnections(t *testing.T) {
	s := MustStart(t)
	if err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, nil); err != nil {
		t.Fatal(err)
	}
	// Two messages over one connection.
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(testMessage)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if n, got := s.Connections(), s.Received(); n != 2 || got != 3 {
		t.Errorf("Connections() = %d and Received() = %d, want 2 and 3", n, got)
	}
}

func TestSinkWithDelayAnswersLate(t *testing.T) {
	const delay = 200 * time.Millisecond
	s := MustStart(t, WithDelay(delay))
	start := time.Now()
	if err := send(s.Addr(), "a@example.com", []string{"b@example.com"}, testMessage, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("the message was accepted after %v, want at least %v", took, delay)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages kept, want 1", n)
	}
}

func TestSinkListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:25", "example.com:25", "nonsense"} {
		if s, err := Start(addr); err == nil {
			s.Close()
			t.Errorf("Start(%q) accepted a non-loopback address", addr)
		}
	}
	s, err := Start("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := Start("127.0.0.1:0", WithMaxMessages(-1)); err == nil {
		t.Error("WithMaxMessages(-1) accepted")
	}
}

func TestServe(t *testing.T) {
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var log syncBuffer
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, smtpAddr, httpAddr, &log) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := send(smtpAddr, "a@example.com", []string{"b@example.com"}, testMessage, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Serve did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var resp *http.Response
	var err error
	for resp == nil {
		if resp, err = http.Get("http://" + httpAddr + "/"); err != nil {
			resp = nil
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var list struct{ Data []json.RawMessage }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Data) != 1 {
		t.Errorf("HTTP lists %d messages", len(list.Data))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if !strings.Contains(log.String(), "accepting SMTP on "+smtpAddr) {
		t.Errorf("log: %q", log.String())
	}
	if err := Serve(context.Background(), "127.0.0.1:0", "0.0.0.0:8025", nil); err == nil {
		t.Error("Serve accepted a non-loopback HTTP address")
	}
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
