package orders

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/payments"
)

// contractChecker performs the test's requests against a handler and
// checks every exchange against the OpenAPI document.
type contractChecker struct {
	t        *testing.T
	contract *apitest.Contract
	handler  http.Handler
}

func (c contractChecker) check(rq request) *httptest.ResponseRecorder {
	c.t.Helper()
	return c.contract.Serve(c.t, c.handler, rq.build())
}

// myOrdersPattern is the one public route that needs a (customer) token.
const myOrdersPattern = "GET /store/customers/me/orders"

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	e := newEnv(t, store.SQLite)
	perms := map[string]bool{string(PermissionRead): true, string(PermissionWrite): true, string(PermissionFulfil): true, string(PermissionRefund): true}
	apitest.MustContract(t).MustDocumentRoutes(t, e.s.Routes(), myOrdersPattern)
	for _, r := range e.s.Routes() {
		admin := strings.HasPrefix(r.Path, "/admin/")
		if admin != (r.Permission != "") || (admin && !perms[string(r.Permission)]) {
			t.Errorf("%s: permission %q", r.Pattern(), r.Permission)
		}
		if admin && r.Method == http.MethodGet && r.Permission != PermissionRead {
			t.Errorf("%s: a read needs %s", r.Pattern(), PermissionRead)
		}
	}
}

