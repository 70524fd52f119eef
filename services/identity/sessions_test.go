package identity

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/auth"
)

func TestRegisterLoginRefresh(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		c := MustRegister(t, s, "  Ada@Example.COM ", " Ada Lovelace ")
		if !strings.HasPrefix(c.ID, "cus_") || c.Email != "ada@example.com" || c.Name != "Ada Lovelace" ||
			c.Version != 1 || c.Groups == nil || len(c.Groups) != 0 || !c.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("registered = %+v", c)
		}
		if got, err := s.GetCustomer(ctx, c.ID); err != nil || got.Email != c.Email || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("GetCustomer = %+v, %v", got, err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM customers WHERE password_hash LIKE '$argon2id$v=19$%'`); n != 1 {
			t.Fatalf("argon2id hashes stored = %d", n)
		}

		pair := MustLogin(t, s, auth.KindCustomer, "ADA@example.com")
		if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || !strings.HasPrefix(pair.RefreshToken, "rt_") || len(pair.RefreshToken) != 3+64 {
			t.Fatalf("pair = %+v", pair)
		}
		p, err := s.Authenticate(ctx, pair.AccessToken)
		if err != nil || !reflect.DeepEqual(p, auth.Principal{Subject: c.ID, Kind: auth.KindCustomer, Name: "Ada Lovelace"}) {
			t.Fatalf("Authenticate(access) = %+v, %v", p, err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = ?`, pair.RefreshToken); n != 0 {
			t.Fatal("a refresh token must be stored as a digest only")
		}

		e.clock.Advance(time.Minute)
		next := MustRefresh(t, s, auth.KindCustomer, pair.RefreshToken)
		if next.AccessToken == pair.AccessToken || next.RefreshToken == pair.RefreshToken {
			t.Fatal("refresh must rotate both tokens")
		}
		if p, err := s.Authenticate(ctx, next.AccessToken); err != nil || p.Subject != c.ID {
			t.Fatalf("Authenticate(refreshed access) = %+v, %v", p, err)
		}
		third := MustRefresh(t, s, auth.KindCustomer, next.RefreshToken)
		if n := countRows(t, s, `SELECT COUNT(DISTINCT family_id) FROM refresh_tokens`); n != 1 {
			t.Fatalf("families = %d, want the one login's", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NULL`); n != 1 {
			t.Fatalf("unused refresh tokens = %d, want 1", n)
		}

		// A customer refresh token is not a staff one, and junk is refused.
		for _, tt := range []struct {
			kind  auth.Kind
			token string
		}{
			{auth.KindStaff, third.RefreshToken},
			{auth.KindCustomer, ""},
			{auth.KindCustomer, "rt_nope"},
			{auth.KindCustomer, third.AccessToken},
			{auth.KindCustomer, strings.Replace(third.RefreshToken, "rt_", "sk_", 1)},
		} {
			_, err := s.Refresh(ctx, tt.kind, tt.token)
			apperrtest.Want(t, err, apperr.Unauthorized)
		}
		MustRefresh(t, s, auth.KindCustomer, third.RefreshToken) // none of that burnt it
	})
}

func TestRegisterValidation(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	ctx := context.Background()
	MustRegister(t, e.s, "ada@example.com", "Ada")
	for _, tt := range []struct {
		name   string
		p      RegisterParams
		code   apperr.Code
		fields []string
	}{
		{"everything missing", RegisterParams{}, apperr.ValidationFailed, []string{"email", "password", "name"}},
		{"bad email", RegisterParams{Email: "ada", Password: testPassword, Name: "A"}, apperr.ValidationFailed, []string{"email"}},
		{"display name", RegisterParams{Email: "Ada <x@example.com>", Password: testPassword, Name: "A"}, apperr.ValidationFailed, []string{"email"}},
		{"no domain dot", RegisterParams{Email: "x@localhost", Password: testPassword, Name: "A"}, apperr.ValidationFailed, []string{"email"}},
		{"password is email", RegisterParams{Email: "bob@example.com", Password: "BOB@example.com", Name: "Bob"}, apperr.ValidationFailed, []string{"password"}},
		{"short password", RegisterParams{Email: "bob@example.com", Password: "123", Name: "Bob"}, apperr.ValidationFailed, []string{"password"}},
		{"long name", RegisterParams{Email: "bob@example.com", Password: testPassword, Name: strings.Repeat("n", 201)}, apperr.ValidationFailed, []string{"name"}},
		{"taken", RegisterParams{Email: "ADA@example.com", Password: testPassword, Name: "Ada"}, apperr.Conflict, []string{"email"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.s.RegisterCustomer(ctx, tt.p)
			apperrtest.Want(t, err, tt.code, tt.fields...)
		})
	}
	if n := countRows(t, e.s, `SELECT COUNT(*) FROM customers`); n != 1 {
		t.Fatalf("customers = %d", n)
	}
}

// TestLoginFailuresLookAlike: an unknown email, a wrong password and a
// disabled staff user are the same error, and each costs one argon2
// verification (the unknown email against the dummy hash), so neither the
// answer nor its timing tells them apart.
func TestLoginFailuresLookAlike(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		MustRegister(t, s, "ada@example.com", "Ada")
		u := MustCreateStaff(t, s, "off@example.com", RoleViewer)
		if _, err := s.UpdateStaff(ctx, u.ID, StaffPatch{Disabled: ptr(true)}, 0); err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, tt := range []struct {
			name string
			kind auth.Kind
			p    LoginParams
		}{
			{"wrong password", auth.KindCustomer, LoginParams{Email: "ada@example.com", Password: "wrong-password-1"}},
			{"unknown email", auth.KindCustomer, LoginParams{Email: "nobody@example.com", Password: "wrong-password-1"}},
			{"customer at the staff door", auth.KindStaff, LoginParams{Email: "ada@example.com", Password: testPassword}},
			{"disabled staff", auth.KindStaff, LoginParams{Email: "off@example.com", Password: testPassword}},
			{"empty", auth.KindCustomer, LoginParams{}},
		} {
			before := s.hasher.verifications.Load()
			_, err := s.Login(ctx, tt.kind, tt.p)
			apperrtest.Want(t, err, CodeInvalidCredentials)
			if n := s.hasher.verifications.Load() - before; n != 1 {
				t.Errorf("%s: %d argon2 verifications, want 1", tt.name, n)
			}
			var ae *apperr.Error
			errors.As(err, &ae)
			msgs = append(msgs, ae.Message)
		}
		for _, m := range msgs[1:] {
			if m != msgs[0] {
				t.Fatalf("messages differ: %q", msgs)
			}
		}
	})
}

func TestLoginThrottling(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		MustRegister(t, s, "ada@example.com", "Ada")
		bad := LoginParams{Email: "ada@example.com", Password: "wrong-password-1"}
		good := LoginParams{Email: "ada@example.com", Password: testPassword}

		// Four failures, then a success, forget the failures.
		for range 4 {
			_, err := s.Login(ctx, auth.KindCustomer, bad)
			apperrtest.Want(t, err, CodeInvalidCredentials)
		}
		if _, err := s.Login(ctx, auth.KindCustomer, good); err != nil {
			t.Fatalf("login after 4 failures: %v", err)
		}
		for range 5 {
			e.clock.Advance(time.Minute)
			_, err := s.Login(ctx, auth.KindCustomer, bad)
			apperrtest.Want(t, err, CodeInvalidCredentials)
		}
		// Five failures within 15 minutes lock the account, right password or not.
		for _, p := range []LoginParams{good, bad} {
			_, err := s.Login(ctx, auth.KindCustomer, p)
			var te *ThrottledError
			if !errors.As(err, &te) || !apperr.Is(err, apperr.RateLimited) {
				t.Fatalf("sixth attempt = %v, want rate_limited", err)
			}
			// The oldest failure was 5 minutes ago: it leaves the window in 11.
			if te.RetryAfter != 11*time.Minute {
				t.Fatalf("RetryAfter = %s, want 11m", te.RetryAfter)
			}
		}
		// An unknown account locks the same way: no enumeration through 429s.
		for range 5 {
			_, err := s.Login(ctx, auth.KindCustomer, LoginParams{Email: "nobody@example.com", Password: "x"})
			apperrtest.Want(t, err, CodeInvalidCredentials)
		}
		_, err := s.Login(ctx, auth.KindCustomer, LoginParams{Email: "nobody@example.com", Password: "x"})
		apperrtest.Want(t, err, apperr.RateLimited)
		// The staff account of the same email is another account.
		_, err = s.Login(ctx, auth.KindStaff, bad)
		apperrtest.Want(t, err, CodeInvalidCredentials)

		e.clock.Advance(11 * time.Minute)
		if _, err := s.Login(ctx, auth.KindCustomer, good); err != nil {
			t.Fatalf("login once the window passed: %v", err)
		}

		// Per IP: 20 attempts a minute, whatever the account.
		for i := range 20 {
			p := LoginParams{Email: "x" + string(rune('a'+i)) + "@example.com", Password: "x", ClientIP: "203.0.113.7"}
			_, err := s.Login(ctx, auth.KindCustomer, p)
			apperrtest.Want(t, err, CodeInvalidCredentials)
		}
		_, err = s.Login(ctx, auth.KindCustomer, LoginParams{Email: "ada@example.com", Password: testPassword, ClientIP: "203.0.113.7"})
		apperrtest.Want(t, err, apperr.RateLimited)
		_, err = s.RegisterCustomer(ctx, RegisterParams{Email: "new@example.com", Password: testPassword, Name: "N", ClientIP: "203.0.113.7"})
		if err != nil {
			t.Fatalf("registration counts apart from logins: %v", err)
		}
		if _, err := s.Login(ctx, auth.KindCustomer, LoginParams{Email: "ada@example.com", Password: testPassword, ClientIP: "203.0.113.8"}); err != nil {
			t.Fatalf("another IP: %v", err)
		}
		e.clock.Advance(time.Minute)
		if _, err := s.Login(ctx, auth.KindCustomer, LoginParams{Email: "ada@example.com", Password: testPassword, ClientIP: "203.0.113.7"}); err != nil {
			t.Fatalf("a minute later: %v", err)
		}
	})
}

func TestRehashOnLogin(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		s := e.s
		c := MustRegister(t, s, "ada@example.com", "Ada")
		s.hasher = newHasher(Argon2Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32})
		MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		if n := countRows(t, s, `SELECT COUNT(*) FROM customers WHERE id = ? AND password_hash LIKE '$argon2id$v=19$m=128,t=2,p=1$%'`, c.ID); n != 1 {
			t.Fatal("a login with stale parameters must store a fresh hash")
		}
		MustLogin(t, s, auth.KindCustomer, "ada@example.com")
	})
}

// TestRefreshReuseRevokesFamily: a refresh token used twice means a copy
// leaked; the whole session dies — the attacker's token and the victim's
// newest one — while other sessions live on.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		MustRegister(t, s, "ada@example.com", "Ada")
		stolen := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		other := MustLogin(t, s, auth.KindCustomer, "ada@example.com") // another device

		victim := MustRefresh(t, s, auth.KindCustomer, stolen.RefreshToken) // the owner refreshes
		_, err := s.Refresh(ctx, auth.KindCustomer, stolen.RefreshToken)    // the thief replays
		apperrtest.Want(t, err, apperr.Unauthorized)
		_, err = s.Refresh(ctx, auth.KindCustomer, victim.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)
		_, err = s.Refresh(ctx, auth.KindCustomer, stolen.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)

		if !strings.Contains(e.logs.String(), `"msg":"refresh token reuse detected; session revoked"`) ||
			!strings.Contains(e.logs.String(), `"family_id":"rtf_`) || !strings.Contains(e.logs.String(), `"level":"WARN"`) {
			t.Fatalf("reuse not logged at warn with the family id:\n%s", e.logs)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_families WHERE revoked_at IS NOT NULL AND revoke_reason = 'reuse'`); n != 1 {
			t.Fatalf("revoked families = %d", n)
		}
		MustRefresh(t, s, auth.KindCustomer, other.RefreshToken)

		// The thief going first is the same: the owner's next refresh is the reuse.
		first := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		thief := MustRefresh(t, s, auth.KindCustomer, first.RefreshToken)
		_, err = s.Refresh(ctx, auth.KindCustomer, first.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)
		_, err = s.Refresh(ctx, auth.KindCustomer, thief.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)
	})
}

// TestConcurrentRefresh: of many concurrent refreshes of one token exactly
// one succeeds; the others are reuse, so the session ends.
func TestConcurrentRefresh(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		MustRegister(t, s, "ada@example.com", "Ada")
		for round := range 3 {
			pair := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
			const n = 8
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				wins  []TokenPair
				start = make(chan struct{})
			)
			for range n {
				wg.Go(func() {
					<-start
					p, err := s.Refresh(ctx, auth.KindCustomer, pair.RefreshToken)
					if err != nil && !apperr.Is(err, apperr.Unauthorized) {
						t.Errorf("refresh: %v", err)
						return
					}
					if err == nil {
						mu.Lock()
						wins = append(wins, p)
						mu.Unlock()
					}
				})
			}
			close(start)
			wg.Wait()
			if len(wins) != 1 {
				t.Fatalf("round %d: %d of %d concurrent refreshes succeeded, want exactly 1", round, len(wins), n)
			}
			_, err := s.Refresh(ctx, auth.KindCustomer, wins[0].RefreshToken)
			apperrtest.Want(t, err, apperr.Unauthorized)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NULL AND revoked_at IS NULL`); n != 0 {
			t.Fatalf("%d live refresh tokens after reuse", n)
		}
	})
}

