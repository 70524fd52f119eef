// Package telemetry builds Souk's three signals from one Config: structured
// logs (log/slog, JSON by default, every line carrying the service, the
// request id and the trace and span ids of the context it was logged with),
// traces (OpenTelemetry with W3C Trace Context and Baggage propagation,
// exported over OTLP/HTTP when an endpoint is configured) and metrics (a
// Prometheus registry with the Go runtime and process collectors).
//
// The package keeps no global state: it never sets the OpenTelemetry global
// providers or propagators, never touches prometheus.DefaultRegisterer and
// never calls slog.SetDefault. The composition root builds the logger,
// tracer provider and registry once and passes them to whatever needs them.
// It reads no environment variables either; the composition root fills
// Config (OTLPEndpoint from OTEL_EXPORTER_OTLP_ENDPOINT, for instance).
package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// The defaults a zero Config field stands for.
const (
	DefaultServiceName = "souk"
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "json"
)

// Config configures logs and traces. The zero value is valid: every empty
// field takes the default its comment names.
type Config struct {
	// ServiceName is the service.name of traces and the "service" attribute
	// of every log line ("catalog", or "souk" for the all-in-one binary).
	// Default "souk".
	ServiceName string
	// ServiceVersion is the service.version resource attribute of traces
	// (a release tag or commit); empty leaves it out.
	ServiceVersion string
	// LogLevel is the lowest level logged: "debug", "info", "warn" or
	// "error" (any case; slog offsets such as "warn+2" are accepted).
	// Default "info".
	LogLevel string
	// LogFormat is "json" (one JSON object a line, for machines) or "text"
	// (logfmt-like key=value, for people). Default "json".
	LogFormat string
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector, in the form of
	// OTEL_EXPORTER_OTLP_ENDPOINT ("http://otel-collector:4318"); spans are
	// sent to <OTLPEndpoint>/v1/traces, over TLS for https URLs. Empty means
	// spans are created (responses and logs still carry trace ids) but never
	// exported.
	OTLPEndpoint string
}

// withDefaults returns c with every empty field set to its default.
func (c Config) withDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.LogFormat == "" {
		c.LogFormat = DefaultLogFormat
	}
	return c
}

// Validate reports every setting that cannot be used, each error naming the
// setting and the accepted values. Empty fields are valid (they take their
// defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if strings.TrimSpace(c.ServiceName) != c.ServiceName || strings.ContainsAny(c.ServiceName, " \t\r\n") {
		errs = append(errs, fmt.Errorf("telemetry: ServiceName %q must not contain white space", c.ServiceName))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: LogLevel %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("telemetry: LogFormat %q: want json or text", c.LogFormat))
	}
	if c.OTLPEndpoint != "" {
		if _, err := tracesURL(c.OTLPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: OTLPEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT) %q: %w", c.OTLPEndpoint, err))
		}
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// tracesURL turns an OTEL_EXPORTER_OTLP_ENDPOINT-style base URL into the
// traces URL, appending v1/traces to its path as the OTLP specification says.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("want an http:// or https:// URL such as http://otel-collector:4318")
	}
	if u.Host == "" {
		return "", errors.New("the URL names no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("the URL must have no query or fragment")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	u.RawPath = ""
	return u.String(), nil
}
