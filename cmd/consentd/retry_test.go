package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
)

// TestRetryUnansweredRetriesOnlyWhatNobodyAnswered: timeouts and a 503
// of the JetStream API are tried again until an attempt succeeds; a
// refusal is returned at once.
func TestRetryUnansweredRetriesOnlyWhatNobodyAnswered(t *testing.T) {
	m := &Main{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	failures := []error{context.DeadlineExceeded, fmt.Errorf("create: %w", nats.ErrTimeout), nats.ErrNoResponders,
		&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster not available"}}
	calls := 0
	err := m.retryUnanswered(t.Context(), "bucket", func(context.Context) error {
		calls++
		if calls <= len(failures) {
			return failures[calls-1]
		}
		return nil
	})
	assert.NoError(t, err)
	assert.Equal(t, len(failures)+1, calls)

	refused := &jetstream.APIError{Code: 400, ErrorCode: 10052, Description: "insufficient resources"}
	calls = 0
	err = m.retryUnanswered(t.Context(), "bucket", func(context.Context) error { calls++; return refused })
	assert.True(t, errors.Is(err, refused))
	assert.Equal(t, 1, calls)
}