func TestRefreshExpiryLogoutAndCleanup(t *testing.T) {
	runEnvs(t, Config{RefreshTTL: 24 * time.Hour}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		MustRegister(t, s, "ada@example.com", "Ada")

		old := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		e.clock.Advance(24*time.Hour - time.Second)
		fresh := MustRefresh(t, s, auth.KindCustomer, old.RefreshToken) // just in time
		e.clock.Advance(24 * time.Hour)
		_, err := s.Refresh(ctx, auth.KindCustomer, fresh.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)

		a := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		b := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		if err := s.Logout(ctx, auth.KindStaff, a.RefreshToken); err != nil { // wrong door: no effect
			t.Fatal(err)
		}
		a = MustRefresh(t, s, auth.KindCustomer, a.RefreshToken)
		for _, tok := range []string{a.RefreshToken, a.RefreshToken, "rt_unknown", "", a.AccessToken} {
			if err := s.Logout(ctx, auth.KindCustomer, tok); err != nil {
				t.Fatalf("Logout(%q) = %v", tok, err)
			}
		}
		_, err = s.Refresh(ctx, auth.KindCustomer, a.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)
		MustRefresh(t, s, auth.KindCustomer, b.RefreshToken)

		// Cleanup drops what expired and keeps live (and used but unexpired) tokens.
		if err := s.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_tokens WHERE expires_at <= ?`, e.clock.Now()); n != 0 {
			t.Fatalf("%d expired tokens left", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_families`); n != 2 {
			t.Fatalf("families = %d, want the two of today", n)
		}
		_, err = s.Refresh(ctx, auth.KindCustomer, a.RefreshToken) // used, kept, still refused
		apperrtest.Want(t, err, apperr.Unauthorized)
	})
}