// TestHandlersMatchOpenAPI exercises every route, answers and errors
// alike, and validates each exchange against the document — checking on
// the way who may see which order.
func TestHandlersMatchOpenAPI(t *testing.T) {
	contract := apitest.MustContract(t)
	e := newEnv(t, store.SQLite)
	e.MustProduct(t, "SKU-1", 1000, 20)
	e.MustProduct(t, "RARE", 500, 1)
	e.MustVoucher(t, "TEN", 10)
	c := contractChecker{t: t, contract: contract, handler: mount(e.s.Routes())}
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}

	// Checkout, and who may see the order.
	anon := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}, codes: []string{"TEN"}})
	o := MustDecode[Order](t, MustStatus(t, http.StatusCreated, c.check(withHeader(checkoutRequest(anon, payments.TokenVisa, "k1"), "Idempotency-Key", "k1"))))
	if o.Status != StatusConfirmed {
		t.Fatalf("order %s", o.Status)
	}
	MustStatus(t, http.StatusOK, c.check(request{method: "GET", path: "/store/orders/" + o.ID, token: anon.caller.CartToken}))
	MustStatus(t, http.StatusNotFound, c.check(request{method: "GET", path: "/store/orders/" + o.ID}))
	MustStatus(t, http.StatusNotFound, c.check(request{method: "GET", path: "/store/orders/" + o.ID, token: "ct_someone_elses"}))
	MustStatus(t, http.StatusNotFound, c.check(request{method: "GET", path: "/store/orders/" + o.ID, principal: "customer:cus_eve"}))

	mine := e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 1}})
	ada := MustDecode[Order](t, MustStatus(t, http.StatusCreated, c.check(checkoutRequest(mine, payments.TokenVisa, ""))))
	MustStatus(t, http.StatusOK, c.check(request{method: "GET", path: "/store/orders/" + ada.ID, principal: "customer:cus_ada"}))
	MustStatus(t, http.StatusNotFound, c.check(request{method: "GET", path: "/store/orders/" + ada.ID, principal: "customer:cus_eve"}))
	MustStatus(t, http.StatusNotFound, c.check(request{method: "GET", path: "/store/orders/" + ada.ID, token: anon.caller.CartToken}))
	MustStatus(t, http.StatusNotFound, c.check(request{method: "GET", path: "/store/orders/ord_01JD3Q0000000000000000000A", principal: "customer:cus_ada"}))
	MustStatus(t, http.StatusOK, c.check(request{method: "GET", path: "/store/customers/me/orders?limit=5", principal: "customer:cus_ada"}))
	MustStatus(t, http.StatusUnauthorized, c.check(request{method: "GET", path: "/store/customers/me/orders"}))

	// Failed checkouts name their order and reason.
	declined := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
	wantProblem(t, c.check(checkoutRequest(declined, payments.TokenDeclined, "")), http.StatusPaymentRequired, ReasonPaymentDeclined)
	short := e.MustCart(t, cartSpec{items: map[string]int64{"RARE": 2}})
	wantProblem(t, c.check(checkoutRequest(short, payments.TokenVisa, "")), http.StatusConflict, ReasonOutOfStock)
	incomplete := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}, noShip: true})
	wantProblem(t, c.check(checkoutRequest(incomplete, payments.TokenVisa, "")), http.StatusUnprocessableEntity, string(CodeCheckoutIncomplete))
	other := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
	MustStatus(t, http.StatusCreated, c.check(checkoutRequest(other, payments.TokenVisa, "a")))
	wantProblem(t, c.check(checkoutRequest(other, payments.TokenVisa, "b")), http.StatusConflict, "conflict")
	bad := checkoutRequest(other, payments.TokenVisa, "")
	bad.body, bad.header = `{"payment": {"token": "tok_visa"}, "total": 1}`, invalid
	wantProblem(t, c.check(bad), http.StatusBadRequest, "bad_request")
	timeout := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
	e.stops[0]() // from here on the sagas run in another "process", one that gives up quickly
	e.cfg.StepTimeout, e.cfg.CallTimeout = 2*time.Second, 2*time.Second
	quick := e.newService()
	e.start(quick)
	wantProblem(t, contractChecker{t: t, contract: contract, handler: mount(quick.Routes())}.check(checkoutRequest(timeout, payments.TokenTimeout, "")),
		http.StatusServiceUnavailable, ReasonPaymentUnavailable)

	// 202: the budget ran out (no executor in this process).
	e.cfg.WaitBudget = time.Millisecond
	lazy := e.newService()
	slow := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
	w := MustStatus(t, http.StatusAccepted, contractChecker{t: t, contract: contract, handler: mount(lazy.Routes())}.check(checkoutRequest(slow, payments.TokenVisa, "")))
	p := MustDecode[processing](t, w)
	if p.Status != "processing" || w.Header().Get("Location") != "/store/orders/"+p.ID {
		t.Fatalf("202 %s %v", w.Body, w.Header())
	}
	e.awaitDone(t, p.ID) // the other process's executor finishes it
	c.handler = mount(quick.Routes())

	// Admin.
	c.check(request{method: "GET", path: "/admin/orders"})
	c.check(request{method: "GET", path: "/admin/orders?status=confirmed&customer_id=cus_ada&limit=1"})
	page := MustDecode[struct {
		Data       []Order `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}](t, c.check(request{method: "GET", path: "/admin/orders?limit=2"}))
	if len(page.Data) != 2 || page.NextCursor == nil {
		t.Fatalf("page %+v", page)
	}
	c.check(request{method: "GET", path: "/admin/orders?limit=2&cursor=" + *page.NextCursor})
	c.check(request{method: "GET", path: "/admin/orders?status=shipped", header: invalid})
	c.check(request{method: "GET", path: "/admin/orders/" + o.ID})
	c.check(request{method: "GET", path: "/admin/orders/ord_01JD3Q0000000000000000000A"})
	MustStatus(t, http.StatusCreated, c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/fulfilments", principal: "staff:usr_pat",
		body: `{"items": [{"item_id": "` + o.Items[0].ID + `", "quantity": 1}], "tracking_number": "TRK", "carrier": "DHL"}`}))
	MustStatus(t, http.StatusCreated, c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/fulfilments", principal: "staff:usr_pat"}))
	c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/fulfilments", principal: "staff:usr_pat", body: `{}`})
	c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/fulfilments", body: `{"items": [{"item_id": "x", "quantity": 1}]}`})
	MustStatus(t, http.StatusCreated, c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/refunds", principal: "staff:usr_rae",
		body: `{"amount": {"amount": 100, "currency": "EUR"}, "reason": "scratch"}`, header: map[string]string{"Idempotency-Key": "r1"}}))
	wantProblem(t, c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/refunds", body: `{"amount": {"amount": 999999, "currency": "EUR"}, "reason": "x"}`}),
		http.StatusUnprocessableEntity, string(CodeRefundExceedsCaptured))
	c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/refunds", body: `{"reason": "the rest"}`})
	c.check(request{method: "POST", path: "/admin/orders/" + o.ID + "/cancel", body: `{"reason": "shipped already"}`})
	w = c.check(request{method: "POST", path: "/admin/orders/" + ada.ID + "/cancel", principal: "staff:usr_sam", body: `{"reason": "customer asked"}`})
	if w.Code != http.StatusOK && w.Code != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	c.check(request{method: "POST", path: "/admin/orders/" + ada.ID + "/cancel", body: `{}`, header: invalid})
	c.check(request{method: "POST", path: "/admin/orders/ord_01JD3Q0000000000000000000A/cancel", body: `{"reason": "x"}`})
	admin := MustDecode[AdminOrder](t, c.check(request{method: "GET", path: "/admin/orders/" + ada.ID}))
	if len(admin.Saga.Steps) == 0 || len(admin.Audit) != 1 || admin.Audit[0].Actor != "usr_sam" {
		t.Fatalf("admin view: saga %+v, audit %+v", admin.Saga, admin.Audit)
	}
	for _, op := range contract.Operations("/admin/orders") {
		if !contract.Exercised(op.Method, op.Path) {
			t.Errorf("%s was not exercised", op.Pattern())
		}
	}
	for _, p := range []string{"/store/carts/{id}/checkout", "/store/orders/{id}", "/store/customers/me/orders"} {
		if !contract.Exercised(http.MethodPost, p) && !contract.Exercised(http.MethodGet, p) {
			t.Errorf("%s was not exercised", p)
		}
	}
}

func withHeader(rq request, k, v string) request {
	h := map[string]string{k: v}
	for kk, vv := range rq.header {
		h[kk] = vv
	}
	rq.header = h
	return rq
}

// MustStatus fails unless the response has the status.
func MustStatus(t testing.TB, want int, w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d\n%s", w.Code, want, w.Body)
	}
	return w
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	contract := apitest.MustContract(t)
	e := newEnv(t, store.SQLite)
	e.MustProduct(t, "SKU-1", 1000, 20)
	o := e.MustCheckout(t, e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa)
	h := mount(e.s.Routes())
	for _, tt := range []struct {
		name string
		rq   request
		mut  func(m map[string]any)
	}{
		{"order without total", request{method: "GET", path: "/store/orders/" + o.ID, principal: "customer:cus_ada"}, func(m map[string]any) { delete(m, "total") }},
		{"order with a float amount", request{method: "GET", path: "/store/orders/" + o.ID, principal: "customer:cus_ada"},
			func(m map[string]any) { m["total"].(map[string]any)["amount"] = 1.5 }},
		{"order with an extra field", request{method: "GET", path: "/store/orders/" + o.ID, principal: "customer:cus_ada"}, func(m map[string]any) { m["secret"] = 1 }},
		{"order with an unknown status", request{method: "GET", path: "/store/orders/" + o.ID, principal: "customer:cus_ada"}, func(m map[string]any) { m["status"] = "paid" }},
		{"admin order without saga", request{method: "GET", path: "/admin/orders/" + o.ID}, func(m map[string]any) { delete(m, "saga") }},
		{"saga step with an unknown outcome", request{method: "GET", path: "/admin/orders/" + o.ID},
			func(m map[string]any) {
				m["saga"].(map[string]any)["steps"].([]any)[0].(map[string]any)["outcome"] = "maybe"
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			contract.MustRejectDrift(t, tt.rq.build(), MustServe(t, h, http.StatusOK, tt.rq), tt.mut)
		})
	}
}
