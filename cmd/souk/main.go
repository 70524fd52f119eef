// Command souk is the one Souk binary: `souk serve` runs every service (or
// those --services names) behind one gateway; `souk migrate` applies the
// databases' migrations and exits.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/soukhq/souk/cmd/souk/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}