func TestStaffSessions(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		u := MustCreateStaff(t, s, "Merch@Example.com", RoleMerchandiser)
		if !strings.HasPrefix(u.ID, "usr_") || u.Email != "merch@example.com" || u.Role != RoleMerchandiser || u.Disabled || u.Version != 1 {
			t.Fatalf("created = %+v", u)
		}
		_, err := s.CreateStaff(ctx, CreateStaffParams{Email: "merch@example.com", Name: "Again", Role: RoleViewer, Password: testPassword})
		apperrtest.Want(t, err, apperr.Conflict, "email")
		_, err = s.CreateStaff(ctx, CreateStaffParams{Email: "x@example.com", Name: "", Role: "owner", Password: "short"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "name", "role", "password")

		pair := MustLogin(t, s, auth.KindStaff, "merch@example.com")
		p, err := s.Authenticate(ctx, pair.AccessToken)
		if err != nil || !reflect.DeepEqual(p, auth.Principal{Subject: u.ID, Kind: auth.KindStaff, Role: "merchandiser", Name: "Staff merchandiser"}) {
			t.Fatalf("staff principal = %+v, %v", p, err)
		}
		if !(Policy{}).Allowed(p, PermCatalogWrite) || (Policy{}).Allowed(p, PermStaffManage) {
			t.Fatal("a merchandiser token must carry the merchandiser's permissions")
		}
		// A customer cannot log in at the staff door, nor refresh there.
		_, err = s.Refresh(ctx, auth.KindCustomer, pair.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)

		// A new role reaches the token at the next refresh.
		u, err = s.UpdateStaff(ctx, u.ID, StaffPatch{Role: ptr(RoleViewer), Name: ptr("Grace")}, 1)
		if err != nil || u.Role != RoleViewer || u.Version != 2 {
			t.Fatalf("UpdateStaff = %+v, %v", u, err)
		}
		_, err = s.UpdateStaff(ctx, u.ID, StaffPatch{Name: ptr("Stale")}, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)
		_, err = s.UpdateStaff(ctx, u.ID, StaffPatch{Role: ptr(Role("owner"))}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "role")
		_, err = s.UpdateStaff(ctx, "usr_01JD3Q0000000000000000000A", StaffPatch{Name: ptr("X")}, 0)
		apperrtest.Want(t, err, apperr.NotFound)
		pair = MustRefresh(t, s, auth.KindStaff, pair.RefreshToken)
		if p, _ := s.Authenticate(ctx, pair.AccessToken); p.Role != "viewer" || p.Name != "Grace" {
			t.Fatalf("after the role change: %+v", p)
		}

		// Disabling ends every session at once and refuses logins.
		second := MustLogin(t, s, auth.KindStaff, "merch@example.com")
		if _, err := s.UpdateStaff(ctx, u.ID, StaffPatch{Disabled: ptr(true)}, 0); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{pair.RefreshToken, second.RefreshToken} {
			_, err = s.Refresh(ctx, auth.KindStaff, tok)
			apperrtest.Want(t, err, apperr.Unauthorized)
		}
		_, err = s.Login(ctx, auth.KindStaff, LoginParams{Email: "merch@example.com", Password: testPassword})
		apperrtest.Want(t, err, CodeInvalidCredentials)
		// Access tokens are short: the last one dies with its TTL.
		e.clock.Advance(s.cfg.AccessTTL + s.cfg.Leeway + time.Second)
		_, err = s.Authenticate(ctx, second.AccessToken)
		apperrtest.Want(t, err, apperr.Unauthorized)

		if _, err := s.UpdateStaff(ctx, u.ID, StaffPatch{Disabled: ptr(false)}, 0); err != nil {
			t.Fatal(err)
		}
		MustLogin(t, s, auth.KindStaff, "merch@example.com")

		list, next, err := s.ListStaff(ctx, 10, "")
		if err != nil || len(list) != 1 || next != "" || list[0].ID != u.ID {
			t.Fatalf("ListStaff = %+v, %q, %v", list, next, err)
		}
	})
}

