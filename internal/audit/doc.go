// Package audit is the auditor's side of the Consent Ledger: it reads the
// CONSENT stream as the source of truth and answers for it.
//
//   - Replay reads the stream in order with an ordered consumer; Export
//     writes events to a file (JSON lines or CSV) in constant memory.
//   - Verify replays the whole stream: it recomputes every event hash,
//     checks every prev_hash link and that stream sequences have no gaps,
//     folds a fresh index with events.Evolve and compares its digest with
//     the live index's, and checks the signed checkpoints.
//   - A Chain is the running hash over every message in stream order; a
//     Checkpoint signs the chain's value at a sequence with an ed25519
//     key, and a Checkpointer appends one per interval.
//   - FoldAt answers what a consent's status was at a past time; a
//     Receipt is a signed, human-readable record of one consent.
//
// The formats (chain, checkpoint, receipt, digest) are described in
// docs/audit.md so that an outside auditor can check them without this
// code.
package audit
