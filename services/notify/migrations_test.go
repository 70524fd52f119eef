package notify

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// engines are the engines a migration test runs on; PostgreSQL is skipped
// by storetest.MustOpen when SOUK_TEST_POSTGRES_URL is not set.
var engines = []store.Engine{store.SQLite, store.Postgres}

// bodyColumns are the columns 00002 moves from notify_emails to
// notify_email_bodies.
var bodyColumns = []string{"subject", "text_body", "html_body"}

// MustTableColumns describes a table's columns in their order, one line each:
// name, type, NOT NULL, default (and primary key on SQLite).
func MustTableColumns(t testing.TB, db *store.DB, table string) []string {
	t.Helper()
	query := `SELECT name || ' ' || type || ' notnull=' || "notnull" || ' default=' || COALESCE(dflt_value, '-') || ' pk=' || pk
		FROM pragma_table_info(?) ORDER BY cid`
	if db.Engine() == store.Postgres {
		query = `SELECT column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || COALESCE(column_default, '-')
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`
	}
	cols, err := store.All(context.Background(), db, "describe "+table, store.ScanString, query, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) == 0 {
		t.Fatalf("table %s has no columns (does it exist?)", table)
	}
	return cols
}

// columnNames is the first word of each of MustTableColumns' lines: the
// column names.
func columnNames(cols []string) []string {
	var out []string
	for _, c := range cols {
		name, _, _ := strings.Cut(c, " ")
		out = append(out, name)
	}
	return out
}

// MustTableDefinition describes what MustTableColumns does not show: on SQLite
// the table's and its indexes' CREATE statements (whitespace collapsed),
// on PostgreSQL its constraints and indexes (schema name removed); sorted.
func MustTableDefinition(t testing.TB, db *store.DB, table string) []string {
	t.Helper()
	query := `SELECT type || ' ' || name || ': ' || COALESCE(sql, '(automatic)') FROM sqlite_master WHERE tbl_name = ?`
	args := []any{table}
	if db.Engine() == store.Postgres {
		query = `SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
				WHERE conrelid = to_regclass(?)
			UNION ALL
			SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?`
		args = append(args, table)
	}
	defs, err := store.All(context.Background(), db, "define "+table, store.ScanString, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range defs {
		d = strings.Join(strings.Fields(d), " ")
		if s := db.Schema(); s != "" {
			d = strings.ReplaceAll(d, " "+s+".", " ")
		}
		defs[i] = d
	}
	slices.Sort(defs)
	return defs
}

// MustInsertV1Email stores e as 00001 did: one row, its message included.
func MustInsertV1Email(t testing.TB, db *store.DB, e Email) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO notify_emails (id, event_id, kind, reference, recipient, subject, text_body, html_body,
		state, attempts, last_error, next_attempt_at, created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.EventID, e.Kind, e.Reference, e.To, e.Subject, e.Text, e.HTML,
		e.State, e.Attempts, e.LastError, nullTime(e.NextAttemptAt), e.CreatedAt, e.UpdatedAt, nullTime(e.SentAt)); err != nil {
		t.Fatalf("insert an email in 00001's shape: %v", err)
	}
}