// TestRefreshRefusesADisabledStaffUser: even without the revocation that
// disabling does, a refresh re-reads the user and refuses a disabled one.
func TestRefreshRefusesADisabledStaffUser(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		u := MustCreateStaff(t, s, "fulfil@example.com", RoleFulfilment)
		pair := MustLogin(t, s, auth.KindStaff, "fulfil@example.com")
		if _, err := s.db.Exec(ctx, `UPDATE staff_users SET disabled = ? WHERE id = ?`, true, u.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.Refresh(ctx, auth.KindStaff, pair.RefreshToken)
		apperrtest.Want(t, err, apperr.Unauthorized)
		if n := countRows(t, s, `SELECT COUNT(*) FROM refresh_families WHERE revoke_reason = 'subject_disabled'`); n != 1 {
			t.Fatal("the session of a disabled user must be revoked")
		}
	})
}

func TestCustomersAdmin(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		s := e.s
		var ids []string
		for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			ids = append(ids, MustRegister(t, s, email, strings.ToUpper(email[:1])).ID)
		}
		var got []string
		after := ""
		for {
			page, next, err := s.ListCustomers(ctx, CustomerQuery{Limit: 2, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				got = append(got, c.ID)
			}
			if next == "" {
				break
			}
			after = next
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("paged ids = %v, want %v", got, ids)
		}
		one, _, err := s.ListCustomers(ctx, CustomerQuery{Email: " B@Example.com", Limit: 10})
		if err != nil || len(one) != 1 || one[0].ID != ids[1] {
			t.Fatalf("email filter = %+v, %v", one, err)
		}

		c, err := s.UpdateCustomer(ctx, ids[0], CustomerPatch{Groups: &[]string{"vip", "wholesale", "vip"}}, 1)
		if err != nil || c.Version != 2 || strings.Join(c.Groups, ",") != "vip,wholesale" || c.Name != "A" {
			t.Fatalf("UpdateCustomer = %+v, %v", c, err)
		}
		_, err = s.UpdateCustomer(ctx, ids[0], CustomerPatch{Name: ptr("Stale")}, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)
		_, err = s.UpdateCustomer(ctx, ids[0], CustomerPatch{Groups: &[]string{"ok", "VIP", "a b"}, Name: ptr("")}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "groups[1]", "groups[2]", "name")
		_, err = s.UpdateCustomer(ctx, "cus_01JD3Q0000000000000000000A", CustomerPatch{Name: ptr("X")}, 0)
		apperrtest.Want(t, err, apperr.NotFound)

		// Groups reach the token, and the principal: at login, and at the
		// next refresh after a change.
		pair := MustLogin(t, s, auth.KindCustomer, "a@example.com")
		claims, err := s.VerifyAccessToken(ctx, pair.AccessToken)
		if err != nil || strings.Join(claims.Groups, ",") != "vip,wholesale" {
			t.Fatalf("claims = %+v, %v", claims, err)
		}
		if p, err := s.Authenticate(ctx, pair.AccessToken); err != nil || strings.Join(p.Groups, ",") != "vip,wholesale" {
			t.Fatalf("principal = %+v, %v", p, err)
		}
		if _, err := s.UpdateCustomer(ctx, ids[0], CustomerPatch{Groups: &[]string{}}, 0); err != nil {
			t.Fatal(err)
		}
		pair = MustRefresh(t, s, auth.KindCustomer, pair.RefreshToken)
		if claims, _ := s.VerifyAccessToken(ctx, pair.AccessToken); len(claims.Groups) != 0 {
			t.Fatalf("groups after removal = %v", claims.Groups)
		}
	})
}

