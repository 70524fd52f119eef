package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/soukhq/souk/services/notify/mailsink"
)

// runMailsink is `souk mailsink`: a local SMTP server that keeps what it
// receives, for developers trying the checkout (the confirmation email lands
// here), printing a line per message and listing them as JSON over HTTP.
func runMailsink(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("souk mailsink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smtpAddr := fs.String("addr", "127.0.0.1:1025", "SMTP address to listen on (loopback only)")
	httpAddr := fs.String("http", "127.0.0.1:8025", "HTTP address listing received messages as JSON (GET /messages; ?id=N for one)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	sink, err := mailsink.Start(*smtpAddr, mailsink.WithLog(stdout))
	if err != nil {
		fmt.Fprintln(stderr, "souk mailsink:", err)
		return 1
	}
	defer sink.Close()
	mux := http.NewServeMux()
	mux.Handle("/messages", sink.Handler())
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(stderr, "souk mailsink: http:", err)
		}
	}()
	fmt.Fprintf(stdout, "mailsink: SMTP on %s, messages at http://%s/messages (Ctrl-C stops)\n", sink.Addr(), *httpAddr)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return 0
}