// crlfToLF undoes the CRLF line breaks quoted-printable encoding gives a
// part.
func crlfToLF(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func TestEmailsOf00001SurviveTheBodiesMigration(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine, bus.Migrations, storetest.MigrationsUpTo(t, Migrations, 1))
			v1Columns, v1Definition := MustTableColumns(t, db, "notify_emails"), MustTableDefinition(t, db, "notify_emails")
			if names := columnNames(v1Columns); !slices.Contains(names, "html_body") {
				t.Fatalf("the database at 00001 has notify_emails %v: want the body columns there", names)
			}

			clk := newClock()
			at := func(d time.Duration) *time.Time { v := clk.Now().Add(d); return &v }
			// Bodies past a SQLite page (4 KB), several lines, not ASCII.
			html := "<p>Café — " + strings.Repeat("<tr><td>Linen Shirt</td><td>29.99 EUR</td></tr>\n", 150) + "</p>"
			text := "Hello Zoë,\n" + strings.Repeat("2 x Linen Shirt: 59.98 EUR\n", 150)
			emails := []Email{
				{ID: id.New(emailPrefix), EventID: "evt_pending", Kind: kindOrderConfirmed, Reference: "ord_1", To: "ada@example.com",
					Subject: "Your order ord_1 is confirmed", Text: text, HTML: html,
					State: EmailPending, Attempts: 2, LastError: "connect to SMTP server: refused", NextAttemptAt: at(-time.Minute),
					CreatedAt: *at(-time.Hour), UpdatedAt: *at(-time.Minute)},
				{ID: id.New(emailPrefix), EventID: "evt_sent", Kind: kindOrderConfirmed, Reference: "ord_2", To: "bob@example.com",
					Subject: "Your order ord_2 is confirmed", Text: text + "sent", HTML: html + "sent",
					State: EmailSent, Attempts: 1, CreatedAt: *at(-2 * time.Hour), UpdatedAt: *at(-time.Hour), SentAt: at(-time.Hour)},
				{ID: id.New(emailPrefix), EventID: "evt_failed", Kind: kindOrderConfirmed, Reference: "ord_3", To: "not an address",
					Subject: "Your order ord_3 is confirmed", Text: "", HTML: "",
					State: EmailFailed, LastError: "the order has no email address", CreatedAt: *at(-3 * time.Hour), UpdatedAt: *at(-3 * time.Hour)},
			}
			for _, e := range emails {
				MustInsertV1Email(t, db, e)
			}

			if err := db.Migrate(ctx, Migrations); err != nil {
				t.Fatalf("migrate to the latest: %v", err)
			}

			// notify_emails lost exactly the body columns; the rest is as
			// 00001 declared it, in its order.
			want := slices.DeleteFunc(slices.Clone(v1Columns), func(c string) bool {
				name, _, _ := strings.Cut(c, " ")
				return slices.Contains(bodyColumns, name)
			})
			if got := MustTableColumns(t, db, "notify_emails"); !slices.Equal(got, want) {
				t.Errorf("notify_emails after 00002:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// Constraints and indexes too (SQLite rebuilds the table).
			wantDefinition := slices.Clone(v1Definition)
			for i := range wantDefinition {
				for _, c := range bodyColumns {
					wantDefinition[i] = strings.Replace(wantDefinition[i], " "+c+" TEXT NOT NULL,", "", 1)
				}
			}
			if got := MustTableDefinition(t, db, "notify_emails"); !slices.Equal(got, wantDefinition) {
				t.Errorf("notify_emails after 00002:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantDefinition, "\n"))
			}
			if n := countRows(t, db, `SELECT COUNT(*) FROM notify_email_bodies`); n != len(emails) {
				t.Errorf("notify_email_bodies has %d rows, want %d", n, len(emails))
			}

			s := MustNewService(t, db, Config{}, WithClock(clk.Now))
			for _, want := range emails {
				got, err := s.GetEmail(ctx, want.ID)
				if err != nil {
					t.Fatalf("GetEmail(%s): %v", want.EventID, err)
				}
				if !emailsEqual(got, want) {
					t.Errorf("GetEmail(%s) after the migration:\n%+v\nwant\n%+v", want.EventID, got, want)
				}
				byEvent, err := s.EmailsForEvent(ctx, want.EventID)
				if err != nil || len(byEvent) != 1 || !emailsEqual(byEvent[0], want) {
					t.Errorf("EmailsForEvent(%s) = %+v, %v", want.EventID, byEvent, err)
				}
			}

			// The pending one goes out with the message it was stored with.
			sink := MustSink(t)
			s = MustNewService(t, db, Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
			if n := MustSendPending(t, s); n != 1 {
				t.Fatalf("SendPending attempted %d, want the pending email", n)
			}
			msgs := sink.Messages()
			if len(msgs) != 1 {
				t.Fatalf("sink received %d messages, want 1", len(msgs))
			}
			_, parts := MustParseMail(t, msgs[0].Raw)
			if msgs[0].Subject != emails[0].Subject || len(parts) != 2 ||
				crlfToLF(parts[0].body) != emails[0].Text || crlfToLF(parts[1].body) != emails[0].HTML {
				t.Errorf("sent subject %q and %d parts, want the stored message of %s", msgs[0].Subject, len(parts), emails[0].ID)
			}
		})
	}
}

// emailsEqual compares emails field by field, times by instant.
func emailsEqual(a, b Email) bool {
	sameTime := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return a.ID == b.ID && a.EventID == b.EventID && a.Kind == b.Kind && a.Reference == b.Reference && a.To == b.To &&
		a.Subject == b.Subject && a.Text == b.Text && a.HTML == b.HTML && a.State == b.State && a.Attempts == b.Attempts &&
		a.LastError == b.LastError && sameTime(a.NextAttemptAt, b.NextAttemptAt) && a.CreatedAt.Equal(b.CreatedAt) &&
		a.UpdatedAt.Equal(b.UpdatedAt) && sameTime(a.SentAt, b.SentAt)
}

func TestBodiesMigrationDownRestores00001(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			v1 := storetest.MustOpen(t, engine, bus.Migrations, storetest.MigrationsUpTo(t, Migrations, 1))
			db := storetest.MustOpen(t, engine, testMigrations...)
			clk := newClock()
			s := MustNewService(t, db, Config{}, WithClock(clk.Now))
			queued := MustQueueEmails(t, db, s, clk, "ada@example.com", "bob@example.com")

			if err := db.MigrateDownTo(ctx, Migrations, 1); err != nil {
				t.Fatal(err)
			}

			// The same table as 00001 makes (PostgreSQL appends the columns
			// it adds back, so its columns are compared by name).
			got, want := MustTableColumns(t, db, "notify_emails"), MustTableColumns(t, v1, "notify_emails")
			if engine == store.Postgres {
				slices.Sort(got)
				slices.Sort(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("notify_emails after 00002's Down:\n%s\nwant as 00001 makes it:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if got, want := MustTableDefinition(t, db, "notify_emails"), MustTableDefinition(t, v1, "notify_emails"); !slices.Equal(got, want) {
				t.Errorf("notify_emails after 00002's Down:\n%s\nwant as 00001 makes it:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			tables := `SELECT COUNT(*) FROM sqlite_master WHERE name = 'notify_email_bodies'`
			if engine == store.Postgres {
				tables = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'notify_email_bodies'`
			}
			if n := countRows(t, db, tables); n != 0 {
				t.Errorf("notify_email_bodies is still there after 00002's Down")
			}
			for _, e := range queued {
				var subject, text, html string
				if err := db.QueryRow(ctx, `SELECT subject, text_body, html_body FROM notify_emails WHERE id = ?`, e.ID).Scan(&subject, &text, &html); err != nil {
					t.Fatalf("read %s in 00001's shape: %v", e.ID, err)
				}
				if subject != e.Subject || text != e.Text || html != e.HTML {
					t.Errorf("email %s after the Down migration: subject %q and bodies of %d and %d bytes, want %q, %d and %d",
						e.ID, subject, len(text), len(html), e.Subject, len(e.Text), len(e.HTML))
				}
			}

			// And up again: nothing lost on the way.
			if err := db.Migrate(ctx, Migrations); err != nil {
				t.Fatalf("migrate up again: %v", err)
			}
			for i, e := range MustGetEmails(t, s, queued) {
				if !emailsEqual(e, queued[i]) {
					t.Errorf("email after Down and Up:\n%+v\nwant\n%+v", e, queued[i])
				}
			}
		})
	}
}

// MustCountBodyWrites makes every UPDATE and DELETE of a row of
// notify_email_bodies count in a table of its own, and returns how to read
// the count.
func MustCountBodyWrites(t testing.TB, db *store.DB) func() int {
	t.Helper()
	stmts := []string{
		`CREATE TABLE test_body_writes (op TEXT NOT NULL)`,
		`CREATE TRIGGER test_body_updated AFTER UPDATE ON notify_email_bodies BEGIN INSERT INTO test_body_writes VALUES ('update'); END`,
		`CREATE TRIGGER test_body_deleted AFTER DELETE ON notify_email_bodies BEGIN INSERT INTO test_body_writes VALUES ('delete'); END`,
	}
	if db.Engine() == store.Postgres {
		stmts = []string{
			`CREATE TABLE test_body_writes (op TEXT NOT NULL)`,
			`CREATE FUNCTION test_count_body_write() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN INSERT INTO test_body_writes VALUES (lower(TG_OP)); RETURN NULL; END $$`,
			`CREATE TRIGGER test_body_written AFTER UPDATE OR DELETE ON notify_email_bodies
				FOR EACH ROW EXECUTE FUNCTION test_count_body_write()`,
		}
	}
	for _, q := range stmts {
		if _, err := db.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() int { return countRows(t, db, `SELECT COUNT(*) FROM test_body_writes`) }
}

func TestSendingNeverRewritesAnEmailsMessage(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// The delivery state has a table of its own, without the message.
		for _, c := range columnNames(MustTableColumns(t, db, "notify_emails")) {
			if slices.Contains(bodyColumns, c) {
				t.Errorf("notify_emails has the column %s: every claim and outcome would write it again", c)
			}
		}
		bodyWrites := MustCountBodyWrites(t, db)

		clk := newClock()
		sink := MustSink(t, mailsink.WithRejectRecipient(func(a string) bool { return strings.HasPrefix(a, "gone@") }))
		s := MustNewService(t, db, Config{SMTPAddr: sink.Addr()}, WithClock(clk.Now))
		queued := MustQueueEmails(t, db, s, clk, "ada@example.com", "gone@example.com", "bob@example.com")

		// What the stored message must be: the confirmation as rendered.
		var oc OrderConfirmed
		if err := MustOrderEvent(t, orderData("ada@example.com")).Decode(&oc); err != nil {
			t.Fatal(err)
		}
		r, err := s.renderOrderConfirmed(oc)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range queued {
			if e.Subject != r.subject || e.Text != r.text || e.HTML != r.html || r.text == "" || r.html == "" {
				t.Fatalf("email %s stored a message other than the one rendered", e.ID)
			}
		}

		// Claims, a sent and a failed outcome, a resend and its claim and
		// outcome: all of them write the state rows only.
		if n := MustSendPending(t, s); n != 3 {
			t.Fatalf("SendPending attempted %d, want 3", n)
		}
		if _, err := s.ResendEmail(ctx, queued[1].ID); err != nil {
			t.Fatal(err)
		}
		if n := MustSendPending(t, s); n != 1 {
			t.Fatalf("SendPending after ResendEmail attempted %d, want 1", n)
		}
		if n := bodyWrites(); n != 0 {
			t.Errorf("sending updated or deleted %d rows of notify_email_bodies, want none", n)
		}

		msgs := sink.Messages()
		if got := recipients(msgs); !slices.Equal(got, []string{"ada@example.com", "bob@example.com"}) {
			t.Fatalf("sent to %v", got)
		}
		for _, m := range msgs {
			_, parts := MustParseMail(t, m.Raw)
			if m.Subject != r.subject || len(parts) != 2 || crlfToLF(parts[0].body) != r.text || crlfToLF(parts[1].body) != r.html {
				t.Errorf("the message to %v is not the one rendered", m.To)
			}
		}
		for i, e := range MustGetEmails(t, s, queued) {
			wantState := EmailSent
			if i == 1 {
				wantState = EmailFailed
			}
			if e.State != wantState || e.Subject != r.subject || e.Text != r.text || e.HTML != r.html {
				t.Errorf("email %s (%s) is %s with another message, want %s with the one rendered", e.ID, e.To, e.State, wantState)
			}
		}
	})
}
