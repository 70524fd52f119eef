package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// mustIsolatedStream names a stream and subject prefix no other test run
// uses on the shared NATS server, and deletes the streams afterwards.
func mustIsolatedStream(t *testing.T, natsURL string) (stream, prefix string) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	stream, prefix = "E2E_"+strings.ToUpper(suffix), "e2e"+suffix
	t.Cleanup(func() {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, stream)
		_ = js.DeleteStream(ctx, stream+"_DLQ")
	})
	return stream, prefix
}

func flagValue(args []string, name string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// mustSeeEvent waits for the last event of the type on the stream, checks it
// against api/events/<type>.json and that it is about the subject.
func mustSeeEvent(t *testing.T, natsURL string, args []string, typ, subject string) {
	t.Helper()
	stream, prefix := flagValue(args, "--bus-stream"), flagValue(args, "--bus-subject-prefix")
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	// Scan the stream for the event of this type about the subject.
	var msg *jetstream.RawStreamMsg
	for msg == nil {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && msg == nil; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil || m.Subject != prefix+"."+typ {
				continue
			}
			var e struct {
				Subject string `json:"subject"`
			}
			if json.Unmarshal(m.Data, &e) == nil && e.Subject == subject {
				msg = m
			}
		}
		if msg != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s event about %s on %s", typ, subject, stream)
		case <-time.After(100 * time.Millisecond):
		}
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join("..", "..", "api", "events", typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(msg.Data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("%s does not match its schema: %v\n%s", typ, err, msg.Data)
	}
	var e struct {
		TraceParent string `json:"traceparent"`
	}
	_ = json.Unmarshal(msg.Data, &e)
	if e.TraceParent == "" {
		t.Errorf("%s carries no traceparent", typ)
	}
}
