// Package load is the HTTP load generator of the performance table: it
// drives a loopback server with a fixed number of concurrent workers,
// bounded both in request count and in time, and reports latency
// percentiles and requests per second.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Target is the request every worker sends.
type Target struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// WantStatus is the status that counts as success (default 200).
	WantStatus int
}

// Options bound a run.
type Options struct {
	// Concurrency is the number of workers, each with one request in
	// flight at a time (default 1).
	Concurrency int
	// Requests is the total number of measured requests (required).
	Requests int
	// Duration stops the run early when reached (required): a slow server
	// cannot make a run unbounded.
	Duration time.Duration
	// Warmup requests are sent (at the same concurrency) before measuring
	// and not recorded: they open the connections and warm the caches.
	Warmup int
	// Client sends the requests; nil means a keep-alive client sized for
	// Concurrency, closed at the end of the run.
	Client *http.Client
}

// Result is what a run measured.
type Result struct {
	// Latencies of the successful measured requests, sorted ascending.
	Latencies []time.Duration
	// Errors counts transport errors and unexpected statuses.
	Errors int
	// FirstError describes the first of them.
	FirstError string
	// Elapsed is the wall time of the measured phase.
	Elapsed time.Duration
}

// Count is the number of successful measured requests.
func (r Result) Count() int { return len(r.Latencies) }

// RPS is successful requests per second of the measured phase.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// P returns the q-th percentile (0 < q ≤ 100) of the latencies.
func (r Result) P(q float64) time.Duration { return Percentile(r.Latencies, q) }

// Percentile returns the nearest-rank q-th percentile (0 < q ≤ 100) of
// sorted: the smallest value such that at least q% of the values are at
// or below it. It returns 0 for an empty slice.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// rank = ceil(q/100 * n), computed in integers where possible so that
	// exact ranks (p50 of 10 values is the 5th) do not round up.
	rank := int(q * float64(n) / 100)
	if float64(rank)*100 < q*float64(n) {
		rank++
	}
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// Median returns the median of xs (the mean of the two middle values for
// an even count), or 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ErrNotLoopback is returned for a target outside the loopback network:
// the generator never loads anything but the local machine.
var ErrNotLoopback = errors.New("load: the target must be a loopback address")

// CheckLoopback accepts only http(s) URLs whose host is localhost or a
// loopback IP literal.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("load: scheme %q: want http or https", u.Scheme)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotLoopback, host)
}

// NewClient returns a keep-alive client with one idle connection per
// worker, no compression and no proxy from the environment.
func NewClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        max(concurrency, 1) * 2,
		MaxIdleConnsPerHost: max(concurrency, 1) * 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
}

// Run sends t until Requests measured requests are done, Duration has
// passed or ctx ends, whichever comes first.
func Run(ctx context.Context, t Target, o Options) (Result, error) {
	if err := CheckLoopback(t.URL); err != nil {
		return Result{}, err
	}
	if o.Requests <= 0 || o.Duration <= 0 {
		return Result{}, errors.New("load: Requests and Duration must both be set")
	}
	conc := max(o.Concurrency, 1)
	client := o.Client
	if client == nil {
		client = NewClient(conc)
		defer client.CloseIdleConnections()
	}
	want := t.WantStatus
	if want == 0 {
		want = http.StatusOK
	}
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	if _, err := http.NewRequest(method, t.URL, nil); err != nil {
		return Result{}, fmt.Errorf("load: %w", err)
	}
	send := func(ctx context.Context) (time.Duration, error) {
		var body io.Reader
		if t.Body != nil {
			body = bytes.NewReader(t.Body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, t.URL, body)
		for k, vs := range t.Header {
			req.Header[k] = vs
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != want {
			return 0, fmt.Errorf("status %d, want %d", resp.StatusCode, want)
		}
		return d, nil
	}

	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	if o.Warmup > 0 {
		phase(ctx, conc, o.Warmup, send)
	}
	start := time.Now()
	per := phase(ctx, conc, o.Requests, send)
	res := Result{Elapsed: time.Since(start)}
	for _, w := range per {
		res.Latencies = append(res.Latencies, w.lat...)
		res.Errors += w.errs
		if res.FirstError == "" && w.first != nil {
			res.FirstError = w.first.Error()
		}
	}
	slices.Sort(res.Latencies)
	return res, nil
}

type workerResult struct {
	lat   []time.Duration
	errs  int
	first error
}

// phase runs n requests over conc workers; a shared counter hands out the
// requests, so fast workers take more of them.
func phase(ctx context.Context, conc, n int, send func(context.Context) (time.Duration, error)) []workerResult {
	var next atomic.Int64
	out := make([]workerResult, conc)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func(w *workerResult) {
			defer wg.Done()
			w.lat = make([]time.Duration, 0, n/conc+1)
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				d, err := send(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return // the time bound, not the server
					}
					w.errs++
					if w.first == nil {
						w.first = err
					}
					continue
				}
				w.lat = append(w.lat, d)
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}
