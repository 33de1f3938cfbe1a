package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzLoginHandler sends arbitrary bodies and content types to POST /login.
// Whatever arrives, the handler must answer with a JSON body and one of its
// documented statuses, and must issue a code only for valid credentials.
func FuzzLoginHandler(f *testing.F) {
	f.Add(`{"username":"alice","password":"alice-password"}`, "application/json")
	f.Add(`{"username":"alice","password":"wrong"}`, "application/json")
	f.Add(`{"username":1,"password":[]}`, "application/json")
	f.Add(`{"username":"alice","password":"alice-password"} {}`, "application/json")
	f.Add(`{"username":"alice","password":"alice-password","admin":true}`, "application/json; charset=utf-8")
	f.Add(`username=alice&password=alice-password`, "application/x-www-form-urlencoded")
	f.Add(`{"username":"\u0000","password":"\ud800"}`, "application/json")
	f.Add(strings.Repeat("[", 5000), "application/json")
	f.Add("", "")

	allowed := map[int]bool{
		http.StatusOK: true, http.StatusBadRequest: true, http.StatusUnauthorized: true,
		http.StatusRequestEntityTooLarge: true, http.StatusUnsupportedMediaType: true,
	}
	f.Fuzz(func(t *testing.T, body, contentType string) {
		issuer := &fakeIssuer{}
		handler := newTestLoginHandler(t, issuer)
		request := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
		request.Header.Set("Content-Type", contentType)
		recorder := httptest.NewRecorder()

		handler.ServeHTTP(recorder, request)

		if !allowed[recorder.Code] {
			t.Fatalf("status %d for body %q, expected one of the documented statuses", recorder.Code, body)
		}
		if !json.Valid(recorder.Body.Bytes()) {
			t.Fatalf("response body %q is not JSON", recorder.Body.String())
		}
		issued := issuer.issuedSubjects()
		if recorder.Code != http.StatusOK && len(issued) > 0 {
			t.Fatalf("status %d but a code was issued for %v", recorder.Code, issued)
		}
		for _, subject := range issued {
			if subject != "alice" && subject != "bob" {
				t.Fatalf("code issued for %q, who is not a demo user", subject)
			}
		}
	})
}
