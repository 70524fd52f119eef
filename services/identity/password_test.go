package identity

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
)

// testArgon2 keeps tests fast; production parameters are benchmarked below.
var testArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newHasher(testArgon2)
	enc, err := h.hash(ctx, "correct-horse-battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Count(enc, "$") != 5 {
		t.Fatalf("encoding = %q", enc)
	}
	again, _ := h.hash(ctx, "correct-horse-battery")
	if again == enc {
		t.Fatal("two hashes of one password must differ (random salt)")
	}
	for _, tt := range []struct {
		password string
		want     bool
	}{
		{"correct-horse-battery", true},
		{"correct-horse-batterY", false},
		{"", false},
		{"correct-horse-battery ", false},
	} {
		ok, stale, err := h.verify(ctx, tt.password, enc)
		if err != nil || ok != tt.want || stale {
			t.Errorf("verify(%q) = %v, %v, %v; want %v, fresh", tt.password, ok, stale, err, tt.want)
		}
	}

	// Stored with other parameters: still verifies, and says so.
	stronger := newHasher(Argon2Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32})
	if ok, stale, err := stronger.verify(ctx, "correct-horse-battery", enc); !ok || !stale || err != nil {
		t.Fatalf("verify with changed params = %v, %v, %v; want a stale match", ok, stale, err)
	}
}

func TestDecodeHashRefusesWhatItCannotTrust(t *testing.T) {
	good := encodeHash(testArgon2, make([]byte, 16), make([]byte, 32))
	if _, _, _, err := decodeHash(good); err != nil {
		t.Fatalf("decode %q: %v", good, err)
	}
	for _, bad := range []string{
		"",
		"plain",
		strings.Replace(good, "argon2id", "argon2i", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=64", "m=4194304", 1), // 4 GiB: refused, not allocated
		strings.Replace(good, "t=1", "t=0", 1),
		strings.Replace(good, "p=1", "p=0", 1),
		strings.Replace(good, "m=64,t=1,p=1", "m=64,t=1,p=1,x=2", 1),
		strings.Replace(good, "m=64,t=1,p=1", "m=064,t=1,p=1", 1),
		good + "$",
		good[:len(good)-10],
		good + "=",
	} {
		if _, _, _, err := decodeHash(bad); err == nil {
			t.Errorf("decodeHash(%q) accepted", bad)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, tt := range []struct {
		password, email, code string
	}{
		{"correct-horse-battery", "ada@example.com", ""},
		{"ünïcødé-pässwörd", "ada@example.com", ""},
		{"", "ada@example.com", "required"},
		{"short", "ada@example.com", "too_short"},
		{"123456789", "", "too_short"},
		{"ééééééééé", "", "too_short"}, // 9 characters, 18 bytes
		{strings.Repeat("ab", 128), "", ""},
		{strings.Repeat("ab", 128) + "c", "", "too_long"},
		{strings.Repeat("a", 12), "", "too_weak"},
		{strings.Repeat("é", 12), "", "too_weak"},
		{"ada.lovelace@example.com", "ada.lovelace@example.com", "too_weak"},
		{"ADA.LOVELACE@EXAMPLE.COM", "ada.lovelace@example.com", "too_weak"},
		{"ada.lovelace", "ada.lovelace@example.com", "too_weak"},
		{"bad\xffutf8-password", "", "invalid"},
	} {
		var v apperr.Validation
		checkPassword(&v, tt.password, tt.email)
		err := v.Err()
		if tt.code == "" {
			if err != nil {
				t.Errorf("checkPassword(%q) = %v, want ok", tt.password, err)
			}
			continue
		}
		var e *apperr.Error
		if !asErr(err, &e) || len(e.Fields) != 1 || e.Fields[0].Field != "password" || e.Fields[0].Code != tt.code {
			t.Errorf("checkPassword(%q) = %v, want password %s", tt.password, err, tt.code)
		}
	}
}

// TestHashingIsBounded: no more than GOMAXPROCS hashes run at once, and a
// caller whose context ends while it waits gets unavailable.
func TestHashingIsBounded(t *testing.T) {
	h := newHasher(testArgon2)
	slots := cap(h.slots)
	for range slots {
		if err := h.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := h.hash(ctx, "correct-horse-battery"); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("hash with every slot taken = %v, want unavailable", err)
	}
	for range slots {
		h.release()
	}

	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 4 * slots {
		wg.Go(func() {
			if err := h.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			h.release()
		})
	}
	wg.Wait()
	if p := peak.Load(); int(p) > slots {
		t.Fatalf("%d hashes ran at once, limit %d", p, slots)
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	if err := DefaultArgon2.validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Argon2Params{
		testArgon2,
		{Memory: 64 * 1024, Time: 0, Threads: 2, SaltLen: 16, KeyLen: 32},
		{Memory: 64 * 1024, Time: 2, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64 * 1024, Time: 2, Threads: 2, SaltLen: 8, KeyLen: 32},
		{Memory: 64 * 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 8},
		{Memory: 2 << 20, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32},
	} {
		if p.validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// BenchmarkHashPassword measures one hash with the production parameters
// (DefaultArgon2); verifying costs the same.
func BenchmarkHashPassword(b *testing.B) {
	h := newHasher(DefaultArgon2)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.hash(ctx, "correct-horse-battery"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashPasswordParallel: throughput with every core hashing (the
// semaphore admits GOMAXPROCS at once).
func BenchmarkHashPasswordParallel(b *testing.B) {
	h := newHasher(DefaultArgon2)
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.hash(ctx, "correct-horse-battery"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func asErr(err error, target **apperr.Error) bool {
	e, ok := err.(*apperr.Error)
	*target = e
	return ok
}
