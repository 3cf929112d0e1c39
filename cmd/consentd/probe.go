package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runProbe is consentd probe: it asks a consentd's health endpoint (by
// default the readiness of the one listening on 127.0.0.1:9090) and exits
// 0 when it answers 200, 1 otherwise, printing the reason. It is the
// healthcheck of a container image with no shell or HTTP client in it.
func runProbe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("consentd probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9090/readyz", "`URL` of the endpoint to ask: /readyz (ready to answer) or /healthz (alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: consentd probe [--url URL] [--timeout DURATION]")
		fmt.Fprintln(fs.Output(), "Exits 0 when the endpoint answers 200, 1 otherwise.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "consentd probe: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "consentd probe: --url %q: %v\n", *url, err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "consentd probe:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "consentd probe: %s: %s %s\n", *url, resp.Status, text)
		return 1
	}
	fmt.Fprintln(stdout, text)
	return 0
}
