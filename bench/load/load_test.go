package load

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func ds(ns ...int) []time.Duration {
	out := make([]time.Duration, len(ns))
	for i, n := range ns {
		out[i] = time.Duration(n)
	}
	return out
}

func TestPercentile(t *testing.T) {
	ten := ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ds(7), 99, 7},
		{"p50 of ten is the 5th", ten, 50, 5},
		{"p90 of ten is the 9th", ten, 90, 9},
		{"p99 of ten is the last", ten, 99, 10},
		{"p100 is the max", ten, 100, 10},
		{"tiny q is the min", ten, 0.001, 1},
		{"p51 of ten rounds up to the 6th", ten, 51, 6},
		{"p99 of a hundred is the 99th", hundred, 99, 99},
		{"p50 of a hundred is the 50th", hundred, 50, 50},
		{"p99.9 of a hundred is the last", hundred, 99.9, 100},
	} {
		if got := Percentile(c.sorted, c.q); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), c.in...)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("Median modified its input: %v", c.in)
			}
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost:1", "http://[::1]:80", "https://127.9.9.9/"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1/", "http://example.com/", "ftp://127.0.0.1/", "http://0.0.0.0:80/"} {
		if err := CheckLoopback(u); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
	if err := CheckLoopback("http://192.168.1.1/"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("want ErrNotLoopback, got %v", err)
	}
}

func TestResult(t *testing.T) {
	r := Result{Latencies: ds(1, 2, 3, 4), Elapsed: 2 * time.Second}
	if r.Count() != 4 || r.RPS() != 2 || r.P(50) != 2 {
		t.Errorf("count %d rps %v p50 %v", r.Count(), r.RPS(), r.P(50))
	}
	if (Result{}).RPS() != 0 {
		t.Error("RPS of nothing")
	}
}

func TestRunCountsEveryRequest(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || string(b) != "ping" || r.Header.Get("X-Test") != "1" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "pong")
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Target{
		Method: http.MethodPost, URL: srv.URL, Body: []byte("ping"),
		Header: http.Header{"X-Test": {"1"}},
	}, Options{Concurrency: 4, Requests: 50, Warmup: 7, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count() != 50 || res.Errors != 0 {
		t.Fatalf("count %d errors %d (%s)", res.Count(), res.Errors, res.FirstError)
	}
	if hits.Load() != 57 {
		t.Errorf("the server saw %d requests, want 50 + 7 warm-up", hits.Load())
	}
	for i := 1; i < len(res.Latencies); i++ {
		if res.Latencies[i] < res.Latencies[i-1] {
			t.Fatal("latencies are not sorted")
		}
	}
}

func TestRunCountsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Target{URL: srv.URL}, Options{Concurrency: 2, Requests: 10, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count() != 0 || res.Errors != 10 || res.FirstError == "" {
		t.Errorf("count %d errors %d first %q", res.Count(), res.Errors, res.FirstError)
	}
	res, err = Run(context.Background(), Target{URL: srv.URL, WantStatus: http.StatusTeapot}, Options{Requests: 3, Duration: time.Minute})
	if err != nil || res.Count() != 3 {
		t.Errorf("WantStatus: count %d, err %v", res.Count(), err)
	}
}

func TestRunStopsAtTheTimeBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Target{URL: srv.URL}, Options{Concurrency: 2, Requests: 1000, Duration: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Only counts are checked: requests cut by the bound are neither
	// successes nor server errors.
	if res.Count() != 0 || res.Errors != 0 {
		t.Errorf("count %d errors %d (%s)", res.Count(), res.Errors, res.FirstError)
	}
}

func TestRunRefuses(t *testing.T) {
	if _, err := Run(context.Background(), Target{URL: "http://example.com/"}, Options{Requests: 1, Duration: time.Second}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("remote target: %v", err)
	}
	if _, err := Run(context.Background(), Target{URL: "http://127.0.0.1:1/"}, Options{Requests: 1}); err == nil {
		t.Error("no time bound accepted")
	}
	if _, err := Run(context.Background(), Target{URL: "http://127.0.0.1:1/"}, Options{Duration: time.Second}); err == nil {
		t.Error("no request bound accepted")
	}
}
