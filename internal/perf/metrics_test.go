package perf

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMedian(t *testing.T) {
	assert.Equal(t, 0.0, Median(nil))
	assert.Equal(t, 2.0, Median([]float64{3, 1, 2}))
	assert.Equal(t, 1.5, Median([]float64{2, 0.5, 1, 9}), "an even count: the mean of the middle two; the stall (9) does not weigh")
}