func TestCustomerFor(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	ctx := context.Background()
	ada := MustRegister(t, e.s, "ada@example.com", "Ada")
	bob := MustRegister(t, e.s, "bob@example.com", "Bob")
	me := auth.Principal{Subject: ada.ID, Kind: auth.KindCustomer}
	if c, err := e.s.CustomerFor(ctx, me, ada.ID); err != nil || c.ID != ada.ID {
		t.Fatalf("own = %+v, %v", c, err)
	}
	_, err := e.s.CustomerFor(ctx, me, bob.ID)
	apperrtest.Want(t, err, apperr.NotFound)
	_, errMissing := e.s.CustomerFor(ctx, me, "cus_01JD3Q0000000000000000000A")
	if err.Error() == "" || apperr.CodeOf(err) != apperr.CodeOf(errMissing) {
		t.Fatalf("another's id (%v) and a missing id (%v) must look alike", err, errMissing)
	}
	_, err = e.s.CustomerFor(ctx, auth.Principal{}, ada.ID)
	apperrtest.Want(t, err, apperr.Unauthorized)
	_, err = e.s.CustomerFor(ctx, auth.Principal{Subject: "usr_x", Kind: auth.KindStaff, Role: "admin"}, ada.ID)
	apperrtest.Want(t, err, apperr.Forbidden)
}
