package ledger

import (
	"context"
	"fmt"
	"strings"
)

// FeedConsumerStats counts the consumers the feed endpoints opened on the
// stream (named feed~..., see FeedConsumerName) and the messages still
// pending for them: stored in the stream and matching their filters, but
// not delivered yet (NumPending).
type FeedConsumerStats struct {
	Consumers int
	Pending   uint64
}

// ConsumerStats lists the stream's consumers (one JetStream API request
// per page of them) and counts the feeds'. It returns the JetStream error
// when the list cannot be read.
func (f *Feed) ConsumerStats(ctx context.Context) (FeedConsumerStats, error) {
	stream, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return FeedConsumerStats{}, fmt.Errorf("feed consumers: %w", err)
	}
	var s FeedConsumerStats
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		if strings.HasPrefix(info.Name, "feed~") {
			s.Consumers++
			s.Pending += info.NumPending
		}
	}
	if err := list.Err(); err != nil {
		return FeedConsumerStats{}, fmt.Errorf("feed consumers: %w", err)
	}
	return s, nil
}
