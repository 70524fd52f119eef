// Package prometheus holds Souk's Prometheus rules; its test keeps every
// alert tied to a runbook that exists.
package prometheus

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestEveryAlertHasARunbook(t *testing.T) {
	raw, err := os.ReadFile("souk-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\S+)`).FindAllStringSubmatch(string(raw), -1)
	runbooks := regexp.MustCompile(`(?m)^\s+runbook_url: "([^"]+)"`).FindAllStringSubmatch(string(raw), -1)
	if len(alerts) == 0 || len(alerts) != len(runbooks) {
		t.Fatalf("%d alerts, %d runbook_urls: every alert needs one", len(alerts), len(runbooks))
	}
	for i, rb := range runbooks {
		if _, err := os.Stat(filepath.Join("..", "..", rb[1])); err != nil {
			t.Errorf("alert %s: runbook %s: %v", alerts[i][1], rb[1], err)
		}
	}
}
