package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/services/notify/mailsink"
)

// TestReadmePurchase runs the README's "Try it" and "Buy it" commands as
// they are written — bash, curl and jq — against the binary serving the
// demo, only the addresses changed to this test's free ports. It is the
// issue's definition of done: a newcomer following the README buys, gets
// the confirmation e-mail in the sink the README names, and finds the order
// with its saga history in the Admin API. A README whose commands drift
// from the API fails here.
func TestReadmePurchase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's commands need %s, which is not installed: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	try := shellBlock(t, string(readme), "CART=$(curl")
	buy := shellBlock(t, string(readme), "/checkout")

	sink, err := mailsink.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	mux := http.NewServeMux()
	mux.Handle("/messages", sink.Handler())
	sinkHTTP := httptest.NewServer(mux)
	t.Cleanup(sinkHTTP.Close)

	dataDir := t.TempDir()
	p := startProcess(t, dataDir, "--demo", "--smtp-addr", sink.Addr())

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, line := range strings.Split(try+"\n"+buy, "\n") {
		if strings.Contains(line, "cmd/souk mailsink") {
			continue // started above, on a free port
		}
		script.WriteString(line + "\n")
	}
	s := strings.NewReplacer(
		"http://127.0.0.1:8080", p.url,
		"http://127.0.0.1:8025", sinkHTTP.URL,
		"data/admin-api-key", filepath.Join(dataDir, "admin-api-key"),
	).Replace(script.String())
	cmd := exec.Command("bash", "-c", s)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s\nsouk's log:\n%s", err, out, p.logs)
	}
	if !strings.Contains(string(out), `"status":"confirmed"`) {
		t.Fatalf("the README's checkout did not answer a confirmed order:\n%s", out)
	}

	// The confirmation e-mail reaches the sink (sent after the order is
	// confirmed, by notify).
	deadline := time.Now().Add(20 * time.Second)
	for sink.Received() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no confirmation e-mail in the sink; the commands printed:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	msg := sink.Messages()[0]
	if !strings.Contains(msg.Subject, "is confirmed") {
		t.Errorf("e-mail subject %q", msg.Subject)
	}

	// The order is in the Admin API with its saga's steps; the README's
	// last command printed them.
	var saga struct {
		Status string            `json:"status"`
		Steps  []json.RawMessage `json:"steps"`
	}
	// The commands print JSON values one after another (curl and jq);
	// the last is the saga.
	var last json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		if err := dec.Decode(&last); err != nil {
			t.Fatalf("the README's commands printed something that is not JSON (%v):\n%s", err, out)
		}
	}
	if err := json.Unmarshal(last, &saga); err != nil || saga.Status != "done" || len(saga.Steps) < 5 {
		t.Fatalf("saga %s (%v), want done with its steps", last, err)
	}
}

// shellBlock is the README's ```sh block that contains marker.
func shellBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	parts := strings.Split(readme, "```")
	for i := 1; i < len(parts); i += 2 { // odd parts are inside fences
		if body, ok := strings.CutPrefix(parts[i], "sh\n"); ok && strings.Contains(body, marker) {
			return body
		}
	}
	t.Fatalf("the README has no sh block with %q", marker)
	return ""
}
