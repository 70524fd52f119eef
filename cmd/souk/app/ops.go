package app

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/soukhq/souk/api"
	"github.com/soukhq/souk/platform/httpx"
)

// opsRoutes are the operations endpoints every process serves.
func (a *App) opsRoutes() []httpx.Route {
	metrics := promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry})
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/healthz", Handler: func(w http.ResponseWriter, r *http.Request) {
			httpx.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}},
		{Method: http.MethodGet, Path: "/readyz", Handler: a.handleReady},
		{Method: http.MethodGet, Path: "/metrics", Handler: metrics.ServeHTTP},
		{Method: http.MethodGet, Path: "/openapi.json", Handler: a.handleOpenAPI},
	}
}

// readiness is the /readyz body: each check's outcome.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// handleReady answers 200 when every local service's database and the bus
// answer within two seconds, else 503 naming what failed.
func (a *App) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]func(context.Context) error{}
	for _, u := range a.unitsInOrder() {
		checks[u.name+"_database"] = u.db.Ping
	}
	if a.bus != nil {
		checks["bus"] = a.bus.Ready
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = readiness{Status: "ok", Checks: map[string]string{}}
	)
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if err := check(ctx); err != nil {
				res = "failing: " + err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			out.Checks[name] = res
			if res != "ok" {
				out.Status = "unavailable"
			}
		}()
	}
	wg.Wait()
	status := http.StatusOK
	if out.Status != "ok" {
		status = http.StatusServiceUnavailable
		httpx.Logger(r.Context()).Warn("not ready", "checks", out.Checks)
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, status, out)
}

func (a *App) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := api.OpenAPIJSON()
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(doc)
}

// redact hides a password in a URL for logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
