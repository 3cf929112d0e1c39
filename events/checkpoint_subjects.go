package events

import "strings"

// Subjects of the signed checkpoints kept in the stream beside the events
// (see internal/audit). A checkpoint is not an event: it belongs to no
// consent, and readers of the stream pass over it.
const (
	// CheckpointSubjects is the subject filter of the checkpoints; the
	// stream captures it.
	CheckpointSubjects = "consent.checkpoints.>"
	// CheckpointSubject is the one subject every checkpoint is published
	// on, so that a publish expecting the subject's last sequence lets only
	// one of several writers append each checkpoint.
	CheckpointSubject = "consent.checkpoints.chain"
)

// IsCheckpointSubject reports whether a NATS subject is under
// CheckpointSubjects.
func IsCheckpointSubject(natsSubject string) bool {
	return strings.HasPrefix(natsSubject, "consent.checkpoints.")
}
