// Command regload measures a registry's manifest throughput: C clients,
// each with its own connection, GET one manifest as fast as they can for
// a duration, and it prints the requests per second and latency
// percentiles. bench/registry.sh runs it against berth's registry and
// distribution side by side.
//
//	regload -url http://127.0.0.1:5000/v2/small/manifests/latest -c 50 -d 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "the manifest URL to GET")
	clients := flag.Int("c", 50, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "how long to run")
	accept := flag.String("accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json",
		"the Accept header")
	flag.Parse()
	if *url == "" || *clients < 1 {
		fmt.Fprintln(os.Stderr, "usage: regload -url URL [-c CLIENTS] [-d DURATION]")
		os.Exit(2)
	}
	if err := run(*url, *accept, *clients, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "regload:", err)
		os.Exit(1)
	}
}

func run(url, accept string, clients int, dur time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var mine []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				err := get(ctx, client, url, accept)
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	if len(latencies) == 0 {
		return errors.New("no request finished")
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	fmt.Printf("requests %d in %.1fs: %.0f req/s, latency p50 %v p99 %v\n",
		len(latencies), elapsed.Seconds(), float64(len(latencies))/elapsed.Seconds(),
		pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	return nil
}

func get(ctx context.Context, client *http.Client, url, accept string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
