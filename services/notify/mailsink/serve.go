package mailsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Serve runs a sink on smtpAddr until ctx is done, printing a line per
// message received to log (nil: silent). When httpAddr is not empty it also
// serves Handler there (loopback only too), so `curl
// http://127.0.0.1:8025/` lists what arrived. It is what `souk mailsink`
// runs; it returns nil after ctx is done, or the error that kept it from
// starting.
func Serve(ctx context.Context, smtpAddr, httpAddr string, log io.Writer) error {
	var opts []Option
	if log != nil {
		opts = append(opts, WithLog(log))
	}
	s, err := Start(smtpAddr, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	if log != nil {
		fmt.Fprintf(log, "mailsink: accepting SMTP on %s (point notify's SMTP address there)\n", s.Addr())
	}
	var srv *http.Server
	errc := make(chan error, 1)
	if httpAddr != "" {
		host, _, err := net.SplitHostPort(httpAddr)
		if err != nil || !loopback(host) {
			return fmt.Errorf("mailsink: HTTP address %q: want a loopback host:port", httpAddr)
		}
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("mailsink: listen on %s: %w", httpAddr, err)
		}
		srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.Serve(ln) }()
		if log != nil {
			fmt.Fprintf(log, "mailsink: messages as JSON at http://%s/\n", ln.Addr())
		}
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("mailsink: HTTP: %w", err)
		}
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}
