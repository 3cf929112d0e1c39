package perf

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ackError returns the error a JetStream ack carries, if any.
func ackError(data []byte) error {
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("invalid ack %q: %w", data, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}
