package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestProbeExitsByTheAnswer: consentd probe exits 0 on a 200 and 1 with
// the reason otherwise, and 1 when nothing answers.
func TestProbeExitsByTheAnswer(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready {
			http.Error(w, "projector: not running", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, runProbe([]string{"--url", srv.URL + "/readyz"}, &stdout, &stderr), stderr.String())
	assert.Equal(t, "ok\n", stdout.String())

	ready = false
	stderr.Reset()
	assert.Equal(t, 1, runProbe([]string{"--url", srv.URL + "/readyz"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "503 Service Unavailable projector: not running")

	srv.Close()
	assert.Equal(t, 1, runProbe([]string{"--url", srv.URL + "/readyz"}, &stdout, &stderr), "nothing listens")
	assert.Equal(t, 2, runProbe([]string{"extra"}, &stdout, &stderr))
}
